package cli

import "github.com/spf13/cobra"

const exitCodesHelp = `lghsctl exits with:

  0    success (with --detailed-exitcode: success and nothing to change)
  1    failure: a task failed, a host was unreachable, an API refused a call
  2    usage error or invalid inventory (every problem is listed as
       file:line:col: field: message)
  3    changes pending: plan, or up --check, found changes and
       --detailed-exitcode was given
  130  interrupted (Ctrl-C); the recap says what ran
`

func newExitCodesHelp() *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "What lghsctl's exit codes mean",
		Long:  exitCodesHelp,
	}
}

package cli

import "github.com/spf13/cobra"

// newNotYet is a command whose capability is not built yet. It says so and
// fails, rather than pretending to do something.
func newNotYet(g *Globals, name, short, what string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short + " (not available yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return notAvailableError{what}
		},
	}
}

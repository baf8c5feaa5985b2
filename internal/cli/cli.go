// Package cli is lghsctl's command line: the cobra commands, the order of
// the phases of each command, the single exit-code map, and the only place
// that reads the process environment.
//
// Each command is an options struct, a constructor that binds its flags,
// and a run function a test can call directly.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/lghs/lghsctl/internal/logging"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/inventory"
)

// Exit codes. They are documented in README.md and `lghsctl help exit-codes`.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2 // bad command line or invalid inventory
	ExitChanges     = 3 // changes pending (plan/up --check with --detailed-exitcode)
	ExitInterrupted = 130
)

// IO is the process's streams and environment, passed in so tests can run
// the CLI in-process.
type IO struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Getenv func(string) string
	// IsTerminal reports whether Out is a terminal (colours, live progress).
	IsTerminal bool
}

// OS returns the real process IO.
func OS() IO {
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, IsTerminal: term.IsTerminal(int(os.Stdout.Fd()))}
}

// Globals are the flags every command shares.
type Globals struct {
	IO
	Inventory        string
	Limit            []string
	Check            bool
	Diff             bool
	JSON             bool
	Verbose          int
	DetailedExitcode bool
	// TrustNewHosts are hosts whose SSH key up may trust on first use.
	TrustNewHosts []string
}

// usageError marks a bad command line (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// ErrChangesPending is returned with --detailed-exitcode when a plan or a
// check-mode run found changes.
var ErrChangesPending = errors.New("changes pending")

// silentError carries an exit code for a failure that was already reported
// to the user (e.g. a failed task shown in the recap).
type silentError struct {
	code int
	err  error
}

func (e silentError) Error() string { return e.err.Error() }
func (e silentError) Unwrap() error { return e.err }

// ExitCode maps an error to the process exit code. It is the only place
// that does.
func ExitCode(err error) int {
	var se silentError
	var ue usageError
	var ps inventory.Problems
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &se):
		return se.code
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, ErrChangesPending):
		return ExitChanges
	case errors.As(err, &ue), errors.As(err, &ps):
		return ExitUsage
	}
	return ExitFailure
}

// Main runs lghsctl with args (without the program name) and returns the
// exit code.
func Main(ctx context.Context, args []string, io IO) int {
	g := &Globals{IO: io}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = usageError{err}
	}
	code := ExitCode(err)
	var se silentError
	if err != nil && !errors.As(err, &se) && !errors.Is(err, ErrChangesPending) {
		msg := err.Error()
		if code == ExitInterrupted {
			msg = "interrupted"
		}
		if g.JSON {
			report.NewJSON(io.Out).Message(report.Error, msg)
		} else {
			fmt.Fprintf(io.Err, "lghsctl: %s\n", msg)
			if code == ExitUsage && !errors.As(err, new(inventory.Problems)) {
				fmt.Fprintln(io.Err, "Run 'lghsctl --help' for usage.")
			}
		}
	}
	return code
}

func newRoot(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "lghsctl",
		Short: "Provision, configure and migrate a self-hosted chat server from one inventory",
		Long: `lghsctl turns one declarative inventory.yaml into a running server:
a Scaleway instance with its security group and IPs, Cloudflare DNS records,
a hardened SSH, Docker, an nginx reverse proxy and Let's Encrypt certificates,
then moves the chat's data from the old server.

It plans before it changes anything, is safe to re-run, and ends with a recap.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q", args[0])}
			}
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVarP(&g.Inventory, "inventory", "i", "inventory.yaml", "inventory file")
	pf.StringSliceVar(&g.Limit, "limit", nil, "only act on these hosts (comma-separated)")
	pf.BoolVar(&g.Check, "check", false, "compute what would change without changing anything")
	pf.BoolVar(&g.Diff, "diff", false, "show file changes as unified diffs")
	pf.BoolVar(&g.JSON, "json", false, "write one JSON object per event on stdout (see docs/json-output.md)")
	pf.CountVarP(&g.Verbose, "verbose", "v", "also print the debug log on stderr (-v info, -vv debug)")

	root.AddCommand(
		newLab(g),
		newValidate(g),
		newVersion(g),
		newPlan(g),
		newUp(g),
		newAudit(g),
		newSnapshot(g),
		newMigrate(g),
		newDestroy(g),
		newCerts(g),
		newExitCodesHelp(),
	)
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Hidden = false
		}
	}
	return root
}

// exactArgs is cobra.ExactArgs returning a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments (got %q)", cmd.CommandPath(), args[0])}
	}
	return nil
}

// reporter returns the user-facing reporter for this run.
func (g *Globals) reporter() report.Reporter {
	if g.JSON {
		return report.NewJSON(g.Out)
	}
	t := report.NewText(g.Out)
	t.Color = g.IsTerminal && g.Getenv("NO_COLOR") == "" && g.Getenv("TERM") != "dumb"
	t.Live = g.IsTerminal
	t.Diff = g.Diff
	t.Verbose = g.Verbose > 0
	return t
}

// loadInventory loads the inventory named by -i. Problems are returned as
// inventory.Problems (exit code 2).
func (g *Globals) loadInventory() (*inventory.File, error) {
	return inventory.Load(g.Inventory)
}

// stateDir is where lghsctl keeps run logs and local state for an
// inventory: .lghsctl next to it, or under $XDG_STATE_HOME when that
// directory cannot be written.
func (g *Globals) stateDir() string {
	dir := filepath.Join(filepath.Dir(g.Inventory), ".lghsctl")
	if err := os.MkdirAll(dir, 0o700); err == nil {
		return dir
	}
	base := g.Getenv("XDG_STATE_HOME")
	if base == "" {
		base = filepath.Join(g.Getenv("HOME"), ".local", "state")
	}
	abs, _ := filepath.Abs(g.Inventory)
	return filepath.Join(base, "lghsctl", strings.NewReplacer("/", "_").Replace(strings.TrimPrefix(abs, "/")))
}

// openLog opens the run's debug log.
func (g *Globals) openLog(command string, r *logging.Redactor) (*logging.File, error) {
	var extra io.Writer
	level := slog.LevelWarn
	switch {
	case g.Verbose == 1:
		extra, level = g.Err, slog.LevelInfo
	case g.Verbose > 1:
		extra, level = g.Err, slog.LevelDebug
	}
	return logging.Open(filepath.Join(g.stateDir(), "logs"), command, r, extra, level)
}

// since is time.Since, kept here so run functions read naturally.
func since(t time.Time) time.Duration { return time.Since(t) }

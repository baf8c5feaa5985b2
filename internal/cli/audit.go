package cli

import (
	"context"

	"github.com/spf13/cobra"
)

// newAudit is `lghsctl audit`: up's verify phase on its own, changing
// nothing: HTTPS to every ACME site with the chain checked, and the
// exposure audit of every host.
func newAudit(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "audit",
		Short: "Check the hosts from outside: HTTPS certificates and nothing exposed beyond the inventory",
		Long: `audit checks what the hosts of the inventory show the world, and changes
nothing (the same checks end every up):

  - every ACME site answers HTTPS on its addresses (IPv4 and IPv6) with a
    chain valid for the CA, the certificate lghsctl deployed;
  - the exposure audit: the host's listening sockets and Docker's published
    ports, probed from outside; a container port reachable from outside, or
    published on every address (Docker bypasses the host's firewall), fails.

It exits 1 when a check fails, naming what is exposed and how to fix it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runAudit(cmd.Context(), g) },
	}
}

func runAudit(ctx context.Context, g *Globals) error {
	g.Check = false // audit only reads; verify is skipped in check mode
	s, err := g.openCloud(ctx, "audit", nil)
	if err != nil {
		return err
	}
	defer s.close()
	pl, err := s.prov.Plan(ctx)
	if err != nil {
		return s.finish(err, false)
	}
	st := &UpState{Cloud: pl.Outputs()}
	defer func() {
		if st.hosts != nil {
			st.hosts.closeAll()
		}
	}()
	return s.finish(runVerifyPhase(ctx, s, st), false)
}

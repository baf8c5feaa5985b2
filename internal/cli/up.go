package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/provision"
)

type upOptions struct {
	*Globals
	Phases []string
}

// newUp is `lghsctl up`: create or converge everything the inventory
// describes, phase by phase.
func newUp(g *Globals) *cobra.Command {
	o := &upOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create or converge everything the inventory describes",
		Long: `up runs its phases in order; each is idempotent, so up can be run again at
any time (after a failure, after Ctrl-C, after a manual change) and converges.

  cloud         Scaleway: SSH keys, security groups, flexible IPs, the
                servers; DNS records (while the servers boot). The plan is
                shown first, like lghsctl plan; changes the plan marks ! are
                never made.
  certificates  ACME certificates over DNS-01 for the sites, deployed in
                certbot's layout, the on-host renewal timer, CAA records.
  hosts         over SSH: packages, admins, SSH hardening (never locking
                you out), Docker, the sites' apps, nginx.
  verify        HTTPS to every site through DNS with the chain checked, and
                the exposure audit (nothing reachable that should not be).

With --check, up shows what it would change and changes nothing (with
--detailed-exitcode it then exits 3 when something would change).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context()) },
	}
	cmd.Flags().BoolVar(&g.DetailedExitcode, "detailed-exitcode", false, "with --check, exit 3 when there are changes to make")
	cmd.Flags().StringSliceVar(&o.Phases, "phase", nil, "run only these phases (cloud, certificates, hosts, verify)")
	cmd.Flags().StringSliceVar(&g.TrustNewHosts, "trust-new-host", nil, "trust these hosts' SSH keys on first use (servers lghsctl made in an earlier, interrupted run)")
	return cmd
}

// UpState is what up's phases hand to each other: each phase reads what
// the earlier ones produced and adds its own.
type UpState struct {
	// Cloud is the cloud phase's result: per host, its server, addresses,
	// whether it was just created (its SSH host key is then unknown and may
	// be trusted on first use) and its DNS names.
	Cloud provision.Outputs
	// Pending is set by a phase that found (in check mode) or made changes.
	Pending bool
	// hosts are the SSH connections the host phases share.
	hosts *hostConns
}

// upPhase is one phase of up.
type upPhase struct {
	Name string
	Run  func(ctx context.Context, s *cloudSession, st *UpState) error
}

// upPhases are up's phases, in order. Adding a phase is adding a line.
func upPhases() []upPhase {
	return []upPhase{
		{Name: "cloud", Run: runCloudPhase},
		{Name: "certificates", Run: runCertsPhase},
		{Name: "hosts", Run: runHostsPhase},
		{Name: "verify", Run: runVerifyPhase},
	}
}

func (o *upOptions) run(ctx context.Context) error {
	phases := upPhases()
	for _, p := range o.Phases {
		if !slices.ContainsFunc(phases, func(ph upPhase) bool { return ph.Name == p }) {
			return usageError{fmt.Errorf("--phase %s: no such phase (cloud, certificates, hosts, verify)", p)}
		}
	}
	s, err := o.openCloud(ctx, "up", nil)
	if err != nil {
		return err
	}
	defer s.close()
	st := &UpState{}
	defer func() {
		if st.hosts != nil {
			st.hosts.closeAll()
		}
	}()
	for _, ph := range phases {
		if len(o.Phases) > 0 && !slices.Contains(o.Phases, ph.Name) {
			continue
		}
		s.logf.Logger.Info("phase", "name", ph.Name)
		if err := ph.Run(ctx, s, st); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return s.finish(err, o.Check)
		}
	}
	if o.Check && o.DetailedExitcode && st.Pending {
		return s.finish(ErrChangesPending, true)
	}
	return s.finish(nil, o.Check)
}

// runCloudPhase plans the cloud side, shows the plan, and (unless in check
// mode) applies it; the hosts' outputs go to st.Cloud.
func runCloudPhase(ctx context.Context, s *cloudSession, st *UpState) error {
	s.tally.Play("cloud")
	pl, err := s.prov.Plan(ctx)
	if err != nil {
		return err
	}
	s.showPlan(pl)
	st.Pending = st.Pending || pl.Pending()
	if pl.Blocked() {
		s.tally.Message(report.Error, "the cloud plan has blocked changes (marked !): fix what their notes say, then run up again; nothing was changed")
		return silentError{ExitFailure, provision.ErrBlocked}
	}
	if s.g.Check {
		st.Cloud = pl.Outputs()
		return nil
	}
	out, err := s.prov.Apply(ctx, pl)
	st.Cloud = out
	for _, h := range out.Hosts {
		s.tally.Message(report.Info, describeHost(h))
	}
	if err != nil {
		return err
	}
	return nil
}

// describeHost is the one line saying where a host is.
func describeHost(h provision.HostOutput) string {
	var addrs []string
	if h.IPv4.IsValid() {
		addrs = append(addrs, h.IPv4.String())
	}
	if h.IPv6.IsValid() {
		addrs = append(addrs, h.IPv6.String())
	}
	line := fmt.Sprintf("%s: %s (server %s in %s, %s)", h.Host, strings.Join(addrs, " "), h.ServerID, h.Zone, h.State)
	if len(h.DNSNames) > 0 {
		line += " " + strings.Join(h.DNSNames, " ")
	}
	if h.Created {
		line += "; just created: its SSH host key will be trusted on first use"
	}
	return line
}

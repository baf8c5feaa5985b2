package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/inventory"
	"github.com/lghs/lghsctl/provision"
)

type destroyOptions struct {
	*Globals
	Yes         bool
	WithBackups bool
	Force       bool
}

// newDestroy is `lghsctl destroy`: delete exactly what lghsctl created.
func newDestroy(g *Globals) *cobra.Command {
	o := &destroyOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "destroy [HOST...]",
		Short: "Delete exactly what lghsctl created for a host",
		Long: `destroy shows what it will delete, asks for the host name (or, for several
hosts, the inventory name) to be typed unless --yes is given, then deletes:
the host's DNS records, its server and volumes, its IPs, and the security
groups no server uses any more. Without HOST it destroys every host of the
inventory; a clone made by snapshot restore is destroyed by naming it.

Only resources carrying lghsctl's marks are touched: a record, server or
group made by someone else is left as it is. Backups are kept unless
--with-backups is given, and deleting a host's last backup also needs
--force. What is left behind is listed at the end. Running destroy again
finds nothing to do.`,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args) },
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	f.BoolVar(&o.WithBackups, "with-backups", false, "also delete the hosts' backups (images and snapshots)")
	f.BoolVar(&o.Force, "force", false, "with --with-backups, allow deleting a host's last backup")
	return cmd
}

func (o *destroyOptions) run(ctx context.Context, hosts []string) error {
	s, err := o.openCloud(ctx, "destroy", &cloudNeeds{dnsAlways: true})
	if err != nil {
		return err
	}
	defer s.close()
	s.tally.Play("destroy")
	dp, err := s.prov.PlanDestroy(ctx, hosts, provision.DestroyOptions{WithBackups: o.WithBackups, Force: o.Force})
	if err != nil {
		return s.finish(err, o.Check)
	}
	if dp.Empty() && !dp.Blocked() {
		s.tally.Message(report.Info, "nothing to destroy: lghsctl made nothing that still exists for "+targetName(s, hosts))
		o.leftovers(s, dp)
		return s.finish(nil, o.Check)
	}
	s.tally.Plan("destroy", dp.Changes)
	if dp.Blocked() {
		s.tally.Message(report.Error, "destroy refused (see the notes marked !); nothing was deleted")
		return s.finish(silentError{ExitFailure, provision.ErrBlocked}, o.Check)
	}
	if o.Check {
		o.leftovers(s, dp)
		return s.finish(nil, true)
	}
	if !o.Yes {
		want := targetName(s, hosts)
		if len(hosts) != 1 {
			want = s.f.Name
		}
		if o.JSON {
			return s.finish(usageError{errors.New("destroy --json needs --yes (there is no one to type the confirmation)")}, false)
		}
		fmt.Fprintf(o.Out, "\nThis deletes the resources above. Type %q to confirm: ", want)
		line, _ := bufio.NewReader(o.In).ReadString('\n')
		if strings.TrimSpace(line) != want {
			fmt.Fprintln(o.Out)
			s.tally.Message(report.Error, "not confirmed: nothing was deleted")
			return s.finish(silentError{ExitFailure, errors.New("not confirmed")}, false)
		}
	}
	err = s.prov.Destroy(ctx, dp)
	if err == nil {
		o.forgetHostKeys(s, dp)
	}
	o.leftovers(s, dp)
	return s.finish(err, false)
}

// forgetHostKeys removes the destroyed servers' pinned SSH host keys from
// the hosts' known_hosts files: the next server given one of those
// addresses is a new machine, trusted on first use when up creates it.
func (o *destroyOptions) forgetHostKeys(s *cloudSession, dp *provision.DestroyPlan) {
	for name, addrs := range dp.Addresses() {
		i := slices.IndexFunc(s.f.Hosts, func(h inventory.Host) bool { return h.Name == name })
		if i < 0 {
			continue // a clone made by snapshot restore: never pinned by up
		}
		h := &s.f.Hosts[i]
		port := h.SSH.Port
		if port == 0 {
			port = 22
		}
		file := expandHome(h.SSH.KnownHosts, o.Getenv)
		n := 0
		for _, a := range addrs {
			k, err := remote.ForgetHost(file, a.String(), port)
			if err != nil {
				s.tally.Message(report.Warning, fmt.Sprintf("%s: could not remove the host key of %s from %s: %v", name, a, file, err))
			}
			n += k
		}
		if n > 0 {
			s.logf.Logger.Info("forgot host keys", "host", name, "addresses", addrs, "file", file, "removed", n)
		}
	}
}

func (o *destroyOptions) leftovers(s *cloudSession, dp *provision.DestroyPlan) {
	for _, l := range dp.Leftovers {
		s.tally.Message(report.Info, "left behind: "+l)
	}
}

// targetName names what is destroyed, for messages.
func targetName(s *cloudSession, hosts []string) string {
	if len(hosts) == 0 {
		return "inventory " + s.f.Name
	}
	return strings.Join(hosts, ", ")
}

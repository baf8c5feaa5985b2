package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lghs/lghsctl/internal/logging"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/inventory"
	"github.com/lghs/lghsctl/provision"
	"github.com/lghs/lghsctl/provision/cloudflare"
	"github.com/lghs/lghsctl/provision/httpretry"
	"github.com/lghs/lghsctl/provision/scaleway"
)

type planOptions struct {
	*Globals
}

// newPlan is `lghsctl plan`: what up would change in the cloud.
func newPlan(g *Globals) *cobra.Command {
	o := &planOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what up would change in the cloud",
		Long: `plan reads the cloud (Scaleway and the DNS provider) and prints, like
terraform plan, what up would create (+), change (~) or delete (-) to match
the inventory, and what it will not do by itself (!, with what it would take).
It changes nothing.

Resources are found by their ownership marks (Scaleway tags
lghsctl=<inventory> and lghsctl-host=<host>, DNS records commented
"managed by lghsctl: <inventory>/<host>"); there is no state file.

Exit codes: 0 (nothing to change, or changes without --detailed-exitcode),
1 (an API refused, or the plan has blocked changes), 2 (inventory problem),
3 (changes pending, with --detailed-exitcode).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context()) },
	}
	cmd.Flags().BoolVar(&g.DetailedExitcode, "detailed-exitcode", false, "exit 3 when there are changes to make")
	return cmd
}

func (o *planOptions) run(ctx context.Context) error {
	s, err := o.openCloud(ctx, "plan", nil)
	if err != nil {
		return err
	}
	defer s.close()
	pl, err := s.prov.Plan(ctx)
	if err != nil {
		return s.finish(err, true)
	}
	s.showPlan(pl)
	switch {
	case pl.Blocked():
		s.tally.Message(report.Error, "the plan has blocked changes (marked !): up will not run until what their notes say is fixed")
		err = silentError{ExitFailure, provision.ErrBlocked}
	case pl.Pending() && o.DetailedExitcode:
		err = ErrChangesPending
	}
	return s.finish(err, true)
}

// cloudSession is one command's access to the cloud: the inventory, the
// run's debug log with its redactor, the reporter (counting tasks), and the
// provisioner over the Scaleway and DNS adapters.
type cloudSession struct {
	g       *Globals
	command string
	start   time.Time
	f       *inventory.File
	red     *logging.Redactor
	logf    *logging.File
	tally   *report.Tally
	prov    *provision.Provisioner
	sc      *scaleway.Client
	dns     provision.DNS
}

// cloudNeeds says which APIs a command needs.
type cloudNeeds struct {
	// dnsAlways asks for the DNS provider even when no host in scope has
	// a name (destroy and restore find records by their comment).
	dnsAlways bool
	// noDNS: the command does not touch DNS (snapshot create, list,
	// prune), so no DNS token is needed.
	noDNS bool
}

// openCloud loads the inventory and builds the adapters from the
// environment. Inventory problems are reported (stderr or JSON) and
// returned as a silent usage error.
func (g *Globals) openCloud(ctx context.Context, command string, needs *cloudNeeds) (*cloudSession, error) {
	if needs == nil {
		needs = &cloudNeeds{}
	}
	f, err := g.loadInventory()
	if err != nil {
		return nil, g.reportProblems(err)
	}
	s := &cloudSession{g: g, command: command, start: time.Now(), f: f, red: &logging.Redactor{}}
	s.logf, err = g.openLog(command, s.red)
	if err != nil {
		return nil, err
	}
	s.tally = report.NewTally(g.reporter())
	log := s.logf.Logger

	needScaleway, needDNS := false, needs.dnsAlways
	for _, h := range f.Hosts {
		if h.Provider != "scaleway" || (len(g.Limit) > 0 && !slices.Contains(g.Limit, h.Name)) {
			continue
		}
		needScaleway = true
		needDNS = needDNS || len(h.DNS) > 0
	}
	if (needs.dnsAlways && len(f.DNS.Zones) == 0) || needs.noDNS {
		needDNS = false
	}
	cfg := provision.Config{Inventory: f, Home: g.Getenv("HOME"), Limit: g.Limit, Reporter: s.tally, Log: log}
	if needScaleway || needs.dnsAlways {
		creds, err := scaleway.LoadCredentials(f.Scaleway.Profile, g.Getenv)
		if err != nil {
			s.close()
			return nil, err
		}
		if err := creds.Check(); err != nil {
			s.close()
			return nil, err
		}
		if k := creds.Profile.SecretKey; k != nil {
			s.red.Add(*k)
		}
		log.Info("scaleway credentials", "sources", strings.Join(creds.Sources, ", "))
		tr := httpretry.New("scaleway", nil, httpretry.Policy{}, log)
		s.sc, err = scaleway.New(scaleway.Config{Credentials: creds, ProjectID: f.Scaleway.ProjectID, HTTPClient: tr.Client(),
			UserAgent: "lghsctl/" + Version})
		if err != nil {
			s.close()
			return nil, err
		}
		if s.sc.Project() == "" {
			if f.Scaleway.Project == "" {
				s.close()
				return nil, usageError{fmt.Errorf("no Scaleway project: set scaleway.project_id (or scaleway.project) in %s, SCW_DEFAULT_PROJECT_ID, or default_project_id in the scw profile", f.Path)}
			}
			if _, err := s.sc.ResolveProject(ctx, f.Scaleway.Project); err != nil {
				s.close()
				return nil, err
			}
		}
		cfg.Scaleway = s.sc
	}
	if needDNS {
		tok, err := f.DNS.Token.Resolve(g.Getenv)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("dns.token: %w", err)
		}
		s.red.Add(tok.Reveal())
		base := g.Getenv("CLOUDFLARE_BASE_URL")
		tr := httpretry.New("cloudflare", nil, httpretry.Policy{}, log)
		c, err := cloudflare.New(cloudflare.Config{BaseURL: base, Token: tok.Reveal(), HTTPClient: tr.Client()})
		if err != nil {
			s.close()
			return nil, err
		}
		s.dns = c
		cfg.DNS = c
	}
	s.prov = provision.New(cfg)
	if err := s.prov.CheckLimit(); err != nil {
		s.close()
		return nil, usageError{err}
	}
	return s, nil
}

// reportProblems shows inventory problems like validate does and turns
// them into a silent usage error; other errors pass through.
func (g *Globals) reportProblems(err error) error {
	var ps inventory.Problems
	if !errors.As(err, &ps) {
		if strings.HasPrefix(err.Error(), "read inventory") {
			return usageError{err}
		}
		return err
	}
	if g.JSON {
		r := report.NewJSON(g.Out)
		for _, p := range ps {
			r.Message(report.Error, p.String())
		}
	} else {
		fmt.Fprintln(g.Err, ps.Error())
	}
	return silentError{ExitUsage, err}
}

func (s *cloudSession) close() {
	if s.logf != nil {
		s.logf.Close()
	}
}

// showPlan prints the cloud plan and its notes.
func (s *cloudSession) showPlan(pl *provision.Plan) {
	s.tally.Plan("cloud", pl.Changes)
	for _, n := range pl.Notes {
		s.tally.Message(report.Warning, n)
	}
}

// finish ends the run: the error is logged and shown, the recap printed,
// and the error to return (with its exit code) decided.
func (s *cloudSession) finish(err error, check bool) error {
	var ps inventory.Problems
	if errors.As(err, &ps) {
		return s.g.reportProblems(err)
	}
	code := ExitCode(err)
	var se silentError
	shown := errors.As(err, &se) || errors.Is(err, ErrChangesPending) || code == ExitInterrupted
	if err != nil && !shown {
		s.logf.Logger.Error(s.command+" failed", "err", err)
		s.tally.Message(report.Error, s.red.Redact(err.Error()))
		err = silentError{code, err}
	}
	if err != nil && code == ExitInterrupted {
		err = silentError{ExitInterrupted, err}
	}
	s.tally.Summary(report.Summary{Command: s.command, Hosts: s.tally.Recaps(), Duration: since(s.start),
		Interrupted: code == ExitInterrupted, ExitCode: code, LogFile: s.logf.Path, Check: check})
	if errors.Is(err, ErrChangesPending) {
		return ErrChangesPending
	}
	return err
}

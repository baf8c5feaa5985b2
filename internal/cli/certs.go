package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lghs/lghsctl/certs"
	"github.com/lghs/lghsctl/internal/logging"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/inventory"
	"github.com/lghs/lghsctl/provision"
)

// newCerts is `lghsctl certs`: the certificates' status, and the renewal
// mode the hosts' timer runs.
func newCerts(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "TLS certificates: status, and the on-host renewal",
		Long: `certs shows the sites' certificates and runs the renewal on a host.

up obtains each site's certificate (ACME DNS-01 through Cloudflare), deploys it
to /etc/letsencrypt/live/<site>/, publishes CAA records and installs a systemd
timer (lghsctl-certs-renew.timer) that runs "lghsctl certs renew" on the host
twice a day. See docs/certs.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCertsRenew(g), newCertsStatus(g))
	return cmd
}

type certsRenewOptions struct {
	*Globals
	Config string
	Force  bool
}

func newCertsRenew(g *Globals) *cobra.Command {
	o := &certsRenewOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "renew --config FILE",
		Short: "Renew this host's certificates when due (run by the host's timer)",
		Long: `renew is what lghsctl-certs-renew.service runs on a host. For each certificate
of the configuration (written by up; it holds no secret, only the paths of the
0600 token and account key files) it renews when the certificate expires within
the renewal window or when the CA's renewal info says so, reloads nginx, then
checks over TLS, on each IPv4 and IPv6 address of each name, that the served
certificate is the deployed one (serial and expiry).

It exits 1 when anything failed (visible in systemctl status and the journal);
a certificate that could not be renewed stays in place and keeps being served.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context()) },
	}
	cmd.Flags().StringVar(&o.Config, "config", certs.HostRenewConfig, "renewal configuration")
	cmd.Flags().BoolVar(&o.Force, "force", false, "renew every certificate now, due or not")
	return cmd
}

func (o *certsRenewOptions) run(ctx context.Context) error {
	cfg, err := certs.LoadRenewConfig(o.Config)
	if err != nil {
		return usageError{err}
	}
	_, err = certs.Renew(ctx, cfg, certs.RenewOptions{Force: o.Force, Out: o.Out, Log: o.stderrLog()})
	switch {
	case errors.Is(err, certs.ErrRenewFailed):
		return silentError{ExitFailure, err}
	case err != nil:
		return err
	}
	return nil
}

// stderrLog is the debug log of commands without an inventory (the host
// side): on stderr with -v, discarded otherwise.
func (g *Globals) stderrLog() *slog.Logger {
	switch {
	case g.Verbose == 1:
		return slog.New(slog.NewTextHandler(g.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	case g.Verbose > 1:
		return slog.New(slog.NewTextHandler(g.Err, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type certsStatusOptions struct {
	*Globals
	Config string
}

func newCertsStatus(g *Globals) *cobra.Command {
	o := &certsStatusOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Each certificate's names, issuer, expiry and last renewal result",
		Long: `status shows, for each ACME site, the deployed certificate (names, issuer,
serial, expiry) and the outcome of the host's last renewal run.

From the operator's machine it reads them from each host of the inventory (or
--limit) over SSH, with the host keys up pinned in known_hosts; on a host,
--config reads them locally.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context()) },
	}
	cmd.Flags().StringVar(&o.Config, "config", "", "read this host's renewal configuration and state locally (on the host)")
	return cmd
}

func (o *certsStatusOptions) run(ctx context.Context) error {
	if o.Config == "" {
		return o.runHosts(ctx)
	}
	cfg, err := certs.LoadRenewConfig(o.Config)
	if err != nil {
		return usageError{err}
	}
	var sites []string
	for _, c := range cfg.Certificates {
		sites = append(sites, c.Name)
	}
	st, err := certs.ReadStatus(ctx, certs.LocalFiles{}, sites, cfg.LiveRoot, cfg.StateFile)
	if err != nil {
		return err
	}
	return o.show("", st)
}

// runHosts reads each host's certificates over SSH (hosts of --limit, or
// all with an ACME site). A host without ssh.address (or ssh.config_host)
// is reached at its cloud address, which asks the cloud (read only).
func (o *certsStatusOptions) runHosts(ctx context.Context) error {
	f, err := o.loadInventory()
	if err != nil {
		return o.reportProblems(err)
	}
	var hosts []*inventory.Host
	needCloud := false
	for i := range f.Hosts {
		h := &f.Hosts[i]
		if len(o.Limit) > 0 && !slices.Contains(o.Limit, h.Name) {
			continue
		}
		if !slices.ContainsFunc(h.Sites, func(s inventory.Site) bool { return s.TLS == "acme" }) {
			continue
		}
		hosts = append(hosts, h)
		needCloud = needCloud || h.SSH.Address == "" && h.SSH.ConfigHost == ""
	}
	if len(hosts) == 0 {
		return usageError{fmt.Errorf("no host with an ACME site in %s", describeLimit(o.Limit))}
	}
	addrs := map[string]string{}
	if needCloud {
		s, err := o.openCloud(ctx, "certs status", &cloudNeeds{noDNS: true})
		if err != nil {
			return err
		}
		pl, err := s.prov.Plan(ctx)
		s.close()
		if err != nil {
			return err
		}
		for _, h := range pl.Outputs().Hosts {
			if a := h.Address(); a.IsValid() {
				addrs[h.Host] = a.String()
			}
		}
	}
	failed := 0
	for _, h := range hosts {
		err := func() error {
			addr := h.SSH.Address
			if addr == "" && h.SSH.ConfigHost == "" {
				if addr = addrs[h.Name]; addr == "" {
					return fmt.Errorf("no address: the cloud has no server for it")
				}
			}
			c, err := remote.Dial(ctx, o.sshConfig(h, addr))
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := hostStatus(ctx, c, h)
			if err != nil {
				return err
			}
			return o.show(h.Name, st)
		}()
		if err != nil {
			failed++
			fmt.Fprintf(o.Err, "lghsctl: %s: %v\n", h.Name, err)
		}
	}
	if failed > 0 {
		return silentError{ExitFailure, fmt.Errorf("%d hosts could not be read", failed)}
	}
	return nil
}

func describeLimit(limit []string) string {
	if len(limit) == 0 {
		return "the inventory"
	}
	return "--limit " + strings.Join(limit, ",")
}

// sshConfig is how the operator's lghsctl reaches a host: the inventory's
// ssh section, the agent, ~/.ssh/config, and known_hosts pinning (a host
// is known once up has set it up; status never trusts a new key).
func (g *Globals) sshConfig(h *inventory.Host, addr string) remote.Config {
	home := g.Getenv("HOME")
	cfg := remote.Config{
		Name:           h.Name,
		Address:        addr,
		Port:           h.SSH.Port,
		User:           h.SSH.User,
		AgentSocket:    g.Getenv("SSH_AUTH_SOCK"),
		HomeDir:        home,
		LocalUser:      g.Getenv("USER"),
		KnownHostsFile: expandHome(h.SSH.KnownHosts, g.Getenv),
		ConfigHost:     h.SSH.ConfigHost,
		ProxyJump:      h.SSH.ProxyJump,
		Sudo:           h.SSH.User != "" && h.SSH.User != "root",
	}
	if h.SSH.IdentityFile != "" {
		cfg.IdentityFiles = []string{expandHome(h.SSH.IdentityFile, g.Getenv)}
	}
	if home != "" {
		if p := home + "/.ssh/config"; fileExists(p) {
			cfg.SSHConfigFile = p
		}
		cfg.ExtraKnownHosts = []string{home + "/.ssh/known_hosts"}
	}
	return cfg
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// hostStatus reads one host's certificate status through r (the SSH
// connection) for the inventory's ACME sites of that host.
func hostStatus(ctx context.Context, r certs.FileReader, h *inventory.Host) ([]certs.CertStatus, error) {
	var sites []string
	for _, s := range h.Sites {
		if s.TLS == "acme" {
			sites = append(sites, s.Name)
		}
	}
	return certs.ReadStatus(ctx, r, sites, "", "")
}

// show prints certificate statuses (of one host when host is set).
func (g *Globals) show(host string, st []certs.CertStatus) error {
	if g.JSON {
		enc := json.NewEncoder(g.Out)
		for _, s := range st {
			if err := enc.Encode(struct {
				Type string `json:"type"`
				Host string `json:"host,omitempty"`
				certs.CertStatus
			}{"certificate", host, s}); err != nil {
				return err
			}
		}
		return nil
	}
	writeStatus(g.Out, host, st, time.Now())
	return nil
}

func writeStatus(w io.Writer, host string, st []certs.CertStatus, now time.Time) {
	for _, s := range st {
		title := s.Name
		if host != "" {
			title = host + ": " + s.Name
		}
		fmt.Fprintln(w, title)
		if d := s.Deployed; d != nil {
			fmt.Fprintf(w, "  names    %s\n", strings.Join(d.Names, ", "))
			fmt.Fprintf(w, "  issuer   %s\n", d.Issuer)
			fmt.Fprintf(w, "  serial   %s\n", d.Serial)
			fmt.Fprintf(w, "  expires  %s (%s)\n", d.NotAfter.Format(time.RFC3339), untilText(d.NotAfter, now))
		} else {
			fmt.Fprintf(w, "  problem  %s\n", s.Problem)
		}
		switch l := s.Last; {
		case l == nil:
			fmt.Fprintln(w, "  renewal  no renewal run on the host yet")
		default:
			line := fmt.Sprintf("%s at %s", l.Result, s.Checked.Format(time.RFC3339))
			if l.Detail != "" {
				line += ": " + l.Detail
			}
			fmt.Fprintf(w, "  renewal  %s\n", line)
			if !l.LastRenewed.IsZero() {
				fmt.Fprintf(w, "  renewed  %s\n", l.LastRenewed.Format(time.RFC3339))
			}
		}
	}
}

func untilText(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d < 0:
		return "expired"
	case d < 48*time.Hour:
		return "in " + d.Round(time.Minute).String()
	}
	return fmt.Sprintf("in %d days", int(d/(24*time.Hour)))
}

// certsSettings reads how to reach the CA and the DNS provider: the
// inventory's acme section, then the environment's overrides (the lab sets
// them): LGHSCTL_ACME_DIRECTORY, LGHSCTL_ACME_CA_BUNDLE (a PEM file),
// LGHSCTL_DNS_RESOLVERS (comma-separated host:port) and
// CLOUDFLARE_BASE_URL.
func certsSettings(f *inventory.File, getenv func(string) string, log *slog.Logger) (certs.Settings, error) {
	a := f.ACME
	if a == nil {
		return certs.Settings{}, fmt.Errorf("%s has no acme section", f.Path)
	}
	s := certs.Settings{
		DirectoryURL:  a.DirectoryURL(),
		Email:         a.Email,
		KeyType:       a.KeyType,
		RenewBefore:   time.Duration(a.RenewBefore),
		Resolvers:     a.Resolvers,
		CloudflareURL: getenv("CLOUDFLARE_BASE_URL"),
		Logger:        log,
	}
	bundle := a.CABundle
	if v := getenv("LGHSCTL_ACME_DIRECTORY"); v != "" {
		s.DirectoryURL = v
	}
	if v := getenv("LGHSCTL_ACME_CA_BUNDLE"); v != "" {
		bundle = v
	}
	if v := getenv("LGHSCTL_DNS_RESOLVERS"); v != "" {
		s.Resolvers = nil
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				s.Resolvers = append(s.Resolvers, r)
			}
		}
	}
	if bundle != "" {
		b, err := os.ReadFile(bundle)
		if err != nil {
			return s, fmt.Errorf("acme CA bundle: %w", err)
		}
		s.CABundle = b
	}
	return s, nil
}

// certsPhaseConfig builds the certificate phase of one host for up: the
// endpoints (certsSettings), every zone's DNS-01 token (registered with the
// redactor), the CAA publisher when acme.caa is on, the binary copied to
// the host (this executable, or LGHSCTL_HOST_BINARY) and the state
// directory.
func (g *Globals) certsPhaseConfig(f *inventory.File, h *inventory.Host, red *logging.Redactor, log *slog.Logger) (certs.PhaseConfig, error) {
	s, err := certsSettings(f, g.Getenv, log)
	if err != nil {
		return certs.PhaseConfig{}, err
	}
	cfg := certs.PhaseConfig{
		Inventory: f,
		Host:      h,
		Settings:  s,
		StateDir:  g.stateDir(),
		Tokens:    map[string]inventory.Secret{},
		Schedule:  f.ACME.RenewSchedule,
		// The binary the host runs: this one (a static Linux build, as
		// make build makes), or LGHSCTL_HOST_BINARY when the operator's
		// machine is not the host's platform.
		Binary: func() ([]byte, error) {
			exe := g.Getenv("LGHSCTL_HOST_BINARY")
			if exe == "" {
				var err error
				if exe, err = os.Executable(); err != nil {
					return nil, err
				}
			}
			return os.ReadFile(exe)
		},
	}
	for i, z := range f.DNS.Zones {
		tok, err := z.ACMEToken.Resolve(g.Getenv)
		if err != nil {
			if !zoneHasACMESite(f, h, z.Name) {
				continue
			}
			return cfg, fmt.Errorf("dns.zones[%d].acme_token: %w", i, err)
		}
		red.Add(tok.Reveal())
		cfg.Tokens[z.Name] = tok
	}
	if a := f.ACME; a.CAA != nil && *a.CAA {
		main, err := f.DNS.Token.Resolve(g.Getenv)
		if err != nil {
			return cfg, fmt.Errorf("dns.token (for CAA records): %w", err)
		}
		red.Add(main.Reveal())
		cfg.CAA = &certs.CloudflareCAA{
			BaseURL: or(s.CloudflareURL, certs.DefaultCloudflareURL),
			Token:   func(string) inventory.Secret { return main },
			ZoneOf:  f.ZoneOf,
			Comment: certs.CAAComment(f.Name),
		}
		cfg.CAAIdentity = a.CAAIdentity
	}
	return cfg, nil
}

func zoneHasACMESite(f *inventory.File, h *inventory.Host, zone string) bool {
	for _, s := range h.Sites {
		if s.TLS != "acme" {
			continue
		}
		for _, n := range append([]string{s.Name}, s.Aliases...) {
			if f.ZoneOf(n) == zone {
				return true
			}
		}
	}
	return false
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dnsCAA publishes CAA records through provision's DNS adapter
// (provision.DNS), with certs' ownership comment. It is ready for when
// provision/cloudflare creates CAA records (its record body handles A and
// AAAA only today, so certsPhaseConfig wires certs.CloudflareCAA until
// then; switching is replacing that publisher with
// &dnsCAA{dns: <provision's client>, zoneOf: f.ZoneOf, comment: certs.CAAComment(f.Name)}).
type dnsCAA struct {
	dns     provision.DNS
	zoneOf  func(string) string
	comment string
}

// EnsureCAA implements certs.CAAPublisher.
func (d *dnsCAA) EnsureCAA(ctx context.Context, name string, want []certs.CAA, check bool) ([]string, error) {
	zoneName := d.zoneOf(name)
	z, err := d.dns.Zone(ctx, zoneName)
	if err != nil {
		return nil, fmt.Errorf("CAA for %s: zone %s: %w", name, zoneName, err)
	}
	recs, err := d.dns.Records(ctx, z.ID)
	if err != nil {
		return nil, fmt.Errorf("CAA for %s: %w", name, err)
	}
	type have struct {
		rec provision.Record
		caa certs.CAA
	}
	var haves []have
	for _, r := range recs {
		if r.Type != "CAA" || !strings.EqualFold(r.Name, name) {
			continue
		}
		c, err := parseCAA(r.Content)
		if err != nil {
			return nil, fmt.Errorf("CAA for %s: record %s: %w", name, r.ID, err)
		}
		haves = append(haves, have{r, c})
	}
	var changes []string
	kept := 0
	for _, h := range haves {
		switch {
		case slices.Contains(want, h.caa):
		case h.rec.Comment == d.comment:
			changes = append(changes, fmt.Sprintf("remove CAA %s %s", name, h.caa))
			if !check {
				if err := d.dns.DeleteRecord(ctx, z.ID, h.rec.ID); err != nil {
					return changes, fmt.Errorf("CAA for %s: delete %s: %w", name, h.caa, err)
				}
			}
		default:
			kept++
			changes = append(changes, fmt.Sprintf("keep CAA %s %s (not made by lghsctl)", name, h.caa))
		}
	}
	for _, w := range want {
		if slices.ContainsFunc(haves, func(h have) bool { return h.caa == w }) {
			continue
		}
		changes = append(changes, fmt.Sprintf("add CAA %s %s", name, w))
		if check {
			continue
		}
		if _, err := d.dns.CreateRecord(ctx, z.ID, provision.Record{Name: name, Type: "CAA", Content: w.String(), TTL: 1, Comment: d.comment}); err != nil {
			return changes, fmt.Errorf("CAA for %s: add %s: %w", name, w, err)
		}
	}
	if len(changes) == kept {
		return nil, nil
	}
	return changes, nil
}

// parseCAA reads a CAA record's presentation form: 0 issue "value".
func parseCAA(s string) (certs.CAA, error) {
	flags, rest, ok1 := strings.Cut(strings.TrimSpace(s), " ")
	tag, value, ok2 := strings.Cut(rest, " ")
	f, err := strconv.ParseUint(flags, 10, 8)
	if !ok1 || !ok2 || err != nil {
		return certs.CAA{}, fmt.Errorf("not a CAA record: %q", s)
	}
	if v, err := strconv.Unquote(value); err == nil {
		value = v
	}
	return certs.CAA{Flags: uint8(f), Tag: tag, Value: value}, nil
}

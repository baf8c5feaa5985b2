package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lghs/lghsctl/inventory"
	"github.com/lghs/lghsctl/provision/scaleway"
)

type validateOptions struct {
	*Globals
	RequireInputs bool
}

func newValidate(g *Globals) *cobra.Command {
	o := &validateOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the inventory and say which secrets and files it needs are missing",
		Long: `validate loads the inventory strictly and reports every problem at once, each
as file:line:col: field: message (exit code 2). It then lists the secrets and
files the inventory refers to and whether each is available, never showing a
value; with --require-inputs a missing one is an error (exit code 1).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run() },
	}
	cmd.Flags().BoolVar(&o.RequireInputs, "require-inputs", false, "fail when a secret or file the inventory names is missing")
	return cmd
}

// input is one secret or file an inventory refers to.
type input struct {
	Field   string `json:"field"`
	Source  string `json:"source"`
	Present bool   `json:"present"`
	Problem string `json:"problem,omitempty"`
}

func (o *validateOptions) run() error {
	f, err := o.loadInventory()
	var ps inventory.Problems
	if errors.As(err, &ps) {
		if o.JSON {
			o.emitJSON(false, ps, nil)
			return silentError{ExitUsage, err}
		}
		fmt.Fprintln(o.Err, ps.Error())
		noun := "problems"
		if len(ps) == 1 {
			noun = "problem"
		}
		fmt.Fprintf(o.Err, "%s: %d %s\n", o.Inventory, len(ps), noun)
		return silentError{ExitUsage, err}
	}
	if err != nil {
		return usageError{err}
	}
	inputs := checkInputs(f, o.Getenv)
	missing := 0
	for _, in := range inputs {
		if !in.Present {
			missing++
		}
	}
	if o.JSON {
		o.emitJSON(true, nil, inputs)
	} else {
		fmt.Fprintf(o.Out, "%s: valid (%s)\n", o.Inventory, summarize(f))
		if len(inputs) > 0 {
			fmt.Fprintln(o.Out, "secrets and files it refers to (values are never shown):")
			for _, in := range inputs {
				state := "ok     "
				detail := in.Source
				if !in.Present {
					state = "missing"
					detail = in.Problem
				}
				fmt.Fprintf(o.Out, "  %s  %-28s %s\n", state, in.Field, detail)
			}
		}
	}
	if missing > 0 && o.RequireInputs {
		return silentError{ExitFailure, fmt.Errorf("%d inputs missing", missing)}
	}
	return nil
}

func (o *validateOptions) emitJSON(valid bool, ps inventory.Problems, inputs []input) {
	if ps == nil {
		ps = inventory.Problems{}
	}
	if inputs == nil {
		inputs = []input{}
	}
	_ = json.NewEncoder(o.Out).Encode(struct {
		Type     string             `json:"type"`
		File     string             `json:"file"`
		Valid    bool               `json:"valid"`
		Problems inventory.Problems `json:"problems"`
		Inputs   []input            `json:"inputs"`
	}{"validate", o.Inventory, valid, ps, inputs})
}

func summarize(f *inventory.File) string {
	sites := 0
	for _, h := range f.Hosts {
		sites += len(h.Sites)
	}
	plural := func(n int, s string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, s)
		}
		return fmt.Sprintf("%d %ss", n, s)
	}
	return strings.Join([]string{
		plural(len(f.Hosts), "host"),
		plural(len(f.SecurityGroups), "security group"),
		plural(len(f.DNS.Zones), "DNS zone"),
		plural(sites, "site"),
	}, ", ")
}

// checkInputs lists the secrets and files the inventory needs and whether
// each is there. It never reads a secret's value into its result.
func checkInputs(f *inventory.File, getenv func(string) string) []input {
	var out []input
	secret := func(field string, r inventory.SecretRef) {
		_, err := r.Resolve(getenv)
		in := input{Field: field, Source: r.String(), Present: err == nil}
		if err != nil {
			in.Problem = err.Error()
		}
		out = append(out, in)
	}
	file := func(field, path string) {
		p := expandHome(path, getenv)
		st, err := os.Stat(p)
		in := input{Field: field, Source: "file " + path, Present: err == nil && !st.IsDir()}
		if err != nil {
			in.Problem = fmt.Sprintf("%s does not exist", path)
		}
		out = append(out, in)
	}
	needsScaleway := false
	needsDNS := false
	for _, h := range f.Hosts {
		needsScaleway = needsScaleway || h.Provider == "scaleway"
		needsDNS = needsDNS || len(h.DNS) > 0
	}
	if needsScaleway {
		in := input{Field: "scaleway credentials"}
		creds, err := scaleway.LoadCredentials(f.Scaleway.Profile, getenv)
		if err == nil {
			err = creds.Check()
		}
		if err != nil {
			in.Problem = err.Error()
		} else {
			in.Present = true
			in.Source = strings.Join(creds.Sources, ", ")
		}
		out = append(out, in)
	}
	if needsDNS {
		secret("dns.token", f.DNS.Token)
	}
	// A zone's ACME token is needed when a site with an ACME certificate
	// has a name in it.
	acmeZones := map[string]bool{}
	for _, h := range f.Hosts {
		for _, s := range h.Sites {
			if s.TLS != "acme" {
				continue
			}
			for _, n := range append([]string{s.Name}, s.Aliases...) {
				acmeZones[f.ZoneOf(n)] = true
			}
		}
	}
	for i, z := range f.DNS.Zones {
		if acmeZones[z.Name] && z.ACMEToken != f.DNS.Token {
			secret(fmt.Sprintf("dns.zones[%d].acme_token", i), z.ACMEToken)
		}
	}
	for i, k := range f.SSHKeys {
		if k.PublicKeyFile != "" {
			file(fmt.Sprintf("ssh_keys[%d].public_key_file", i), k.PublicKeyFile)
		}
	}
	for i, h := range f.Hosts {
		if h.SSH.IdentityFile != "" {
			file(fmt.Sprintf("hosts[%d].ssh.identity_file", i), h.SSH.IdentityFile)
		}
	}
	if m := f.Migrate; m != nil && m.From.SSH.IdentityFile != "" {
		file("migrate.from.ssh.identity_file", m.From.SSH.IdentityFile)
	}
	return out
}

func expandHome(p string, getenv func(string) string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(getenv("HOME"), rest)
	}
	return p
}

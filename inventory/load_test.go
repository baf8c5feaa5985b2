package inventory

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestInvalidInventoriesReportEveryProblemWithItsPosition loads each broken
// inventory under testdata/invalid and compares the full list of problems,
// file:line:col included, with its .golden file.
func TestInvalidInventoriesReportEveryProblemWithItsPosition(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test inventories found")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := Load(file)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load(%s) = %v, want Problems", file, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("missing golden file (run go test -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestRepositoryInventoryIsValid keeps the LgHS inventory at the root of the
// repository loadable, with the values the runbook used.
func TestRepositoryInventoryIsValid(t *testing.T) {
	f, err := Load("../inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := f.Hosts[0]
	checks := map[string][2]string{
		"zone":           {h.Zone, "fr-par-1"},
		"type":           {h.Type, "DEV1-M"},
		"image":          {h.Image, "debian_bookworm"},
		"root volume":    {h.RootVolume.Name, "lghs-chat"},
		"security group": {h.SecurityGroup, "hardened-conf"},
		"upstream":       {h.Sites[0].Upstream, "[::1]:3000"},
		"body size":      {h.Sites[0].ClientMaxBodySize, "200M"},
	}
	for what, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", what, c[0], c[1])
		}
	}
	sg := f.SecurityGroups[0]
	if sg.InboundDefault != "drop" || sg.OutboundDefault != "accept" || !sg.AllowSMTP || len(sg.Rules) != 6 {
		t.Errorf("security group = %+v", sg)
	}
	for _, r := range sg.Rules {
		if len(r.IPRanges) != 2 {
			t.Errorf("rule %+v should default to IPv4 and IPv6 ranges", r)
		}
	}
}

func TestValidExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	files = append(files, "../examples/lab/inventory.yaml")
	for _, file := range files {
		if _, err := os.Stat(file); err != nil {
			continue
		}
		if _, err := Load(file); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}

func TestWhereFallsBackToTheEnclosingField(t *testing.T) {
	f, err := Parse("inv.yaml", []byte("version: 1\nname: t\nsecurity_groups: [{name: sg}]\nhosts:\n  - name: a\n    security_group: sg\n    image: debian_trixie\n"))
	if err != nil {
		t.Fatal(err)
	}
	// hosts[0].zone is not written in the file (it defaults from
	// scaleway.zone), so its position is the host's.
	if got, want := f.Where("hosts[0].zone"), f.Where("hosts[0]"); got != want {
		t.Errorf("Where(hosts[0].zone) = %s, want %s", got, want)
	}
	if got := f.Where("hosts[0].image"); got != "inv.yaml:7:12" {
		t.Errorf("Where(hosts[0].image) = %s", got)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	for _, out := range []string{s.String(), strings.TrimSpace(sprintf("%v %s %q %+v %#v", s, s, s, s, s))} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Error("Reveal lost the value")
	}
}

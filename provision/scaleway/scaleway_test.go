package scaleway

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/scwsim"
	"github.com/lghs/lghsctl/provision"
)

const (
	testSecret  = "11111111-1111-4111-8111-111111111111"
	testProject = "22222222-2222-4222-8222-222222222222"
)

func newSim(t *testing.T) (*scwsim.Sim, *Client) {
	t.Helper()
	sim, err := scwsim.New(scwsim.Config{SecretKeys: []string{testSecret}, Projects: []scwsim.Project{{ID: testProject}},
		Machines: scwsim.NewFakeMachines(), Timings: scwsim.FastTimings(), Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = sim.Close(ctx)
	})
	env := map[string]string{"SCW_ACCESS_KEY": "SCWXXXXXXXXXXXXXXXXX", "SCW_SECRET_KEY": testSecret, "SCW_API_URL": srv.URL,
		"SCW_DEFAULT_PROJECT_ID": testProject, "HOME": t.TempDir()}
	creds, err := LoadCredentials("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func TestErrorsCarryTheStatusAndNotFound(t *testing.T) {
	_, c := newSim(t)
	ctx := context.Background()
	_, err := c.Server(ctx, "fr-par-1", "33333333-3333-4333-8333-333333333333")
	if !errors.Is(err, provision.ErrNotFound) || provision.Status(err) != 404 || provision.Ambiguous(err) {
		t.Errorf("missing server: %v (status %d)", err, provision.Status(err))
	}
	if _, err := c.ServerTypes(ctx, "xx-nowhere-9"); provision.Status(err) != 400 {
		t.Errorf("unknown zone: %v (status %d), want 400", err, provision.Status(err))
	}
	if _, err := c.ResolveImage(ctx, "fr-par-1", "no_such_label", "DEV1-M", true); !errors.Is(err, provision.ErrNotFound) {
		t.Errorf("unknown label: %v", err)
	}
	if err := c.DeleteIP(ctx, "fr-par-1", "33333333-3333-4333-8333-333333333333"); err != nil {
		t.Errorf("deleting what is gone is not an error: %v", err)
	}
}

func TestSecurityGroupRulesRoundTripAsTheAPIEchoesThem(t *testing.T) {
	_, c := newSim(t)
	ctx := context.Background()
	g, err := c.CreateSecurityGroup(ctx, "fr-par-1", provision.SecurityGroupSpec{Name: "web", Tags: []string{"lghsctl=t"}, Stateful: true,
		InboundDefault: "drop", OutboundDefault: "accept", EnableDefaultSecurity: false})
	if err != nil {
		t.Fatal(err)
	}
	if g.EnableDefaultSecurity || g.InboundDefault != "drop" {
		t.Errorf("group %+v", g)
	}
	want := []provision.Rule{
		{Direction: "inbound", Action: "accept", Protocol: "TCP", IPRange: netip.MustParsePrefix("192.0.2.7/32"), PortFrom: 22, PortTo: 22},
		{Direction: "inbound", Action: "accept", Protocol: "TCP", IPRange: netip.MustParsePrefix("::/0"), PortFrom: 8000, PortTo: 8100},
		{Direction: "inbound", Action: "accept", Protocol: "ICMP", IPRange: netip.MustParsePrefix("::/0")},
	}
	if err := c.SetRules(ctx, "fr-par-1", g.ID, want); err != nil {
		t.Fatal(err)
	}
	got, err := c.Rules(ctx, "fr-par-1", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("rules %+v", got)
	}
	for i := range want {
		w := want[i]
		w.Editable = true
		if got[i] != w {
			t.Errorf("rule %d = %+v, want %+v", i, got[i], w)
		}
	}
}

func TestProfileFromTheScwConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(`access_key: SCWXXXXXXXXXXXXXXXXX
secret_key: 11111111-1111-4111-8111-111111111111
default_project_id: 22222222-2222-4222-8222-222222222222
profiles:
  lab:
    api_url: http://127.0.0.1:9
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SCW_CONFIG_PATH": cfg}
	creds, err := LoadCredentials("lab", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if *creds.Profile.APIURL != "http://127.0.0.1:9" || *creds.Profile.SecretKey != testSecret {
		t.Errorf("profile lab merged on the root: %+v", creds.Profile)
	}
	c, err := New(Config{Credentials: creds})
	if err != nil || c.Project() != testProject {
		t.Errorf("client project %q, %v", c.Project(), err)
	}
	if _, err := LoadCredentials("nope", func(k string) string { return env[k] }); err == nil {
		t.Error("an unknown profile is an error")
	}
}

// TestResolveProjectByName: a project named in the inventory is found
// through the Account API (the stand-in's projects are named "default"
// unless configured), and an unknown name is ErrNotFound.
func TestResolveProjectByName(t *testing.T) {
	_, c := newSim(t)
	ctx := context.Background()
	id, err := c.ResolveProject(ctx, "default")
	if err != nil || id != testProject || c.Project() != testProject {
		t.Errorf("resolve default: %q, %v", id, err)
	}
	if _, err := c.ResolveProject(ctx, "lghs"); !errors.Is(err, provision.ErrNotFound) {
		t.Errorf("unknown project: %v", err)
	}
}

package appstack

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/inventory"
)

var update = flag.Bool("update", false, "rewrite golden files")

func lghsStack(t *testing.T) *Stack {
	f, err := inventory.Load("../inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return FromSite(f, &f.Hosts[0].Sites[0])
}

// TestComposeGolden renders the LgHS stack (the runbook's compose file,
// made loopback-only) and compares it with testdata.
func TestComposeGolden(t *testing.T) {
	got, err := lghsStack(t).Compose()
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/chat.lghs.be.compose.yaml"
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("compose file differs from %s:\n%s", golden, got)
	}
}

func TestStateIsNotInTheFile(t *testing.T) {
	s := lghsStack(t)
	a, _ := s.Compose()
	for i := range s.Services {
		s.Services[i].State = "running"
	}
	b, _ := s.Compose()
	if string(a) != string(b) {
		t.Error("changing a service's state changed the compose file")
	}
	run, stop := s.Running()
	if strings.Join(run, ",") != "mongo,rocketchat" || len(stop) != 0 {
		t.Errorf("running=%v stopped=%v", run, stop)
	}
}

func TestSecretsGoToTheEnvFileNotTheComposeFile(t *testing.T) {
	s := lghsStack(t)
	s.Services[1].SecretEnvironment = map[string]inventory.SecretRef{"SMTP_PASSWORD": {Env: "SMTP_PASSWORD"}}
	b, _ := s.Compose()
	if !strings.Contains(string(b), "env_file:\n      - /srv/chat.lghs.be/.lghsctl/rocketchat.env") {
		t.Errorf("no env_file:\n%s", b)
	}
	if got := string(SecretEnv(map[string]string{"B": "2", "A": "1"})); got != "A=1\nB=2\n" {
		t.Errorf("env file = %q", got)
	}
}

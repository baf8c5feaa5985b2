package scwsim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/scaleway/scaleway-sdk-go/scw"
	"golang.org/x/crypto/ssh"
)

// Test credentials that pass the SDK's format checks.
const (
	testAccessKey = "SCWXXXXXXXXXXXXXXXXX"
	testSecretKey = "11111111-1111-4111-8111-111111111111"
	testProject   = "22222222-2222-4222-8222-222222222222"
	testOrg       = "33333333-3333-4333-8333-333333333333"
)

// fastPoll makes the SDK waiters poll often.
var fastPoll = 10 * time.Millisecond

type testEnv struct {
	sim      *Sim
	fake     *FakeMachines
	client   *scw.Client
	url      string
	machines Machines
}

type envOption func(*Config)

// newTestEnv serves a stand-in on 127.0.0.1 and returns an SDK client for
// it. Machines default to a FakeMachines, timings to FastTimings.
func newTestEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	fake := NewFakeMachines()
	cfg := Config{
		SecretKeys: []string{testSecretKey},
		Projects:   []Project{{ID: testProject, OrganizationID: testOrg}},
		Machines:   fake,
		Timings:    FastTimings(),
		Seed:       1,
	}
	for _, o := range opts {
		o(&cfg)
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("new scwsim: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := sim.Close(ctx); err != nil {
			t.Errorf("close scwsim: %v", err)
		}
	})
	client, err := scw.NewClient(
		scw.WithAPIURL(srv.URL),
		scw.WithAuth(testAccessKey, testSecretKey),
		scw.WithDefaultProjectID(testProject),
		scw.WithDefaultZone(scw.ZoneFrPar1),
	)
	if err != nil {
		t.Fatalf("new scw client: %v", err)
	}
	return &testEnv{sim: sim, fake: fake, client: client, url: srv.URL, machines: cfg.Machines}
}

func newTestSSHKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
}

// labPrereq skips (or fails under CI=true) a test that needs the lab.
func labPrereq(t *testing.T, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("lab prerequisite missing (CI=true makes this a failure): %s", reason)
	}
	t.Skipf("lab prerequisite missing: %s", reason)
}

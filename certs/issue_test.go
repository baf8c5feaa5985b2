package certs

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/acmelab"
	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/inventory"
)

// TestObtainIssuesOneECDSACertificatePerSiteThroughTheLab obtains a
// certificate for a site whose names span two zones (one token each),
// reusing the account registered the first time.
func TestObtainIssuesOneECDSACertificatePerSiteThroughTheLab(t *testing.T) {
	l := startLab(t, acmelab.Config{})
	s := l.settings(t)
	ctx := context.Background()
	state := t.TempDir()

	acct, err := OpenAccount(ctx, state, s)
	if err != nil {
		t.Fatal(err)
	}
	if !acct.Created || acct.URI == "" {
		t.Fatalf("account = created %v uri %q", acct.Created, acct.URI)
	}
	keyFile := filepath.Join(AccountDir(state, s.DirectoryURL), "account.key")
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("account key %s: %v mode %v, want 0600", keyFile, err, st.Mode().Perm())
	}
	again, err := OpenAccount(ctx, state, s)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.URI != acct.URI {
		t.Errorf("second OpenAccount: created %v uri %q; want the stored registration %q reused", again.Created, again.URI, acct.URI)
	}

	names := []string{"chat." + zoneBE, "lghs-chat-prod." + zoneSpace}
	start := time.Now()
	b, err := Obtain(ctx, s, acct, Order{Names: names, ZoneOf: zoneOf, Tokens: l.secrets()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("obtained in %v", time.Since(start).Round(time.Millisecond))
	leaf, err := l.pebble.VerifyChain(b.Chain, names...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("key %T, want ECDSA by default", leaf.PublicKey)
	}
	if !sameNames(leaf, names) {
		t.Errorf("names %v, want exactly %v", leaf.DNSNames, names)
	}
	if s := strings.TrimSpace(string(b.Key.Bytes())); !strings.HasPrefix(s, "-----BEGIN EC PRIVATE KEY-----") {
		t.Errorf("key PEM starts %q", s[:20])
	}
	// Challenge records are gone from both zones.
	for _, z := range l.zones {
		recs, _ := l.cf.Records(z.ID)
		if len(recs) != 0 {
			t.Errorf("zone %s left with %d records", z.Name, len(recs))
		}
	}
	if due, why := Due(ctx, s, acct, leaf); due {
		t.Errorf("a fresh 90-day certificate is due: %s", why)
	}
}

func TestDueFollowsTheRenewalWindowAndTheCAsRenewalInfo(t *testing.T) {
	l := startLab(t, acmelab.Config{Profiles: acmelab.ShortLivedProfiles(2 * time.Hour)})
	s := l.settings(t)
	ctx := context.Background()
	acct, err := OpenAccount(ctx, t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"chat." + zoneBE}
	b, err := Obtain(ctx, s, acct, Order{Names: names, ZoneOf: zoneOf, Tokens: l.secrets()})
	if err != nil {
		t.Fatal(err)
	}
	_, leaf, _ := Inspect(b.Chain)

	s.RenewBefore = time.Hour
	// Pebble's renewal window for a 2-hour certificate opens at issuance.
	if due, why := Due(ctx, s, acct, leaf); !due || !strings.Contains(why, "renewal info") {
		t.Errorf("due=%v (%s); want due by the CA's renewal info", due, why)
	}
	// Without the account, ARI cannot be asked: only the window counts.
	if due, why := Due(ctx, s, nil, leaf); due {
		t.Errorf("due=%v (%s) with 1h window on a 2h certificate", due, why)
	}
	s.RenewBefore = 3 * time.Hour
	if due, why := Due(ctx, s, nil, leaf); !due || !strings.Contains(why, "within the renewal window (3h0m0s)") {
		t.Errorf("due=%v (%s); want due by the window", due, why)
	}

	// The renewal names the old certificate and gets a new serial.
	b2, err := Obtain(ctx, s, acct, Order{Names: names, ZoneOf: zoneOf, Tokens: l.secrets(), Replaces: leaf})
	if err != nil {
		t.Fatal(err)
	}
	_, leaf2, _ := Inspect(b2.Chain)
	if leaf2.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("renewal returned the same certificate")
	}
}

func TestObtainFailsWithABrokenTokenAndSaysWhichZone(t *testing.T) {
	l := startLab(t, acmelab.Config{})
	s := l.settings(t)
	ctx := context.Background()
	acct, err := OpenAccount(ctx, t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	bad := "0123456789abcdef0123456789abcdef01234567"
	toks := l.secrets()
	toks[zoneBE] = inventory.Secret(bad)
	_, err = Obtain(ctx, s, acct, Order{Names: []string{"chat." + zoneBE}, ZoneOf: zoneOf, Tokens: toks})
	if err == nil {
		t.Fatal("obtain with an unknown token succeeded")
	}
	if strings.Contains(err.Error(), bad) {
		t.Errorf("error shows the token: %v", err)
	}
	t.Logf("error: %q", err)
}

// TestAnInterruptedIssuanceLeavesNoChallengeRecord cancels the issuance as
// soon as the challenge record exists (Ctrl-C): Obtain returns the
// cancellation and lego's clean-up still removes the record.
func TestAnInterruptedIssuanceLeavesNoChallengeRecord(t *testing.T) {
	l := startLab(t, acmelab.Config{})
	s := l.settings(t)
	acct, err := OpenAccount(context.Background(), t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := l.cf.Subscribe(func(c cfsim.Change) {
		if c.Kind == cfsim.RecordCreated && c.Record.Type == "TXT" {
			cancel()
		}
	})
	defer stop()
	_, err = Obtain(ctx, s, acct, Order{Names: []string{"chat." + zoneBE}, ZoneOf: zoneOf, Tokens: l.secrets()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the cancellation", err)
	}
	if recs, _ := l.cf.Records(l.zones[zoneBE].ID); len(recs) != 0 {
		t.Errorf("records left after the interruption: %+v", recs)
	}
}

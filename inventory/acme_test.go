package inventory

import (
	"errors"
	"strings"
	"testing"
)

const acmeBase = "version: 1\nname: t\ndns: {zones: [{name: example.org}]}\n"

// TestACMEDefaultsFollowTheDirectory checks the CAA and renewal defaults:
// CAA on with letsencrypt.org for Let's Encrypt, off without an identity
// for another CA, and a twice-daily renewal schedule.
func TestACMEDefaultsFollowTheDirectory(t *testing.T) {
	for _, tc := range []struct {
		acme     string
		caa      bool
		identity string
	}{
		{"acme: {email: a@example.org}", true, "letsencrypt.org"},
		{"acme: {email: a@example.org, directory: letsencrypt-staging}", true, "letsencrypt.org"},
		{"acme: {email: a@example.org, directory: https://ca.example.org/dir}", false, ""},
		{"acme: {email: a@example.org, directory: https://ca.example.org/dir, caa: true, caa_identity: ca.example.org}", true, "ca.example.org"},
	} {
		f, err := Parse("inv.yaml", []byte(acmeBase+tc.acme+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.acme, err)
		}
		a := f.ACME
		if *a.CAA != tc.caa || a.CAAIdentity != tc.identity || a.RenewSchedule != DefaultRenewSchedule {
			t.Errorf("%s: caa=%v identity=%q schedule=%q; want %v %q %q", tc.acme, *a.CAA, a.CAAIdentity, a.RenewSchedule, tc.caa, tc.identity, DefaultRenewSchedule)
		}
	}
}

func TestACMECAAAndScheduleProblemsAreReported(t *testing.T) {
	for _, tc := range []struct{ acme, want string }{
		{"acme: {email: a@example.org, directory: https://ca.example.org/dir, caa: true}",
			`acme.caa_identity: missing: caa is on for a directory that is not Let's Encrypt`},
		{"acme: {email: a@example.org, caa_identity: \"not a name\"}",
			`acme.caa_identity: "not a name" is not a domain name`},
		{"acme: {email: a@example.org, renew_schedule: \"daily; rm -rf /\"}",
			`acme.renew_schedule: "daily; rm -rf /" is not a systemd calendar expression`},
	} {
		_, err := Parse("inv.yaml", []byte(acmeBase+tc.acme+"\n"))
		var ps Problems
		if !errors.As(err, &ps) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a problem containing %q", tc.acme, err, tc.want)
		}
	}
}

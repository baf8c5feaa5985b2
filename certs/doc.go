// Package certs obtains site certificates from an ACME CA with lego over
// DNS-01 through Cloudflare, deploys them to hosts in certbot's layout,
// installs the on-host renewal (a systemd timer running this same binary
// in renew mode), publishes CAA records pinning issuance to the CA and the
// account, and checks what nginx serves over TLS.
//
// Two callers, one code path:
//
//   - the operator's `lghsctl up` runs the Phase's steps on each host
//     (obtain or reuse, deploy, CAA, renewal install) and Verify at the end;
//   - the host's timer runs `lghsctl certs renew --config …` (Renew), which
//     reuses the same account, token verification, issuance and TLS check.
//
// Nothing here reads the process environment: every endpoint, token and
// path comes in through Settings, PhaseConfig or RenewConfig (the CLI is
// the only environment reader). Private keys and tokens are typed so that
// printing or logging them shows [redacted]; files holding them are written
// with mode 0600.
//
// lego keeps its DNS settings (resolvers, DNS timeout, SOA cache) and its
// logger in package variables. This package sets them for each issuance and
// serialises issuances in one process (see legoMu); callers need not care.
package certs

// Package lghsctl holds no code: it documents the repository's layout.
//
// lghsctl provisions, configures and migrates a self-hosted chat server
// (the Liège HackerSpace's Rocket.Chat) from one declarative
// inventory.yaml:
//
//	cmd/lghsctl/       main: a signal-aware context, then internal/cli
//	inventory/         the inventory's schema, strict loading, validation
//	provision/         the cloud side: Scaleway and Cloudflare, plan then apply
//	hostsetup/         host configuration over SSH: tasks, facts, handlers
//	templates/nginx/   embedded nginx templates, pure rendering
//	certs/             ACME certificates (lego): obtain, deploy, renew, CAA
//	migrate/           the data move, its verification, the upgrade ladder
//	internal/cli/      cobra commands, exit codes, the only environment reader
//	internal/task/     the step engine: check mode, handlers, parallel hosts
//	internal/report/   what users read: task lines, recap, plan, JSON events
//	internal/logging/  the per-run debug log, secrets redacted
//	internal/lab/      the lab: Debian hosts, cloud stand-ins, DNS, Pebble
//	bench/             benchmarks and side-by-side comparisons
//
// Dependencies flow one way: internal/cli → domain packages →
// internal/{remote,report,task}. Production code never imports
// internal/lab; layout_test.go checks these rules.
package lghsctl

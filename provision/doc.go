// Package provision is the cloud side of lghsctl: from the inventory it
// computes what must exist on Scaleway (project SSH keys, security groups,
// routed IPv4 and IPv6 flexible IPs, servers with their named root volume)
// and in the DNS provider (A and AAAA records of every host name), reads
// what does exist, and produces a read-only Plan (Terraform-like lines,
// JSON-able) that Apply then makes true. It also takes, lists, restores and
// prunes image backups (Backup, Backups, Restore, Prune) and tears down
// what it made (PlanDestroy, Destroy).
//
// There is no state file. Everything lghsctl makes is found again by its
// ownership marks: Scaleway tags lghsctl=<inventory> and
// lghsctl-host=<host>, DNS records whose comment is
// "managed by lghsctl: <inventory>/<host>". Only marked resources are ever
// changed or deleted; an unmarked one in the way (a server or group of the
// same name, a record at a managed name) blocks the plan with a note saying
// how to resolve it (rename it, delete it, or tag it to adopt it).
//
// Plan contract: Plan makes only read calls. Apply makes the changes of a
// plan without blocked lines, in dependency order (SSH keys before servers
// boot, groups and IPs before servers, DNS records while servers boot),
// hosts in parallel, each step reported as a task; a step with nothing to
// do makes no call, so applying a converged plan only reads. Drift that
// cannot be fixed in place (a commercial type, a volume size) is a blocked
// line saying what it would take; lghsctl never stops or replaces a server
// by itself.
//
// Robustness: the adapters' transport (provision/httpretry) retries 429s,
// and 5xx and transport errors of idempotent calls. A create (POST) that
// fails ambiguously is followed by a lookup by ownership marks before it is
// tried again, so no duplicate server, IP, group, key or record is made.
// Interrupting Apply (context cancellation) leaves marked resources that
// the next Plan finds and converges from.
//
// The security group is compared by content: direction, action, protocol,
// the IP range normalised as the API echoes it (host masks dropped) and
// ports; its editable rules are replaced (one PUT) only when they differ.
// Rules not in the inventory are removed, or kept at the end of the list
// with keep_unknown_rules, and shown either way. ICMP rules with an IPv6
// range (::/0) cover ICMPv6: the API has no separate protocol for it, so an
// inventory ICMP rule yields one ICMP rule per range. allow_smtp sets
// enable_default_security to false (Scaleway's SMTP block off); when the
// account is not allowed to, the API keeps it on and Apply warns.
//
// The two APIs are seen through the small interfaces Scaleway and DNS,
// implemented by provision/scaleway and provision/cloudflare.
package provision

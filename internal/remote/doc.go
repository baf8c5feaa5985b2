// Package remote is lghsctl's SSH transport: everything done on a server
// (host setup, certificate deployment, the data move) goes through one
// [Client] per host.
//
// Trust: host keys are checked against a known_hosts file (by default the
// one next to the inventory). An unknown host is refused unless the caller
// says the machine was just created ([Config.TrustNew]) or already knows
// its key ([Config.ExpectedKeys]); the key is then pinned. A key that
// differs from a pinned one is a hard error ([HostKeyChangedError]) raised
// during the handshake, before authentication, so no command can ever reach
// an impostor.
//
// Authentication uses keys only (identity files and ssh-agent); this
// package never prompts. Where the inventory points at an OpenSSH client
// configuration alias, its HostName, User, Port, IdentityFile,
// IdentitiesOnly and ProxyJump apply.
//
// Commands run with /bin/sh on the server, as root or through `sudo -n`.
// Secrets travel on standard input, never in command lines, and standard
// input is never logged. Files are written atomically (temporary file in
// the same directory, fsync, owner and mode, rename).
//
// This package reads no environment variables: the caller passes the
// agent socket and home directory in [Config].
//
// [Host] is the method set consumers need; remotetest.Host is an in-memory
// fake of it for unit tests, and remotetest.Server an in-process SSH server
// for tests that need the real protocol.
package remote

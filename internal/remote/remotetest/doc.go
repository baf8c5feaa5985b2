// Package remotetest holds test doubles for package remote: Host, an
// in-memory server (scripted command responses, a file system that
// records modes and owners, a log of everything done) for unit tests of
// the packages that work on hosts; and Server, an in-process SSH server
// running real commands, for tests that need the protocol itself.
package remotetest

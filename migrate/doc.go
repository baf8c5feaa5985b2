// Package migrate moves a Rocket.Chat MongoDB from the old server to the
// new one, proves the move complete, walks the app's upgrade ladder and
// switches the public DNS name (lghsctl migrate plan|data|verify|upgrade|
// cutover).
//
// # One stream format
//
// Every move is a mongodump --archive stream (package archive): a Source
// produces it (MongodumpSource: the old host's own mongodump over an SSH
// session; DriverSource: lghsctl's reader through an SSH tunnel;
// ArchiveSource: a local archive file), and a Target consumes it (driver
// mode: parallel unordered bulk inserts through a tunnel, indexes after
// the data; mongorestore mode: the bytes piped into mongorestore --archive
// inside the database container). lghsctl parses the stream on its way in
// every case: CRC-64 per collection, counts, content hashes (see Sums),
// progress, and an optional local copy (--archive) that the official
// mongorestore restores. Nothing is ever written in full to a disk, and
// nothing on the source is ever modified.
//
// # Hosts
//
// The engine sees hosts through two consumer-side interfaces, Shell (run a
// command with streamed stdin/stdout) and Dialer (open a TCP connection
// from the host, to reach its loopback-bound database); the SSH transport
// implements both, LocalShell and Local serve tests and runs on the target
// itself.
//
// # Driver range
//
// go.mongodb.org/mongo-driver/v2 v2.8.x reaches MongoDB 4.2 to 8.0 (wire
// 8-25). The LgHS target runs 4.2; older sources (3.x, 4.0) are read with
// their own mongodump, and the engine checks the wire version itself
// first so that an old server gets a clear message (WireVersionError).
//
// # State
//
// Resume state, the upload manifest, the ladder's progress and the TTL
// remembered by cutover --prepare live on the target (DefaultStateDir),
// so any machine running lghsctl continues where the last run stopped.
package migrate

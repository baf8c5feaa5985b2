// Package migratebench sets lghsctl's data move against the LgHS runbook's
// way on two lab hosts with a shaped link: a generated Rocket.Chat-shaped
// database of at least 200 MB on an "old" host (the lab database as a
// service, its own mongodump), moved to a "new" host (the lab database in a
// Docker container) whose link, like the old one's, is limited to
// 100 Mbit/s (tc tbf), with 10 ms added to every SSH round trip (the lab's
// delay proxy: this kernel has no netem).
//
// The runbook's way: mongodump to a file on the old host, rsync of the file
// to the new host, mongorestore from the file in the container. lghsctl's
// way: the real lghsctl binary, `migrate data` (old host's mongodump over
// SSH, parsed and checksummed on the way, driver inserts through a tunnel),
// then `migrate verify --recorded`. It reports each phase, the ratio, the
// throughput against what the database stand-in writes locally (the
// runbook's restore from a local file), and lghsctl's peak memory.
//
//	sudo ./bench/migrate/run.sh
package migratebench

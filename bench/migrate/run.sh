#!/usr/bin/env bash
# lghsctl's data move against the runbook's (dump to disk, rsync, restore)
# on two lab hosts, 100 Mbit/s per host link and +10 ms on SSH round trips,
# with a generated Rocket.Chat-shaped data set of at least 200 MB. Needs
# root and the lab's prerequisites (scripts/setup.sh); about 5-10 minutes on
# 2 cores, most of it the lab database (FerretDB/SQLite) working.
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench "${BENCH:-LabMoveAgainstTheRunbook$}" -benchtime 1x -count 1 -timeout 90m -v ./bench/migrate |
  grep -vE '^\s+labtest.go|^=== |^goos|^goarch|^pkg|^cpu'

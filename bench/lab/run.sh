#!/usr/bin/env bash
# Runs the lab benchmarks (as root) and prints their figures:
#   warm start to SSH-ready (target < 10 s), two hosts in parallel, layer
#   copy of a host with nginx (5 runs each); cold base build straight from
#   the mirror and base build through the warm apt proxy (1 run each, about
#   a minute for the cold one).
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'HostStart|TwoHosts|CopyLayer' -benchtime 5x -count 1 -timeout 30m ./bench/lab |
  grep -E '^(Benchmark|ok|FAIL)'
go test -run '^$' -bench 'BaseBuild' -benchtime 1x -count 1 -timeout 30m ./bench/lab |
  grep -E '^(Benchmark|ok|FAIL)'

#!/usr/bin/env bash
# Builds the lab's database stand-in, labdb-ferretdb (FerretDB v1.24 with
# SQLite, embedded), from its own Go module so that FerretDB never enters
# lghsctl's go.mod. Static binary (CGO_ENABLED=0): it also goes into the
# lab's container image.
#
#   internal/lab/labdb/build.sh [OUTDIR]     (default: $(go env GOPATH)/bin)
#
# Tests find it there, or through LGHSCTL_LABDB=/path/to/labdb-ferretdb;
# without either they build it into the Go build cache's neighbourhood
# (a few minutes the first time on 2 cores).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(go env GOPATH)/bin}
mkdir -p "$out"
cd "$here/ferretdb"
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$out/labdb-ferretdb" .
echo "built $out/labdb-ferretdb"

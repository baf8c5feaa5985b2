#!/usr/bin/env bash
# lghsctl's host setup against the Ansible playbook in ansible/, side by
# side on lab hosts (see README.md). Needs root and the lab's prerequisites
# (scripts/setup.sh); installs Debian's ansible package when missing.
#
#   sudo ./bench/hostsetup/run.sh
#   BENCH_FIRST=3 BENCH_NOOP=10 BENCH_RELEASE=bookworm sudo -E ./bench/hostsetup/run.sh
#
# About 15 minutes with the defaults on 2 cores, most of it Ansible.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v ansible-playbook >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q ansible >/dev/null
fi
go test -run '^$' -bench 'LabHostSetupAgainstAnsible$' -benchtime 1x -count 1 -timeout 3h -v ./bench/hostsetup |
  grep -vE '^\s+labtest.go|^=== |^goos|^goarch|^pkg|^cpu'

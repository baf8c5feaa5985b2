#!/usr/bin/env bash
# Installs everything lghsctl's tests and lab need on a fresh Debian machine
# (run as root). Idempotent: what is already there is left alone.
set -euo pipefail

need_apt=()
# command → Debian package
declare -A tools=(
  [debootstrap]=debootstrap
  [systemd-nspawn]=systemd-container
  [apt-cacher-ng]=apt-cacher-ng
  [ip]=iproute2
  [tc]=iproute2
  [nft]=nftables
  [ssh-keygen]=openssh-client
  [busybox]=busybox-static
  [dig]=dnsutils
  [git]=git
  [curl]=curl
  [openssl]=openssl
  [file]=file
  [make]=make
)
for cmd in "${!tools[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/sbin/$cmd" ] && [ ! -x "/bin/$cmd" ]; then
    need_apt+=("${tools[$cmd]}")
  fi
done
# busybox-static must be the static build (images are imported into lab hosts).
if [ ! -x /bin/busybox ] || ! file /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
  dpkg -s busybox-static >/dev/null 2>&1 || need_apt+=(busybox-static)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install: ${need_apt[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # apt-cacher-ng's postinst may try to start a daemon; the lab runs its own.
  apt-get install -y -q --no-install-recommends $(printf '%s\n' "${need_apt[@]}" | sort -u)
fi

# Go tools pinned by go.mod: Pebble, Let's Encrypt's test CA, installed
# into $(go env GOPATH)/bin at the version go.mod requires.
go install github.com/letsencrypt/pebble/v2/cmd/pebble

# The lab's own programs, which its container images are made of: the
# MongoDB stand-in (FerretDB, its own module: a few minutes the first
# time), the mongodump/mongorestore stand-in and the Rocket.Chat stand-in.
cd "$(dirname "$0")/.."
bin=$(go env GOPATH)/bin
db_src=internal/lab/labdb/ferretdb
if [ ! -x "$bin/labdb-ferretdb" ] || [ -n "$(find "$db_src" -newer "$bin/labdb-ferretdb" -name '*.go' -o -newer "$bin/labdb-ferretdb" -name 'go.*' | head -1)" ]; then
  internal/lab/labdb/build.sh "$bin"
fi
CGO_ENABLED=0 go install -trimpath ./internal/lab/labdb/mongotools ./internal/lab/labapp/cmd/labapp
echo "setup: ok"

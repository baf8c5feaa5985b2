#!/usr/bin/env bash
# The README's main command (make demo): on this machine, with no cloud
# account, start the lab and run `lghsctl up` on examples/lab/inventory.yaml,
# then show the result: an HTTPS request to the site, resolved through the
# lab's DNS, answered by the app through nginx with a certificate from the
# lab's Let's Encrypt (Pebble). The lab keeps running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
inv=examples/lab/inventory.yaml
bin=./bin/lghsctl

if [ "$(id -u)" != 0 ]; then
  echo "demo: the lab boots Debian hosts with systemd-nspawn: run it as root" >&2
  exit 1
fi
./scripts/setup.sh
[ -x "$bin" ] || make build

"$bin" lab start -i "$inv" >/dev/null
eval "$("$bin" lab env -i "$inv")"

echo "== lghsctl up (a second run would change nothing)"
"$bin" up -i "$inv"

site=$(awk '/^    sites:/{s=1} s && /- name:/{print $3; exit}' "$inv")
dns=${LGHSCTL_DNS_RESOLVERS%:*}
addr=$(dig +short @"$dns" "$site" A | head -1)
echo
echo "== https://$site/ through the lab DNS ($site is $addr), certificate checked against the lab CA"
curl -sS --fail --resolve "$site:443:$addr" --cacert "$LGHSCTL_ACME_CA_BUNDLE" \
  -o /dev/null -w 'HTTP %{http_code}, TLS verified: %{ssl_verify_result} (0 = ok)\n' "https://$site/"
curl -sS --resolve "$site:443:$addr" --cacert "$LGHSCTL_ACME_CA_BUNDLE" "https://$site/api/info" && echo
echo | openssl s_client -connect "$addr:443" -servername "$site" -CAfile "$LGHSCTL_ACME_CA_BUNDLE" 2>/dev/null \
  | openssl x509 -noout -issuer -subject -enddate 2>/dev/null || true

cat <<TXT

The lab keeps running. Explore it:
  eval "\$($bin lab env -i $inv)"     # point lghsctl at the lab
  $bin lab status -i $inv
  $bin plan -i $inv                   # converged: no changes
  $bin audit -i $inv                  # HTTPS and exposure, checked from outside
  $bin up --check --diff -i $inv      # edit the inventory first: see what up would change
  ssh -i examples/lab/.lab/id_ed25519 -o UserKnownHostsFile=examples/lab/.lab/known_hosts root@$addr
Stop it (servers, stand-ins and network, nothing left behind):
  make lab-stop
TXT

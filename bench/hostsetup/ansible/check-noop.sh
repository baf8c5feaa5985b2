#!/bin/bash
# Every check site.yml makes on a converged host, as one script over one connection
# (adapted from the shared bench/ansible one with site.yml) -- run as:
#   ssh root@HOST bash -s [--no-upgrade-check] < check-noop.sh
drift=0; ok(){ :; }; bad(){ echo "DRIFT $*"; drift=$((drift+1)); }
UPG=1; [ "${1:-}" = --no-upgrade-check ] && UPG=0
# apt: cache age (ansible apt cache_valid_time=3600 uses mtime of /var/lib/apt/lists)
age=$(( $(date +%s) - $(stat -c %Y /var/lib/apt/lists) )); [ $age -lt 3600 ] || bad "apt cache age ${age}s"
# apt: pending dist-upgrade (ansible runs apt-get dist-upgrade every time)
if [ $UPG = 1 ]; then n=$(apt-get -s -o Debug::NoLocking=1 dist-upgrade | grep -c "^Inst" || true); [ "$n" = 0 ] || bad "dist-upgrade pending: $n"; fi
# packages
st=$(dpkg-query -W -f='${Package} ${Status}\n' tmux vim rsync ca-certificates curl gnupg docker.io nginx 2>&1)
for p in tmux vim rsync ca-certificates curl gnupg docker.io nginx; do grep -qx "$p install ok installed" <<<"$st" || bad "package $p"; done
# managed files: content + owner/mode
cmp -s /etc/ssh/sshd_config.d/10-hardening.conf - <<'EOF_0' || bad "content /etc/ssh/sshd_config.d/10-hardening.conf"
# Managed by provisioner (ansible anchor). Included first by /etc/ssh/sshd_config => first match wins.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
X11Forwarding no
MaxAuthTries 3
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com
EOF_0
[ "$(stat -c "%U:%G %a" /etc/ssh/sshd_config.d/10-hardening.conf 2>/dev/null)" = "root:root 644" ] || bad "mode /etc/ssh/sshd_config.d/10-hardening.conf"
cmp -s /etc/docker/daemon.json - <<'EOF_1' || bad "content /etc/docker/daemon.json"
{
  "log-driver": "json-file",
  "log-opts": {
    "max-file": "3",
    "max-size": "10m"
  }
}
EOF_1
[ "$(stat -c "%U:%G %a" /etc/docker/daemon.json 2>/dev/null)" = "root:root 644" ] || bad "mode /etc/docker/daemon.json"
cmp -s /etc/nginx/sites-available/chat.conf - <<'EOF_2' || bad "content /etc/nginx/sites-available/chat.conf"
# Ansible managed
upstream chat_backend {
    server [::1]:3000;
    keepalive 16;
}

map $http_upgrade $ansible_connection_upgrade {
    default upgrade;
    ''      close;
}

server {
    listen 80;
    listen [::]:80;
    server_name chat.lghs.be;
    return 301 https://$host$request_uri;
}

server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name chat.lghs.be;

    ssl_certificate     /etc/ssl/lab/chat.crt;
    ssl_certificate_key /etc/ssl/lab/chat.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:chat_ssl:10m;
    ssl_session_timeout 1d;

    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;

    client_max_body_size 200M;

    location / {
        proxy_pass http://chat_backend;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $ansible_connection_upgrade;
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
    }
}
EOF_2
[ "$(stat -c "%U:%G %a" /etc/nginx/sites-available/chat.conf 2>/dev/null)" = "root:root 644" ] || bad "mode /etc/nginx/sites-available/chat.conf"
# directories
[ -d /etc/docker ] && [ "$(stat -c "%U:%G %a" /etc/docker)" = "root:root 755" ] || bad "dir /etc/docker"
[ -d /etc/ssl/lab ] && [ "$(stat -c "%U:%G %a" /etc/ssl/lab)" = "root:root 755" ] || bad "dir /etc/ssl/lab"
[ -d /srv/chat.lghs.be/data ] && [ "$(stat -c "%U:%G %a" /srv/chat.lghs.be/data)" = "root:root 750" ] || bad "dir /srv/chat.lghs.be/data"
[ -d /srv/chat.lghs.be/backups ] && [ "$(stat -c "%U:%G %a" /srv/chat.lghs.be/backups)" = "root:root 750" ] || bad "dir /srv/chat.lghs.be/backups"
# TLS material (created once) and key mode
[ -s /etc/ssl/lab/chat.crt ] || bad "cert missing"
[ "$(stat -c "%U:%G %a" /etc/ssl/lab/chat.key 2>/dev/null)" = "root:root 600" ] || bad "key mode"
# site symlink
[ "$(readlink /etc/nginx/sites-enabled/chat.conf)" = /etc/nginx/sites-available/chat.conf ] || bad "site link"
[ ! -e /etc/nginx/sites-enabled/default ] || bad "default site"
# services enabled + active (one systemctl call each)
[ "$(systemctl is-enabled docker.service nginx.service | sort -u)" = enabled ] || bad "unit not enabled"
[ "$(systemctl is-active docker.service nginx.service | sort -u)" = active ] || bad "unit not active"
echo "drift=$drift"; exit $drift

#!/usr/bin/env bash
# Installs the Debian packages the project needs (build, DPDK, test peers). Idempotent: when all are
# present it only asks dpkg once. As root it installs; otherwise it prints the exact command.
set -euo pipefail
packages=(
    build-essential pkg-config dpdk libdpdk-dev iproute2 iputils-ping arping ethtool procps
    curl wget netcat-openbsd socat redis-server redis-tools nginx-light iperf3 sockperf wrk
    tshark python3 binutils
)
missing=()
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' 2>/dev/null | awk '$2 == "installed" {print $1}')
for p in "${packages[@]}"; do
    grep -qx "$p" <<<"$installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}" >&2
    echo "run as root: $cmd" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
# tshark asks whether non-root users may capture; answer before it asks.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
# The test peers must not run as system services: tests start their own instances.
for svc in redis-server nginx; do systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true; done

#!/usr/bin/env bash
# The main job: the same unmodified server and client (python3 -m http.server and curl, from
# Debian) run twice - once over Gazelle#, both processes preloaded with build/libgazelle.so and
# joined by DPDK net_memif (shared memory between the two processes: no NIC, no hugepages, no kernel
# networking on the path), once over the kernel's loopback - and the results are printed side by side.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PRELOAD=$ROOT/build/libgazelle.so
SIZE=${DEMO_BYTES:-20000000}
tmp=$(mktemp -d /tmp/gz-demo.XXXXXX)
server=""
cleanup() {
    [ -n "$server" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
    rm -rf "$tmp" /var/run/dpdk/gz-demo-"$$"-*
}
trap cleanup EXIT
mkdir -p "$tmp/www" && head -c "$SIZE" /dev/urandom > "$tmp/www/file.bin"

# One lstack.conf per process: the memif server role for the HTTP server, the client role for curl.
source "$ROOT/scripts/lstack-conf.sh"
memif_pair_conf "$tmp" "demo-$$" "$tmp/memif.sock" 10.88.0 9000

run_pair() { # $1 label, $2 server address, $3... env for server then client (via SERVER_ENV / CLIENT_ENV)
    local label=$1 addr=$2 port=$((20000 + RANDOM % 20000))
    env "${SERVER_ENV[@]}" python3 -m http.server "$port" --bind "$addr" --directory "$tmp/www" >"$tmp/$label.server.log" 2>&1 &
    server=$!
    sleep 2
    # Two figures per run: the whole curl run (wall clock: process start, and for Gazelle# its stack's
    # start at the first socket: EAL and the memif handshake, ~0.2 s), and the body transfer alone
    # (curl's time_total - time_starttransfer), which is what the network path decides.
    local best_wall="" best_body=""
    for i in 1 2 3; do
        rm -f "$tmp/got.bin"
        local t0 t1 times
        t0=$(date +%s%N)
        times=$(env "${CLIENT_ENV[@]}" curl -sS --max-time 60 -o "$tmp/got.bin" -w '%{time_starttransfer} %{time_total}' \
            "http://$addr:$port/file.bin" 2>>"$tmp/$label.client.log" || true)
        t1=$(date +%s%N)
        cmp -s "$tmp/www/file.bin" "$tmp/got.bin" || { echo "$label: transfer $i was not byte-exact"; cat "$tmp/$label.client.log" "$tmp/$label.server.log" | tail -5; exit 1; }
        local wall=$(( (t1 - t0) / 1000000 )) body
        body=$(echo "$times" | awk '{ printf "%.1f", ($2 - $1) * 1000 }')
        { [ -z "$best_wall" ] || [ "$wall" -lt "$best_wall" ]; } && best_wall=$wall
        { [ -z "$best_body" ] || awk -v a="$body" -v b="$best_body" 'BEGIN { exit !(a < b) }'; } && best_body=$body
    done
    kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""
    echo "$best_wall $best_body"
}

echo "Gazelle# demo: python3 -m http.server serves a ${SIZE}-byte file, curl fetches it 3 times (best time kept)."
echo
SERVER_ENV=(GAZELLE_CONF="$tmp/memif-server.conf" LD_PRELOAD="$PRELOAD")
CLIENT_ENV=(GAZELLE_CONF="$tmp/memif-client.conf" LD_PRELOAD="$PRELOAD")
read -r gz_wall gz_body <<<"$(run_pair gazelle 10.88.0.1)"
served=$(grep -c '"GET /file.bin' "$tmp/gazelle.server.log" || true)
SERVER_ENV=(DEMO=kernel)
CLIENT_ENV=(DEMO=kernel)
read -r k_wall k_body <<<"$(run_pair kernel 127.0.0.1)"

mbps() { echo "$SIZE $1" | awk '{ printf "%.0f", ($2 > 0) ? $1 * 8 / ($2 / 1000) / 1e6 : 0 }'; }
printf '%-44s %-26s %-26s\n' "" "over Gazelle# (memif)" "over the kernel (loopback)"
printf '%-44s %-26s %-26s\n' "path" "curl -> our TCP/IP (C#)" "curl -> kernel TCP/IP"
printf '%-44s %-26s %-26s\n' "" "-> DPDK memif -> our stack" "-> lo -> kernel TCP/IP"
printf '%-44s %-26s %-26s\n' "whole curl run, best of 3 (ms)" "$gz_wall" "$k_wall"
printf '%-44s %-26s %-26s\n' "  of which body transfer, best of 3 (ms)" "$gz_body" "$k_body"
printf '%-44s %-26s %-26s\n' "body throughput (Mbit/s)" "$(mbps "$gz_body")" "$(mbps "$k_body")"
printf '%-44s %-26s %-26s\n' "byte-exact" "yes (3 of 3)" "yes (3 of 3)"
echo
echo "The Gazelle# pair used addresses 10.88.0.1/.2 that no kernel interface has (the server logged"
echo "$served requests from 10.88.0.2), so its traffic can only have gone through our stack."
echo "This is a first functional demo, not a tuned benchmark: bench/e2e/compare.sh is the benchmark."

#!/usr/bin/env bash
# Splits a 64 B ping-pong round trip over Gazelle# (both ends preloaded, joined by net_memif):
# bench/e2e/programs/pingpong_split.c times each send() (pure CPU: the stack transmits inside the call) and
# each round trip. TCP against UDP on the same pair shows what the TCP send path costs by itself, and
# (half RTT - send) what waiting for, taking in and reading the reply adds (issue 6).
#   bench/e2e/pingpong-split.sh [tcp|udp] [seconds]      (default tcp 3)
# NICE=-20 and PIN=1 as in pingpong-cost.sh. A timing, not a test: it never fails on a figure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROTO=${1:-tcp}
SECS=${2:-3}
PRELOAD=${PRELOAD:-$ROOT/build/libgazelle.so}
[ -f "$PRELOAD" ] || { echo "$PRELOAD missing: run make" >&2; exit 1; }
tmp=$(mktemp -d /tmp/gz-ppsplit.XXXXXX)
srv=""
cleanup() {
    [ -n "$srv" ] && { kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
    rm -rf "$tmp" /var/run/dpdk/gz-ppsplit-"$$"-*
}
trap cleanup EXIT
cc -O2 -Wall -Wextra -Werror -o "$tmp/pingpong_split" "$ROOT/bench/e2e/programs/pingpong_split.c"
source "$ROOT/scripts/lstack-conf.sh"
memif_pair_conf "$tmp" "ppsplit-$$" "$tmp/memif.sock" 10.66.0 9000
port=$((30000 + RANDOM % 20000))
nice=() pin0=() pin1=()
[ -n "${NICE:-}" ] && nice=(nice -n "$NICE")
[ -n "${PIN:-}" ] && pin0=(taskset -c 0) pin1=(taskset -c 1)
"${pin0[@]}" "${nice[@]}" env GAZELLE_CONF="$tmp/memif-server.conf" LD_PRELOAD="$PRELOAD" \
    timeout $((SECS * 4 + 60)) "$tmp/pingpong_split" server "$PROTO" 10.66.0.1 "$port" >"$tmp/server.log" 2>&1 &
srv=$!
for _ in $(seq 300); do grep -q ready "$tmp/server.log" 2>/dev/null && break; [ "$PROTO" = udp ] && sleep 2 && break; sleep 0.1; done
"${pin1[@]}" "${nice[@]}" env GAZELLE_CONF="$tmp/memif-client.conf" LD_PRELOAD="$PRELOAD" timeout $((SECS * 4 + 60)) \
    "$tmp/pingpong_split" client "$PROTO" 10.66.0.1 "$port" "$SECS" >"$tmp/client.log" 2>&1 || { cat "$tmp/client.log"; exit 1; }
for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
echo "$PROTO 64 B over memif, ${SECS}s${NICE:+, nice $NICE}${PIN:+, pinned}, load $(cut -d' ' -f1-3 /proc/loadavg)"
sed 's/^/  /' "$tmp/client.log"
grep 'server send' "$tmp/server.log" | sed 's/^/  /' || true

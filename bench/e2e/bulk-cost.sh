#!/usr/bin/env bash
# What a gigabyte of iperf3's TCP bulk costs each end (issue 6): both ends preloaded, joined by net_memif at
# MTU 9000 (as compare.sh's gbps), each under `perf stat` (CPU time, context switches); prints Gbit/s and each
# end's CPU ms per GB received (a waiting end's spinning counts too: the end at ~1 s/s of CPU is the bottleneck),
# with the stacks' TCP counters (GAZELLE_STATS). Optional `perf record -g` of one end (PROFILE=client|server,
# PROFILE_OUT=file). PIN=1 puts the server on CPU 0 and the client on CPU 1. PRELOAD=other/build/libgazelle.so
# measures another build. EXTRA_CONF='tcp_send_buffer = 1048576' adds lines to both ends' lstack.conf;
# MEMIF_ARGS=rsize=8 adds net_memif arguments.
#   bench/e2e/bulk-cost.sh [seconds]      (default 5)
# A timing, not a test: it never fails on a figure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-5}
PRELOAD=${PRELOAD:-$ROOT/build/libgazelle.so}
EVENTS=task-clock,context-switches
command -v perf >/dev/null || { echo "perf missing" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "iperf3 missing: run make deps" >&2; exit 1; }
[ -f "$PRELOAD" ] || { echo "$PRELOAD missing: run make" >&2; exit 1; }
tmp=$(mktemp -d /tmp/gz-bulkcost.XXXXXX)
srv=""
cleanup() {
    host_sampler_stop
    [ -n "$srv" ] && { kill -INT "$srv" 2>/dev/null || true; sleep 1; kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
    rm -rf "$tmp" /var/run/dpdk/gz-bulkcost-"$$"-*
}
trap cleanup EXIT
source "$ROOT/scripts/lstack-conf.sh"
source "$ROOT/bench/e2e/cost-lib.sh"
source "$ROOT/bench/e2e/host-lib.sh" # the host's placement of the two CPUs during the run (docs/benchmark-variance.md)
host_sampler_start "$tmp"
memif_pair_conf "$tmp" "bulkcost-$$" "$tmp/memif.sock" 10.66.0 9000
[ -n "${MEMIF_ARGS:-}" ] && sed -i "s|\(net_memif0,[^\"]*\)\"|\1,$MEMIF_ARGS\"|" "$tmp"/memif-*.conf
[ -n "${EXTRA_CONF:-}" ] && for c in "$tmp"/memif-*.conf; do printf '%s\n' "$EXTRA_CONF" >>"$c"; done
port=$((30000 + RANDOM % 20000))
cost_end_commands bulkcost
"${pin0[@]}" env GAZELLE_CONF="$tmp/memif-server.conf" GAZELLE_STATS="$tmp/server.stats" LD_PRELOAD="$PRELOAD" \
    "${srec[@]}" iperf3 -s -1 -p "$port" -B 10.66.0.1 >"$tmp/server.log" 2>&1 &
srv=$!
sleep 2
run_from=$(host_now)
"${pin1[@]}" env GAZELLE_CONF="$tmp/memif-client.conf" GAZELLE_STATS="$tmp/client.stats" LD_PRELOAD="$PRELOAD" \
    timeout $((SECS * 4 + 60)) "${crec[@]}" iperf3 -c 10.66.0.1 -p "$port" -t "$SECS" -J >"$tmp/client.json" 2>"$tmp/client.log" || true
for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
wait "$srv" 2>/dev/null || true
srv=""
host=$(host_state "$run_from" "$(host_now)")
read -r gbps bytes < <(python3 -c "import json;e=json.load(open('$tmp/client.json'))['end']['sum_received'];print(round(e['bits_per_second']/1e9,2), e['bytes'])" 2>/dev/null) \
    || { echo "no result"; cat "$tmp/client.log" "$tmp/server.log"; exit 1; }
per() { awk -F, -v ev="$2" -v n="$bytes" '$3 == ev { if ($1 ~ /^[0-9.]+$/ && n > 0) printf "%.0f", $1 * 1e9 / n; else printf "-" }' "$1"; }
cs() { awk -F, '$3 == "context-switches" { print $1 }' "$1"; }
echo "iperf3 over memif MTU 9000, ${SECS}s${PIN:+, pinned}, load $(cut -d' ' -f1-3 /proc/loadavg): $gbps Gbit/s ($bytes B), host $host"
echo "  client (sender):   $(per "$tmp/client.stat" task-clock) ms CPU per GB, $(cs "$tmp/client.stat") context switches"
echo "  server (receiver): $(per "$tmp/server.stat" task-clock) ms CPU per GB, $(cs "$tmp/server.stat") context switches"
for side in client server; do
    echo "  $side: $(grep -E 'counter\.(TcpLayer\.(SegmentsOut|SegmentsIn|RetransmittedSegments|FramesHeld|HoldRefused|OutputFailed)|Link\.(TxDeviceFull|TxNoBuffer))' "$tmp/$side.stats" | sed 's/counter\.//' | tr '\n' ' ')"
done
[ -n "${KEEP:-}" ] && cp "$tmp"/*.stats "$tmp"/*.log "$tmp"/*.json "$KEEP"/ 2>/dev/null || true

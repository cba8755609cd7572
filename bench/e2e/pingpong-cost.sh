#!/usr/bin/env bash
# What one ping-pong round trip costs each end (issue 6): sockperf ping-pong 64 B over Gazelle# (both ends
# preloaded, joined by net_memif), each process under `perf stat` (CPU time, context switches; with
# hardware counters, cycles and instructions too: this VM has none), divided by the round trips the client
# counted. Both ends spin while they wait, so CPU time per round trip near the round trip itself means the
# end never left the CPU; context switches per round trip show the sched_yield and sleep rounds.
# Optional `perf record -g` of the client (PROFILE=1, PROFILE_OUT=file). NICE=-20 runs both ends at that
# nice level: on a machine loaded by other work that shows the path's own cost (CFS then gives them nearly
# the whole core) instead of whom the scheduler put beside them; say so when quoting such a figure. PIN=1
# puts the server on CPU 0 and the client on CPU 1 (never both ends on one core, which the scheduler does
# under load: then every message waits for a sched_yield hand-over, ~12 us half round trip).
#   bench/e2e/pingpong-cost.sh [tcp|udp] [seconds]      (default tcp 5)
# A timing, not a test: it never fails on a figure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROTO=${1:-tcp}
SECS=${2:-5}
PRELOAD=${PRELOAD:-$ROOT/build/libgazelle.so} # PRELOAD=other/build/libgazelle.so compares another build
EVENTS=task-clock,context-switches,cycles,instructions
command -v perf >/dev/null || { echo "perf missing" >&2; exit 1; }
command -v sockperf >/dev/null || { echo "sockperf missing: run make deps" >&2; exit 1; }
[ -f "$PRELOAD" ] || { echo "$PRELOAD missing: run make" >&2; exit 1; }
tmp=$(mktemp -d /tmp/gz-ppcost.XXXXXX)
srv=""
cleanup() {
    host_sampler_stop
    [ -n "$srv" ] && { pkill -INT -P "$srv" 2>/dev/null || true; kill -INT "$srv" 2>/dev/null || true; sleep 1; kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
    rm -rf "$tmp" /var/run/dpdk/gz-ppcost-"$$"-*
}
trap cleanup EXIT
source "$ROOT/scripts/lstack-conf.sh"
source "$ROOT/bench/e2e/host-lib.sh" # the host's placement of the two CPUs during the run (docs/benchmark-variance.md)
host_sampler_start "$tmp"
memif_pair_conf "$tmp" "ppcost-$$" "$tmp/memif.sock" 10.66.0 9000
flag=""
[ "$PROTO" = tcp ] && flag=--tcp
port=$((30000 + RANDOM % 20000))
nice=() pin0=() pin1=()
[ -n "${NICE:-}" ] && nice=(nice -n "$NICE")
[ -n "${PIN:-}" ] && pin0=(taskset -c 0) pin1=(taskset -c 1)
"${pin0[@]}" "${nice[@]}" env GAZELLE_CONF="$tmp/memif-server.conf" GAZELLE_STATS=${SERVER_STATS:-/dev/null} LD_PRELOAD="$PRELOAD" \
    perf stat -x, -e $EVENTS -o "$tmp/server.stat" sockperf server -i 10.66.0.1 -p "$port" $flag >"$tmp/server.log" 2>&1 &
srv=$!
sleep 2
run_from=$(host_now)
rec=(perf stat -x, -e $EVENTS -o "$tmp/client.stat")
[ -n "${PROFILE:-}" ] && rec=(perf record -g -o "${PROFILE_OUT:-/tmp/gz-ppcost.perf.data}" perf stat -x, -e $EVENTS -o "$tmp/client.stat")
"${pin1[@]}" "${nice[@]}" env GAZELLE_CONF="$tmp/memif-client.conf" LD_PRELOAD="$PRELOAD" timeout $((SECS * 4 + 60)) \
    "${rec[@]}" sockperf ping-pong -i 10.66.0.1 -p "$port" $flag -m 64 -t "$SECS" >"$tmp/client.log" 2>&1 || true
# SIGINT ends sockperf's server (perf then prints its counts; perf itself passes no signal on).
pkill -INT -P "$srv" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
wait "$srv" 2>/dev/null || true
srv=""
host=$(host_state "$run_from" "$(host_now)")
rtts=$(grep -o 'ReceivedMessages=[0-9]*' "$tmp/client.log" | head -1 | cut -d= -f2)
p50=$(grep -o 'percentile 50.000 = *[0-9.]*' "$tmp/client.log" | awk '{print $NF}')
p99=$(grep -o 'percentile 99.000 = *[0-9.]*' "$tmp/client.log" | awk '{print $NF}')
[ -n "$rtts" ] && [ "$rtts" -gt 0 ] || { echo "no result"; cat "$tmp/client.log"; exit 1; }
# per FILE EVENT SCALE: the event's count per round trip times SCALE ("-" when the machine cannot count it).
per() { awk -F, -v ev="$2" -v n="$rtts" -v s="$3" '$3 == ev { if ($1 ~ /^[0-9.]+$/) printf "%.2f", $1 * s / n; else printf "-" }' "$1"; }
line() { echo "$(per "$1" task-clock 1000) us CPU, $(per "$1" context-switches 1) context switches, $(per "$1" cycles 1) cycles, $(per "$1" instructions 1) instructions per round trip"; }
echo "$PROTO ping-pong 64 B over memif, ${SECS}s${NICE:+, nice $NICE}${PIN:+, pinned}, load $(cut -d' ' -f1-3 /proc/loadavg): $rtts round trips, half RTT p50 $p50 us, p99 $p99 us, host $host"
echo "  client: $(line "$tmp/client.stat")"
echo "  server: $(line "$tmp/server.stat")"

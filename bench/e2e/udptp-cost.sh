#!/usr/bin/env bash
# What one 64-byte datagram costs each end of sockperf's UDP throughput test (issue 6): both ends preloaded,
# joined by net_memif, each under `perf stat` (CPU time, context switches), the client's CPU time divided by
# the messages it sent, the server's by the datagrams its stack delivered; with both stacks' counters
# (GAZELLE_STATS) for where datagrams waited or were dropped (Link.TxDeviceBusy: the memif ring was full and the
# sender waited; Link.TxDeviceFull: dropped; Udp.ReceiveQueueFull: the server's socket was full). The server's
# CPU time is also given for the client's run alone (its start-up and idle wait left out). Optional
# `perf record -g` of one end (PROFILE=client|server, PROFILE_OUT=file). PIN=1 puts the server on CPU 0 and the client on CPU 1. MEMIF_ARGS=rsize=8 adds net_memif
# arguments; MTU=1500 sizes memif's buffers for that MTU (default 9000, as compare.sh).
#   bench/e2e/udptp-cost.sh [seconds]      (default 5)
# A timing, not a test: it never fails on a figure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-5}
PRELOAD=${PRELOAD:-$ROOT/build/libgazelle.so} # PRELOAD=other/build/libgazelle.so compares another build
EVENTS=task-clock,context-switches
command -v perf >/dev/null || { echo "perf missing" >&2; exit 1; }
command -v sockperf >/dev/null || { echo "sockperf missing: run make deps" >&2; exit 1; }
[ -f "$PRELOAD" ] || { echo "$PRELOAD missing: run make" >&2; exit 1; }
tmp=$(mktemp -d /tmp/gz-udptpcost.XXXXXX)
srv=""
# SIGINT to the server's sockperf (it prints its total and exits), however deep under perf it runs.
stop_server() {
    local p=$1 c
    for c in $(pgrep -P "$p" 2>/dev/null); do stop_server "$c"; done
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = sockperf ] && kill -INT "$p" 2>/dev/null
    return 0
}
cleanup() {
    host_sampler_stop
    [ -n "$srv" ] && { stop_server "$srv"; sleep 1; kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
    rm -rf "$tmp" /var/run/dpdk/gz-udptpcost-"$$"-*
}
trap cleanup EXIT
source "$ROOT/scripts/lstack-conf.sh"
source "$ROOT/bench/e2e/cost-lib.sh"
source "$ROOT/bench/e2e/host-lib.sh" # the host's placement of the two CPUs during the run (docs/benchmark-variance.md)
host_sampler_start "$tmp"
memif_pair_conf "$tmp" "udptpcost-$$" "$tmp/memif.sock" 10.66.0 "${MTU:-9000}"
[ -n "${MEMIF_ARGS:-}" ] && sed -i "s|\(net_memif0,[^\"]*\)\"|\1,$MEMIF_ARGS\"|" "$tmp"/memif-*.conf
port=$((30000 + RANDOM % 20000))
cost_end_commands udptpcost
"${pin0[@]}" env GAZELLE_CONF="$tmp/memif-server.conf" GAZELLE_STATS="$tmp/server.stats" LD_PRELOAD="$PRELOAD" \
    "${srec[@]}" sockperf server -i 10.66.0.1 -p "$port" >"$tmp/server.log" 2>&1 &
srv=$!
sleep 2
# The server's CPU time while the client runs (its start-up and idle wait before are left out): /proc's utime +
# stime of the sockperf process, in clock ticks.
find_sockperf() {
    local p=$1 c
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = sockperf ] && { echo "$p"; return; }
    for c in $(pgrep -P "$p" 2>/dev/null); do find_sockperf "$c"; done
}
ticks() { awk '{ print $14 + $15 }' /proc/"$1"/stat 2>/dev/null || echo 0; }
spid=$(find_sockperf "$srv" | head -1)
t0=$(ticks "$spid")
run_from=$(host_now)
"${pin1[@]}" env GAZELLE_CONF="$tmp/memif-client.conf" GAZELLE_STATS="$tmp/client.stats" LD_PRELOAD="$PRELOAD" \
    timeout $((SECS * 4 + 60)) "${crec[@]}" sockperf throughput -i 10.66.0.1 -p "$port" -m 64 -t "$SECS" >"$tmp/client.log" 2>&1 || true
t1=$(ticks "$spid")
stop_server "$srv"
for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
wait "$srv" 2>/dev/null || true
srv=""
host=$(host_state "$run_from" "$(host_now)")
rate=$(grep -o 'Message Rate is [0-9]*' "$tmp/client.log" | awk '{print $NF}' || true)
sent=$(grep -o 'Total of [0-9]* messages sent' "$tmp/client.log" | awk '{print $3}' || true)
[ -n "$rate" ] && [ -n "$sent" ] || { echo "no result"; cat "$tmp/client.log" "$tmp/server.log"; exit 1; }
delivered=$(stat "$tmp/server.stats" Udp.Delivered)
received=$(grep -o 'Total [0-9]* messages received' "$tmp/server.log" | awk '{print $2}' || true)
per() { awk -F, -v ev="$2" -v n="$3" -v s="$4" '$3 == ev { if ($1 ~ /^[0-9.]+$/ && n > 0) printf "%.1f", $1 * s / n; else printf "-" }' "$1"; }
echo "UDP throughput 64 B over memif, ${SECS}s${PIN:+, pinned}, load $(cut -d' ' -f1-3 /proc/loadavg): $rate msg/s sent ($sent), $delivered delivered (${received:-?} received by sockperf), host $host"
echo "  client: $(per "$tmp/client.stat" task-clock "$sent" 1000000) ns CPU per message sent, $(per "$tmp/client.stat" context-switches "$sent" 1000000) context switches per million"
echo "  server: $(per "$tmp/server.stat" task-clock "$delivered" 1000000) ns CPU per datagram delivered; $(awk -v a="$t0" -v b="$t1" -v n="$delivered" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / hz * 1e9 / n; else printf "-" }') ns while the client ran"
echo "  client: $(grep -E 'TxDevice|TxNoBuffer|NoBuffer|SendsWaitingForRoom' "$tmp/client.stats" | tr '\n' ' ')"
echo "  server: $(grep -E 'ReceiveQueueFull|FramesReceived|Drop|Full' "$tmp/server.stats" | tr '\n' ' ')"
[ -n "${KEEP:-}" ] && cp "$tmp"/*.stats "$tmp"/*.log "$KEEP"/ 2>/dev/null || true

#!/usr/bin/env bash
# What one short connection (or one keep-alive request) costs each end (issue 6): nginx (master_process off,
# the benchmark's configuration) and wrk -t1 -c32 on a 1 KiB file over Gazelle# (both ends preloaded, joined
# by net_memif), each process under `perf stat` (CPU time, context switches, system calls), divided by the requests wrk
# counted. GAZELLE_SPIN_US defaults to 0 here (SPIN=... overrides): a waiting end then sleeps instead of
# spinning, so CPU time is the work done, not the time spent waiting for the other end.
# PROFILE=server|client records that end with `perf record -g` (PROFILE_OUT=file). KERNEL=1 runs the same
# over the kernel's loopback instead. EXTRA_CONF="key = value" lines go into both stacks' lstack.conf. NICE=-20 as in pingpong-cost.sh.
#   bench/e2e/connrate-cost.sh [close|keepalive] [seconds]      (default close 5)
# A timing, not a test: it never fails on a figure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODE=${1:-close}
SECS=${2:-5}
PRELOAD=${PRELOAD:-$ROOT/build/libgazelle.so}
EVENTS=task-clock,context-switches,raw_syscalls:sys_enter
for t in perf nginx wrk; do command -v $t >/dev/null || { echo "$t missing: run make deps" >&2; exit 1; }; done
[ -f "$PRELOAD" ] || { echo "$PRELOAD missing: run make" >&2; exit 1; }
tmp=$(mktemp -d /tmp/gz-crcost.XXXXXX)
srv=""
cleanup() {
    [ -n "$srv" ] && { kill -INT "$(cat "$tmp/nginx/logs/nginx.pid" 2>/dev/null)" 2>/dev/null || true; kill -INT "$srv" 2>/dev/null || true; sleep 1; kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
    rm -rf "$tmp" /var/run/dpdk/gz-crcost-"$$"-*
}
trap cleanup EXIT
source "$ROOT/scripts/lstack-conf.sh"
source "$ROOT/scripts/nginx-conf.sh"
port=$((30000 + RANDOM % 20000))
if [ -n "${KERNEL:-}" ]; then
    addr=127.0.0.1 srvenv=(env) clienv=(env)
else
    memif_pair_conf "$tmp" "crcost-$$" "$tmp/memif.sock" 10.66.0 9000
    # EXTRA_CONF: lines appended to both stacks' lstack.conf (e.g. "tcp_conn_count = 256").
    [ -n "${EXTRA_CONF:-}" ] && printf '%s\n' "$EXTRA_CONF" | tee -a "$tmp/memif-server.conf" >>"$tmp/memif-client.conf"
    addr=10.66.0.1
    srvenv=(env GAZELLE_SPIN_US=${SPIN:-0} GAZELLE_CONF="$tmp/memif-server.conf" GAZELLE_STATS=${SERVER_STATS:-/dev/null} LD_PRELOAD="$PRELOAD")
    clienv=(env GAZELLE_SPIN_US=${SPIN:-0} GAZELLE_CONF="$tmp/memif-client.conf" LD_PRELOAD="$PRELOAD")
fi
nice=()
[ -n "${NICE:-}" ] && nice=(nice -n "$NICE")
nginx_conf "$tmp/nginx" "$addr:$port" off && head -c 1024 /dev/urandom >"$tmp/nginx/www/small.bin"
srec=(perf stat -x, -e $EVENTS -o "$tmp/server.stat")
crec=(perf stat -x, -e $EVENTS -o "$tmp/client.stat")
out=${PROFILE_OUT:-/tmp/gz-crcost.perf.data}
[ "${PROFILE:-}" = server ] && srec=(perf record -g -o "$out" "${srec[@]}")
[ "${PROFILE:-}" = client ] && crec=(perf record -g -o "$out" "${crec[@]}")
"${nice[@]}" "${srvenv[@]}" "${srec[@]}" nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" >"$tmp/server.log" 2>&1 &
srv=$!
sleep 2
hdr=()
[ "$MODE" = close ] && hdr=(-H "Connection: close")
"${nice[@]}" "${clienv[@]}" timeout $((SECS * 4 + 60)) "${crec[@]}" wrk -t 1 -c 32 -d "${SECS}s" "${hdr[@]}" \
    "http://$addr:$port/small.bin" >"$tmp/client.log" 2>&1 || true
# nginx writes its own pid (master_process off: the one process); perf passes no signal on.
kill -INT "$(cat "$tmp/nginx/logs/nginx.pid" 2>/dev/null)" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
wait "$srv" 2>/dev/null || true
srv=""
reqs=$(grep -o '[0-9]* requests in' "$tmp/client.log" | awk '{print $1}')
rate=$(grep 'Requests/sec' "$tmp/client.log" | awk '{print int($2)}')
[ -n "$reqs" ] && [ "$reqs" -gt 0 ] || { echo "no result"; cat "$tmp/client.log"; exit 1; }
grep -q 'Socket errors' "$tmp/client.log" && grep 'Socket errors' "$tmp/client.log"
per() { awk -F, -v ev="$2" -v n="$reqs" -v s="$3" '$3 == ev { if ($1 ~ /^[0-9.]+$/) printf "%.2f", $1 * s / n; else printf "-" }' "$1"; }
line() { echo "$(per "$1" task-clock 1000) us CPU, $(per "$1" context-switches 1) context switches, $(per "$1" raw_syscalls:sys_enter 1) system calls per request"; }
echo "nginx+wrk $MODE ${KERNEL:+(kernel) }${SECS}s spin ${SPIN:-0}${NICE:+, nice $NICE}, load $(cut -d' ' -f1-3 /proc/loadavg): $reqs requests, $rate/s"
echo "  wrk:   $(line "$tmp/client.stat")"
echo "  nginx: $(line "$tmp/server.stat")"

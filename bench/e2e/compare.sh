#!/usr/bin/env bash
# End-to-end benchmarks, kernel and Gazelle# side by side in ONE invocation (issue 6).
#   bench/e2e/compare.sh [seconds-per-run]      (default 5)
#   ONLY="tcp udp udptp gbps redis ka cl" bench/e2e/compare.sh 5   runs only the named workloads
#   (for profiling one of them; the table shows the others as not run, in a temporary file).
#   ROUNDS=3 bench/e2e/compare.sh 5   runs every workload 3 times, kernel and Gazelle# in turn each round; the
#   table gives each figure's median over the rounds (and the ratio of the medians), each round's ratios below it:
#   the kernel's own figures move by +-20% from one run to the next on this VM.
#   PRELOAD=/other/build/libgazelle.so ONLY=... bench/e2e/compare.sh 5   runs another build as Gazelle# (an A/B).
#   HOST=near (or far) bench/e2e/compare.sh 5   starts each run only once the host runs the VM's two CPUs near
#   each other (or far apart), waiting up to HOST_WAIT_S (120 s) each time: both figures then come from the same
#   host placement. Without it every run's placement is only reported (bench/e2e/host-lib.sh,
#   docs/benchmark-variance.md): the kernel's figures and ours both move with it.
# Each workload runs twice with the same commands: over the kernel's loopback (127.0.0.1), then over
# Gazelle#: server and client each preloaded with build/libgazelle.so, their stacks joined by DPDK
# net_memif (shared memory, no kernel networking; addresses 10.66.0.1/.2 that no kernel interface
# has). The table gives both figures and their ratio (Gazelle# / kernel; for latencies kernel /
# Gazelle#, so above 1 is always better for Gazelle#). It writes bench/results.md and, drawn from its
# table by bench/e2e/chart.py, bench/results.svg (ratio bars on a log scale with the targets).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-5}
OUT=$ROOT/bench/results.md
PRELOAD=${PRELOAD:-$ROOT/build/libgazelle.so} # PRELOAD=other/build/libgazelle.so runs another build as Gazelle#
tmp=$(mktemp -d /tmp/gz-bench.XXXXXX)
[ -n "${ONLY:-}" ] && OUT=$tmp/results.md   # a partial run prints its table and never overwrites the published one
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    host_sampler_stop
    rm -rf "$tmp" /var/run/dpdk/gz-bench-"$$"-*
}
trap cleanup EXIT
for t in sockperf iperf3 redis-server redis-benchmark nginx wrk; do command -v $t >/dev/null || { echo "$t missing: run make deps" >&2; exit 1; }; done
[ -f "$PRELOAD" ] || { echo "$PRELOAD missing: run make" >&2; exit 1; }
case "${HOST:-}" in ""|near|far) ;; *) echo "HOST must be near or far" >&2; exit 1 ;; esac
source "$ROOT/bench/e2e/host-lib.sh"
host_sampler_start "$tmp"

bg_runs=0
start_bg() { bg_log=$tmp/bg.$((++bg_runs)).log; "$@" >"$bg_log" 2>&1 & pids+=($!); }
# A run that gave no figure says so on stderr with the end of its logs (client's, then server's), so a missing
# figure in the table ("-") has a visible cause.
no_figure() { # $1 = workload, then its log files
    echo "compare.sh: $1 over $MODE, round ${round:-1}, gave no figure; its logs end:" >&2
    local f
    for f in "${@:2}"; do [ -s "$f" ] && { echo "--- ${f##*/}" >&2; tail -n 8 "$f" >&2; }; done
    return 0
}
stop_bg() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }

# --- the two paths: ADDR is the server's address, SRV / CLI prefix the server / client commands ----
run=0
source "$ROOT/scripts/lstack-conf.sh"
source "$ROOT/scripts/nginx-conf.sh"
use_kernel() { MODE=kernel ADDR=127.0.0.1; SRV=(env); CLI=(timeout $((SECS * 4 + 60))); }
use_gazelle() { # a fresh memif pair (own socket, own EAL file prefixes) for every run
    run=$((run + 1))
    mkdir -p "$tmp/run$run"
    # MTU 9000 between the two stacks (the kernel's loopback runs 65536). Only iperf3's segments are long
    # enough to notice.
    memif_pair_conf "$tmp/run$run" "bench-$$-$run" "$tmp/run$run/memif.sock" 10.66.0 9000
    MODE=gazelle ADDR=10.66.0.1
    SRV=(env GAZELLE_CONF="$tmp/run$run/memif-server.conf" LD_PRELOAD="$PRELOAD")
    CLI=(env GAZELLE_CONF="$tmp/run$run/memif-client.conf" LD_PRELOAD="$PRELOAD" timeout $((SECS * 4 + 60)))
}
# Waits until the server listens: over the kernel by connecting; a preloaded server cannot be probed
# from the kernel (its address is on no kernel interface), so it gets the 2 s its stack needs to start.
wait_server() {
    if [ "$MODE" = kernel ]; then
        for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1
    fi
    sleep 2
}

# --- workloads: each prints its figures, or nothing when the run failed -----------------------
sockperf_pingpong() { # $1 = --tcp or "" ; prints p50 and p99 half round trip in us
    local port=$((30000 + RANDOM % 20000))
    start_bg "${SRV[@]}" sockperf server -i "$ADDR" -p "$port" $1
    [ "$MODE" = kernel ] && sleep 0.5 || sleep 2
    "${CLI[@]}" sockperf ping-pong -i "$ADDR" -p "$port" $1 -m 64 -t "$SECS" >"$tmp/pp.log" 2>&1 || true
    stop_bg
    local p50 p99
    p50=$(grep -o 'percentile 50.000 = *[0-9.]*' "$tmp/pp.log" | awk '{print $NF}')
    p99=$(grep -o 'percentile 99.000 = *[0-9.]*' "$tmp/pp.log" | awk '{print $NF}')
    if [ -n "$p50" ]; then echo "$p50 $p99"; else no_figure "sockperf ping-pong $1" "$tmp/pp.log" "$bg_log"; fi
    return 0
}
sockperf_udp_throughput() { # messages/s sent by the client (sockperf's "Message Rate"), 64 B, and delivered
    # (what the server received, over the same time: the client's rate times received / sent; sends beyond what
    # the path takes are dropped by the kernel at the receiving socket; Gazelle#'s sender waits while the memif ring
    # is full, Link.TxDeviceBusy, as Linux's veth). The server is stopped with SIGINT, on which it prints its total.
    local port=$((30000 + RANDOM % 20000)) srv
    "${SRV[@]}" sockperf server -i "$ADDR" -p "$port" >"$tmp/tps.log" 2>&1 &
    srv=$!
    pids+=("$srv")
    [ "$MODE" = kernel ] && sleep 0.5 || sleep 2
    "${CLI[@]}" sockperf throughput -i "$ADDR" -p "$port" -m 64 -t "$SECS" >"$tmp/tp.log" 2>&1 || true
    kill -INT "$srv" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
    stop_bg
    local rate sent got
    rate=$(grep -o 'Message Rate is [0-9]*' "$tmp/tp.log" | awk '{print $NF}')
    sent=$(grep -o 'Total of [0-9]* messages sent' "$tmp/tp.log" | awk '{print $3}')
    got=$(grep -o 'Total [0-9]* messages received' "$tmp/tps.log" | awk '{print $2}')
    [ -n "$rate" ] || { no_figure "sockperf throughput" "$tmp/tp.log" "$tmp/tps.log"; return 0; }
    if [ -n "$sent" ] && [ -n "$got" ] && [ "$sent" -gt 0 ]; then
        echo "$rate $(awk -v r="$rate" -v s="$sent" -v g="$got" 'BEGIN { d = r * g / s; if (d > r) d = r; printf "%d", d }')"
    else
        echo "$rate"
    fi
    return 0
}
iperf3_bulk() { # Gbit/s received
    local port=$((30000 + RANDOM % 20000))
    start_bg "${SRV[@]}" iperf3 -s -1 -p "$port" -B "$ADDR"
    [ "$MODE" = kernel ] && sleep 0.5 || sleep 2
    "${CLI[@]}" iperf3 -c "$ADDR" -p "$port" -t "$SECS" -J >"$tmp/iperf.json" 2>/dev/null || true
    stop_bg
    python3 -c "import json;print(round(json.load(open('$tmp/iperf.json'))['end']['sum_received']['bits_per_second']/1e9,2))" 2>/dev/null \
        || no_figure "iperf3" "$tmp/iperf.json" "$bg_log"
}
redis_getset() { # requests/s for GET and SET, 50 clients, and p50/p99 ms of GET
    local port=$((30000 + RANDOM % 20000))
    start_bg "${SRV[@]}" redis-server --port "$port" --bind "$ADDR" --save '' --appendonly no --protected-mode no
    wait_server "$port" || { stop_bg; no_figure "redis-server (not listening)" "$bg_log"; return 0; }
    "${CLI[@]}" redis-benchmark -h "$ADDR" -p "$port" -c 50 -n $((SECS * 40000)) -t get,set --csv >"$tmp/redis.csv" 2>/dev/null || true
    stop_bg
    python3 - "$tmp/redis.csv" <<'PY' 2>/dev/null || true
import csv, sys
rows = {r[0]: r for r in csv.reader(open(sys.argv[1])) if r and r[0] in ("GET", "SET")}
print(round(float(rows["SET"][1])), round(float(rows["GET"][1])), rows["GET"][4], rows["GET"][6])
PY
    [ -s "$tmp/redis.csv" ] || no_figure "redis-benchmark" "$bg_log"
    return 0
}
nginx_wrk() { # $1 = keepalive|close ; requests/s
    local port=$((30000 + RANDOM % 20000)) dir=$tmp/nginx-$MODE-$1
    nginx_conf "$dir" "$ADDR:$port" off && head -c 1024 /dev/urandom > "$dir/www/small.bin"
    start_bg "${SRV[@]}" nginx -c "$dir/nginx.conf" -p "$dir"
    wait_server "$port" || { stop_bg; no_figure "nginx (not listening)" "$bg_log" "$dir/logs/error.log"; return 0; }
    local hdr=()
    [ "$1" = close ] && hdr=(-H "Connection: close")
    "${CLI[@]}" wrk -t 1 -c 32 -d "${SECS}s" "${hdr[@]}" "http://$ADDR:$port/small.bin" >"$tmp/wrk.log" 2>&1 || true
    stop_bg
    # A run with socket errors does not count: its rate would not be comparable.
    if grep -q 'Socket errors' "$tmp/wrk.log" || ! grep -q 'Requests/sec' "$tmp/wrk.log"; then
        no_figure "wrk $1" "$tmp/wrk.log" "$dir/logs/error.log"
        return 0
    fi
    grep 'Requests/sec' "$tmp/wrk.log" | awk '{print int($2)}'
    return 0
}

# --- run -----------------------------------------------------------------------------------
wanted() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
ROUNDS=${ROUNDS:-1}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number" >&2; exit 1; }
WORKLOADS="tcp udp udptp gbps redis ka cl"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A R
# run_begin / run_end KEY: each run waits for the wanted host placement (HOST) and records the one it got.
run_begin() { host_wait "${HOST:-}"; run_from=$(host_now); }
run_end() { R[$1.host]=$(host_state "$run_from" "$(host_now)"); }
for round in $(seq "$ROUNDS"); do
    for mode in kernel gazelle; do
        echo "round $round of $ROUNDS: $mode runs, ${SECS}s each..."
        for w in $WORKLOADS; do R[$mode.$w.$round]=""; R[$mode.$w.$round.host]=""; done
        if wanted tcp; then use_$mode; run_begin; read -r tcp50 tcp99 < <(sockperf_pingpong --tcp) || true
            R[$mode.tcp.$round]="${tcp50:-} ${tcp99:-}"; tcp50="" tcp99=""; run_end $mode.tcp.$round; fi
        if wanted udp; then use_$mode; run_begin; read -r udp50 udp99 < <(sockperf_pingpong "") || true
            R[$mode.udp.$round]="${udp50:-} ${udp99:-}"; udp50="" udp99=""; run_end $mode.udp.$round; fi
        if wanted udptp; then use_$mode; run_begin; R[$mode.udptp.$round]=$(sockperf_udp_throughput); run_end $mode.udptp.$round; fi
        if wanted gbps; then use_$mode; run_begin; R[$mode.gbps.$round]=$(iperf3_bulk); run_end $mode.gbps.$round; fi
        if wanted redis; then use_$mode; run_begin; R[$mode.redis.$round]=$(redis_getset); run_end $mode.redis.$round; fi
        if wanted ka; then use_$mode; run_begin; R[$mode.ka.$round]=$(nginx_wrk keepalive); run_end $mode.ka.$round; fi
        if wanted cl; then use_$mode; run_begin; R[$mode.cl.$round]=$(nginx_wrk close); run_end $mode.cl.$round; fi
    done
done
host_sampler_stop
# Each figure of the table: the median, field by field, of the rounds that gave a result (a failed round is
# left out; the mean of the two middle values for an even count).
median_of_rounds() { # KEY (mode.workload)
    local r
    for r in $(seq "$ROUNDS"); do if [ -n "${R[$1.$r]// /}" ]; then echo "${R[$1.$r]}"; fi; done | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.split()]
fmt = lambda v: str(int(v)) if v == int(v) else str(round(v, 3))
if rows:
    n = min(len(r) for r in rows)
    print(" ".join(fmt(statistics.median(float(r[i]) for r in rows)) for i in range(n)))'
}
for mode in kernel gazelle; do for w in $WORKLOADS; do R[$mode.$w]=$(median_of_rounds "$mode.$w"); done; done

# cell KEY FIELD...: "a / b" of the given fields of a result, or a clear failure note.
cell() {
    local v=${R[$1]} out="" f
    wanted "${1#*.}" || { echo "not run"; return; }
    [ -n "${v// /}" ] || { echo "failed: no result (see the workload's log)"; return; }
    shift
    for f in "$@"; do out="${out:+$out / }$(echo "$v" | awk -v f="$f" '{print $f}')"; done
    echo "$out"
}
# ratio KEY FIELD higher|lower: Gazelle# over kernel for rates ("higher" is better), kernel over
# Gazelle# for latencies, so that above 1 always means Gazelle# is better.
ratio() {
    local k g
    k=$(echo "${R[kernel.$1]}" | awk -v f="$2" '{print $f}')
    g=$(echo "${R[gazelle.$1]}" | awk -v f="$2" '{print $f}')
    [ -n "$k" ] && [ -n "$g" ] || { echo "-"; return; }
    awk -v k="$k" -v g="$g" -v d="$3" 'BEGIN { r = (d == "higher") ? (k > 0 ? g / k : 0) : (g > 0 ? k / g : 0);
        printf (r < 0.1 ? "%.3fx" : "%.2fx"), r }'
}

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
if [ "$ROUNDS" = 1 ]; then echo "# Kernel vs Gazelle#, one run"; else echo "# Kernel vs Gazelle#, median of $ROUNDS rounds"; fi
echo
echo "Date $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), ${SECS}s per run."
echo "Load average (1/5/15 min) at the start: $load_start, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the benchmark's own"
echo "processes count too: each run has two; above ~2 other work shared the cores, and the numbers are indicative)."
command_env="${HOST:+HOST=$HOST }${ONLY:+ONLY=\"$ONLY\" }"; [ "$ROUNDS" = 1 ] || command_env="${command_env}ROUNDS=$ROUNDS "
echo "Command: \`${command_env}bench/e2e/compare.sh $SECS\`"
echo
echo "Kernel: both ends on 127.0.0.1 (loopback). Gazelle#: both ends preloaded with build/libgazelle.so,"
echo "each with its own stack, joined by DPDK net_memif (shared memory), addresses 10.66.0.1/.2, MTU 9000 (loopback: 65536)."
echo "Ratio: Gazelle# / kernel for rates, kernel / Gazelle# for latencies (above 1 = Gazelle# better)."
echo "Chart of this table: [results.svg](results.svg)."
echo
echo "| workload | kernel (loopback) | Gazelle# (memif) | ratio | target |"
echo "| --- | --- | --- | --- | --- |"
echo "| sockperf TCP ping-pong 64 B, half RTT p50 / p99 (us) | $(cell kernel.tcp 1 2) | $(cell gazelle.tcp 1 2) | $(ratio tcp 1 lower) / $(ratio tcp 2 lower) | >= 10x (<= 0.1x the latency) |"
echo "| sockperf UDP ping-pong 64 B, half RTT p50 / p99 (us) | $(cell kernel.udp 1 2) | $(cell gazelle.udp 1 2) | $(ratio udp 1 lower) / $(ratio udp 2 lower) | |"
echo "| sockperf UDP throughput 64 B, client send rate (msg/s) | $(cell kernel.udptp 1) | $(cell gazelle.udptp 1) | $(ratio udptp 1 higher) | >= 10x |"
echo "| sockperf UDP throughput 64 B, delivered to the server (msg/s) | $(cell kernel.udptp 2) | $(cell gazelle.udptp 2) | $(ratio udptp 2 higher) | |"
echo "| iperf3 TCP bulk (Gbit/s) | $(cell kernel.gbps 1) | $(cell gazelle.gbps 1) | $(ratio gbps 1 higher) | >= 1x |"
echo "| redis-benchmark 50 clients SET / GET (req/s) | $(cell kernel.redis 1 2) | $(cell gazelle.redis 1 2) | $(ratio redis 1 higher) / $(ratio redis 2 higher) | >= 3x |"
echo "| redis-benchmark GET latency p50 / p99 (ms) | $(cell kernel.redis 3 4) | $(cell gazelle.redis 3 4) | $(ratio redis 3 lower) / $(ratio redis 4 lower) | |"
echo "| nginx + wrk 1 KiB, keep-alive (req/s) | $(cell kernel.ka 1) | $(cell gazelle.ka 1) | $(ratio ka 1 higher) | |"
echo "| nginx + wrk 1 KiB, Connection: close (conn/s) | $(cell kernel.cl 1) | $(cell gazelle.cl 1) | $(ratio cl 1 higher) | >= 3x |"
if [ "$ROUNDS" != 1 ]; then
    echo
    echo "Each round's ratios (the table gives the ratio of the medians):"
    echo
    for round in $(seq "$ROUNDS"); do
        line=""
        for spec in "tcp 1 lower TCP p50" "udp 1 lower UDP p50" "udptp 1 higher UDP msg/s" "udptp 2 higher UDP delivered" "gbps 1 higher iperf3" \
            "redis 1 higher redis SET" "redis 2 higher redis GET" "ka 1 higher keep-alive" "cl 1 higher close"; do
            read -r w f d name <<<"$spec"
            wanted "$w" || continue
            R[kernel.round]=${R[kernel.$w.$round]}; R[gazelle.round]=${R[gazelle.$w.$round]}
            line="${line:+$line, }$name $(ratio round "$f" "$d")"
        done
        echo "- round $round: $line"
    done
fi
echo
echo "Host placement during each run (\`bench/e2e/host-lib.sh\`${HOST:+; runs waited for HOST=$HOST}): \"near\" = the host ran the VM's two"
echo "CPUs on cores sharing a last-level cache (a cache line's round trip between them ~70 ns), \"far\" = not (~470 ns);"
echo "rt = that round trip, cpu = the slower CPU's ns per probe loop (~2.0 at full speed, ~2.8 with the host core's"
echo "other hyperthread busy), steal = the host's steal time. See docs/benchmark-variance.md."
echo
for round in $(seq "$ROUNDS"); do
    for spec in "tcp TCP ping-pong" "udp UDP ping-pong" "udptp UDP throughput" "gbps iperf3" "redis redis" "ka keep-alive" "cl close"; do
        read -r w name <<<"$spec"
        wanted "$w" || continue
        echo "- round $round, $name: kernel ${R[kernel.$w.$round.host]:-unknown}; Gazelle# ${R[gazelle.$w.$round.host]:-unknown}"
    done
done | tee "$tmp/host-runs"
echo
echo "Runs by host placement: $(host_tally <"$tmp/host-runs")."
echo
echo "Exact commands: see the functions in bench/e2e/compare.sh (sockperf server/ping-pong/throughput -m 64,"
echo "iperf3 -c, redis-benchmark -c 50 -t get,set, nginx master_process off with open_file_cache + wrk -t1 -c32)."
} >"$OUT"
python3 "$ROOT/bench/e2e/chart.py" "$OUT" "${OUT%.md}.svg"
cat "$OUT"
echo "chart: ${OUT%.md}.svg"

#!/usr/bin/env bash
# End-to-end benchmarks, kernel and Gazelle# side by side in ONE invocation (issue 6).
#   bench/e2e/compare.sh [seconds-per-run]      (default 5)
# Each workload runs over the kernel's loopback and over our stack (both ends preloaded), and the
# table gives both figures and their ratio. It writes bench/results.md.
# Today the stack does not yet serve preloaded sockets, so the Gazelle column says so instead of a
# number; `gazelle_env` below is where the memif/netns configuration plugs in.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-5}
OUT=$ROOT/bench/results.md
tmp=$(mktemp -d /tmp/gz-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
for t in sockperf iperf3 redis-server redis-benchmark nginx wrk; do command -v $t >/dev/null || { echo "$t missing: run make deps" >&2; exit 1; }; done

start_bg() { "$@" >"$tmp/bg.$RANDOM.log" 2>&1 & pids+=($!); }
stop_bg() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
wait_tcp() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# --- workloads: each prints "value unit" for the kernel path --------------------------------
sockperf_pingpong() { # $1 = --tcp or "" ; prints p50 and p99 half round trip in us
    local port=$((30000 + RANDOM % 20000))
    start_bg sockperf server -i 127.0.0.1 -p "$port" $1
    sleep 0.5
    sockperf ping-pong -i 127.0.0.1 -p "$port" $1 -m 64 -t "$SECS" >"$tmp/pp.log" 2>&1
    stop_bg
    local p50 p99
    p50=$(grep -o 'percentile 50.000 = *[0-9.]*' "$tmp/pp.log" | awk '{print $NF}')
    p99=$(grep -o 'percentile 99.000 = *[0-9.]*' "$tmp/pp.log" | awk '{print $NF}')
    echo "$p50 $p99"
}
sockperf_udp_throughput() { # messages/s received by the server, 64 B
    local port=$((30000 + RANDOM % 20000))
    start_bg sockperf server -i 127.0.0.1 -p "$port"
    sleep 0.5
    sockperf throughput -i 127.0.0.1 -p "$port" -m 64 -t "$SECS" >"$tmp/tp.log" 2>&1
    stop_bg
    grep -o 'Message Rate is [0-9]*' "$tmp/tp.log" | awk '{print $NF}'
}
iperf3_bulk() { # Gbit/s received
    local port=$((30000 + RANDOM % 20000))
    start_bg iperf3 -s -1 -p "$port" -B 127.0.0.1
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$port" -t "$SECS" -J >"$tmp/iperf.json"
    stop_bg
    python3 -c "import json;print(round(json.load(open('$tmp/iperf.json'))['end']['sum_received']['bits_per_second']/1e9,2))"
}
redis_getset() { # requests/s for GET and SET, 50 clients, and p50/p99 ms of GET
    local port=$((30000 + RANDOM % 20000))
    start_bg redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no
    wait_tcp "$port"
    redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n $((SECS * 40000)) -t get,set --csv >"$tmp/redis.csv" 2>/dev/null
    stop_bg
    python3 - "$tmp/redis.csv" <<'PY'
import csv, sys
rows = {r[0]: r for r in csv.reader(open(sys.argv[1])) if r and r[0] in ("GET", "SET")}
print(round(float(rows["SET"][1])), round(float(rows["GET"][1])), rows["GET"][4], rows["GET"][6])
PY
}
nginx_wrk() { # $1 = keepalive|close ; requests/s
    local port=$((30000 + RANDOM % 20000)) dir=$tmp/nginx
    mkdir -p "$dir/logs" "$dir/www" && head -c 1024 /dev/urandom > "$dir/www/small.bin"
    cat >"$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log $dir/logs/error.log; pid $dir/nginx.pid;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen 127.0.0.1:$port; root $dir/www; } }
CONF
    start_bg nginx -c "$dir/nginx.conf" -p "$dir"
    wait_tcp "$port"
    local hdr=()
    [ "$1" = close ] && hdr=(-H "Connection: close")
    wrk -t 1 -c 32 -d "${SECS}s" "${hdr[@]}" "http://127.0.0.1:$port/small.bin" >"$tmp/wrk.log" 2>&1
    stop_bg
    grep 'Requests/sec' "$tmp/wrk.log" | awk '{print int($2)}'
}

# --- run -----------------------------------------------------------------------------------
echo "kernel loopback runs, ${SECS}s each..."
read -r tcp50 tcp99 < <(sockperf_pingpong --tcp)
read -r udp50 udp99 < <(sockperf_pingpong "")
udptp=$(sockperf_udp_throughput)
gbps=$(iperf3_bulk)
read -r rset rget rp50 rp99 < <(redis_getset)
ka=$(nginx_wrk keepalive)
cl=$(nginx_wrk close)
gz="not yet: the stack does not serve preloaded sockets"

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
echo "# Kernel vs Gazelle#, one run"
echo
echo "Date $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), ${SECS}s per run."
echo "Command: \`bench/e2e/compare.sh $SECS\`"
echo
echo "| workload | kernel (loopback) | Gazelle# | ratio | target |"
echo "| --- | --- | --- | --- | --- |"
echo "| sockperf TCP ping-pong 64 B, half RTT p50 / p99 (us) | $tcp50 / $tcp99 | $gz | - | <= 0.1x |"
echo "| sockperf UDP ping-pong 64 B, half RTT p50 / p99 (us) | $udp50 / $udp99 | $gz | - | |"
echo "| sockperf UDP throughput 64 B (msg/s) | $udptp | $gz | - | >= 10x |"
echo "| iperf3 TCP bulk (Gbit/s) | $gbps | $gz | - | >= 1x |"
echo "| redis-benchmark 50 clients SET / GET (req/s) | $rset / $rget | $gz | - | >= 3x |"
echo "| redis-benchmark GET latency p50 / p99 (ms) | $rp50 / $rp99 | $gz | - | |"
echo "| nginx + wrk 1 KiB, keep-alive (req/s) | $ka | $gz | - | |"
echo "| nginx + wrk 1 KiB, Connection: close (conn/s) | $cl | $gz | - | >= 3x |"
echo
echo "Exact commands: see the functions in bench/e2e/compare.sh (sockperf server/ping-pong/throughput -m 64,"
echo "iperf3 -c, redis-benchmark -c 50 -t get,set, nginx master_process off + wrk -t1 -c32)."
} >"$OUT"
cat "$OUT"

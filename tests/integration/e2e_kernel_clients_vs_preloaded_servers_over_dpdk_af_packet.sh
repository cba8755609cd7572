#!/usr/bin/env bash
# Linux-kernel clients (peer namespace, 10.91.0.1) against unmodified servers preloaded on our stack
# (DPDK net_af_packet on a veth end where the kernel has no address: 10.91.0.2 is only the stack's),
# one server at a time (each process is a whole stack on that link):
#   nginx (single process)  <- curl and wget: a 2 MB file byte-exact, nginx logs the kernel peer;
#   iperf3 -s               <- iperf3 -c, both directions (-R): the bytes one side sent, the other received;
#   redis-server            <- redis-cli SET/GET of a random value, redis-benchmark SET/GET, then the
#                              benchmark's own 100-byte key and the first value read back.
# Each server's stack counters (GAZELLE_COUNTERS, rewritten while it runs) must show the TCP bytes it carried.
source "$(dirname "$0")/lib.sh"
need nginx
need curl
need wget
need iperf3
need redis-server
need redis-cli
need redis-benchmark
need python3
netns_pair 10.91.0.1/24
stack_conf "$TEST_TMP/stack.conf" "$VETH_STACK" 10.91.0.2 "gz-ksrv-$$"
counter() { awk -v n="counter.$2" '$1 == n {v = $2} END {print v + 0}' "$1" 2>/dev/null || echo 0; }
serve_preloaded() { # NAME LOG CMD...: starts CMD preloaded in the stack's namespace, in the background, as $server
    # (its own pid: exec, so that stop() ends the server and not a subshell); counters in $TEST_TMP/NAME.counters.
    local name=$1 log=$2; shift 2
    GAZELLE_COUNTERS=$TEST_TMP/$name.counters GAZELLE_CONF=$TEST_TMP/stack.conf LD_PRELOAD=$PRELOAD \
        exec ip netns exec "$NS_STACK" "$@" >"$log" 2>&1 &
    server=$!
    TEST_PIDS+=($server)
}
peer() { timeout 60 ip netns exec "$NS_PEER" "$@"; }
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }

# ---- nginx <- curl, wget
dir=$TEST_TMP/nginx
nginx_conf "$dir" 10.91.0.2:8080
head -c 2000000 /dev/urandom >"$dir/www/file.bin"
serve_preloaded nginx "$TEST_TMP/nginx.out" nginx -c "$dir/nginx.conf" -p "$dir"
wait_port_in_ns "$NS_PEER" 10.91.0.2 8080 20
peer curl -sS --max-time 30 -o "$TEST_TMP/curl.bin" http://10.91.0.2:8080/file.bin 2>"$TEST_TMP/curl.err" \
    || fail "kernel curl: $(cat "$TEST_TMP/curl.err") $(tail -3 "$dir/logs/error.log")"
cmp -s "$dir/www/file.bin" "$TEST_TMP/curl.bin" || fail "kernel curl's copy differs from the file nginx served"
peer wget -q -T 30 -O "$TEST_TMP/wget.bin" http://10.91.0.2:8080/file.bin 2>"$TEST_TMP/wget.err" \
    || fail "kernel wget: $(cat "$TEST_TMP/wget.err") $(tail -3 "$dir/logs/error.log")"
cmp -s "$dir/www/file.bin" "$TEST_TMP/wget.bin" || fail "kernel wget's copy differs from the file nginx served"
[ "$(grep -c '^10\.91\.0\.1 .*GET /file.bin.* 200 2000000' "$dir/logs/access.log")" -eq 2 ] \
    || fail "nginx did not log two 2 MB answers to 10.91.0.1: $(cat "$dir/logs/access.log")"
sleep 0.4
sent=$(counter "$TEST_TMP/nginx.counters" TcpLayer.BytesSent)
[ "$sent" -ge 4000000 ] || fail "nginx's stack sent $sent TCP bytes, want >= 4000000: $(cat "$TEST_TMP/nginx.counters")"
echo "nginx (preloaded) <- kernel curl, wget: 2 MB each, byte-exact; the stack sent $sent TCP bytes"
stop "$server"

# ---- iperf3 -s <- iperf3 -c, both directions
check_iperf() { # JSON DIRECTION
    python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert "error" not in d, d.get("error")
assert d["start"]["connected"][0]["remote_host"] == "10.91.0.2", d["start"]["connected"]
sent, rx = d["end"]["sum_sent"]["bytes"], d["end"]["sum_received"]["bytes"]
assert rx > 1_000_000 and sent >= rx, (sent, rx)
print("iperf3 %s: %.1f MB, %.0f Mbit/s" % (sys.argv[2], rx / 1e6, d["end"]["sum_received"]["bits_per_second"] / 1e6))
PY
}
serve_preloaded iperf3 "$TEST_TMP/iperf3-server.log" iperf3 -s -p 5201 -B 10.91.0.2
sleep 1
for dirn in "kernel -> preloaded" "preloaded -> kernel"; do
    rev=(); [ "$dirn" = "kernel -> preloaded" ] || rev=(-R)
    ok=""
    for try in 1 2 3 4 5; do  # the server may still be starting: iperf3 -c does not retry
        if peer iperf3 -c 10.91.0.2 -p 5201 -t 2 "${rev[@]}" -J >"$TEST_TMP/iperf3.json" 2>"$TEST_TMP/iperf3.err" \
            && ! grep -q '"error"' "$TEST_TMP/iperf3.json"; then ok=1; break; fi
        sleep 1
    done
    [ -n "$ok" ] || fail "kernel iperf3 -c ${rev[*]}: $(head -c 400 "$TEST_TMP/iperf3.json") $(cat "$TEST_TMP/iperf3.err") / server: $(tail -3 "$TEST_TMP/iperf3-server.log")"
    check_iperf "$TEST_TMP/iperf3.json" "$dirn" || fail "iperf3 ${rev[*]} report: $(head -c 600 "$TEST_TMP/iperf3.json")"
done
grep -q 'Accepted connection from 10.91.0.1' "$TEST_TMP/iperf3-server.log" || fail "the preloaded iperf3 saw no client from 10.91.0.1"
sleep 0.4
echo "iperf3 (preloaded) stack: TcpLayer.BytesReceived=$(counter "$TEST_TMP/iperf3.counters" TcpLayer.BytesReceived)" \
     "TcpLayer.BytesSent=$(counter "$TEST_TMP/iperf3.counters" TcpLayer.BytesSent)"
[ "$(counter "$TEST_TMP/iperf3.counters" TcpLayer.BytesReceived)" -gt 1000000 ] && [ "$(counter "$TEST_TMP/iperf3.counters" TcpLayer.BytesSent)" -gt 1000000 ] \
    || fail "the preloaded iperf3's stack did not carry both directions: $(cat "$TEST_TMP/iperf3.counters")"
stop "$server"

# ---- redis-server <- redis-cli, redis-benchmark
serve_preloaded redis "$TEST_TMP/redis.log" redis-server --port 6379 --bind 10.91.0.2 --save '' --appendonly no --protected-mode no
wait_port_in_ns "$NS_PEER" 10.91.0.2 6379 20
cli() { peer redis-cli -h 10.91.0.2 -p 6379 "$@" 2>>"$TEST_TMP/cli.err"; }
value="gazelle-$RANDOM-$RANDOM-$(head -c 2000 /dev/urandom | base64 -w0)"
[ "$(cli set key "$value")" = OK ] || fail "SET: $(cat "$TEST_TMP/cli.err") $(tail -3 "$TEST_TMP/redis.log")"
[ "$(cli get key)" = "$value" ] || fail "GET did not return the value SET"
peer redis-benchmark -h 10.91.0.2 -p 6379 -c 20 -n 5000 -d 100 -t set,get --csv >"$TEST_TMP/bench.csv" 2>"$TEST_TMP/bench.err" \
    || fail "redis-benchmark: $(tail -3 "$TEST_TMP/bench.err")"
for t in SET GET; do
    grep -q "^\"$t\",\"[1-9]" "$TEST_TMP/bench.csv" || fail "redis-benchmark reported no $t rate: $(cat "$TEST_TMP/bench.csv")"
done
[ "$(cli strlen key:__rand_int__)" = 100 ] || fail "the benchmark's 100-byte value did not read back"
[ "$(cli get key)" = "$value" ] || fail "the value SET before the benchmark changed"
echo "redis-server (preloaded) <- kernel redis-cli SET/GET exact, redis-benchmark 20 clients: $(cut -d, -f1-2 "$TEST_TMP/bench.csv" | tr '\n' ' ')"
stop "$server"

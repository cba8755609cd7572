#!/usr/bin/env bash
# Unmodified clients preloaded on our stack (DPDK net_af_packet on a veth end where the kernel has no
# address: only the stack can reach 10.92.0.1 from there) against Linux-kernel servers in the peer
# namespace (10.92.0.1):
#   curl, wget            -> nginx: a 2 MB file byte-exact, nginx logs 10.92.0.2 (the stack) as the client;
#   iperf3 -c, -c -R      -> iperf3 -s: the bytes one side sent, the other received;
#   redis-cli, redis-benchmark -> redis-server: a random value SET over the stack reads back through
#                            the kernel's own client, and the benchmark's key is there.
# Each client's stack counters (GAZELLE_STATS, written at its exit) must show the TCP bytes it carried.
source "$(dirname "$0")/lib.sh"
need nginx
need curl
need wget
need iperf3
need redis-server
need redis-cli
need redis-benchmark
need python3
netns_pair 10.92.0.1/24
stack_conf "$TEST_TMP/stack.conf" "$VETH_STACK" 10.92.0.2 "gz-kcli-$$"
counter() { awk -v n="counter.$2" '$1 == n {v = $2} END {print v + 0}' "$1" 2>/dev/null || echo 0; }
client() { # NAME CMD...: runs CMD preloaded in the stack's namespace; counters in $TEST_TMP/NAME.counters
    local name=$1; shift
    GAZELLE_STATS=$TEST_TMP/$name.counters GAZELLE_CONF=$TEST_TMP/stack.conf LD_PRELOAD=$PRELOAD timeout 60 \
        ip netns exec "$NS_STACK" "$@"
}
kernel_server() { # LOG CMD...: a kernel server in the peer namespace, in the background
    local log=$1; shift
    exec ip netns exec "$NS_PEER" "$@" >"$log" 2>&1 &
    TEST_PIDS+=($!)
}

# ---- curl, wget -> nginx
dir=$TEST_TMP/nginx
nginx_conf "$dir" 10.92.0.1:8080
head -c 2000000 /dev/urandom >"$dir/www/file.bin"
kernel_server "$TEST_TMP/nginx.out" nginx -c "$dir/nginx.conf" -p "$dir"
kernel_server "$TEST_TMP/iperf3-server.log" iperf3 -s -p 5201 -B 10.92.0.1
kernel_server "$TEST_TMP/redis.log" redis-server --port 6379 --bind 10.92.0.1 --save '' --appendonly no --protected-mode no
wait_port_in_ns "$NS_PEER" 10.92.0.1 8080
wait_port_in_ns "$NS_PEER" 10.92.0.1 5201
wait_port_in_ns "$NS_PEER" 10.92.0.1 6379
# Without the preload, the stack's namespace cannot reach the peer at all.
if timeout 10 ip netns exec "$NS_STACK" curl -s --max-time 3 -o /dev/null http://10.92.0.1:8080/file.bin; then
    fail "curl reached the peer without the stack: the test would prove nothing"
fi

client curl curl -sS --max-time 30 -o "$TEST_TMP/curl.bin" http://10.92.0.1:8080/file.bin 2>"$TEST_TMP/curl.err" \
    || fail "preloaded curl: $(cat "$TEST_TMP/curl.err")"
cmp -s "$dir/www/file.bin" "$TEST_TMP/curl.bin" || fail "preloaded curl's copy differs from the file"
client wget wget -q -T 30 -O "$TEST_TMP/wget.bin" http://10.92.0.1:8080/file.bin 2>"$TEST_TMP/wget.err" \
    || fail "preloaded wget: $(cat "$TEST_TMP/wget.err")"
cmp -s "$dir/www/file.bin" "$TEST_TMP/wget.bin" || fail "preloaded wget's copy differs from the file"
[ "$(grep -c '^10\.92\.0\.2 .*GET /file.bin.* 200 2000000' "$dir/logs/access.log")" -eq 2 ] \
    || fail "nginx did not log two 2 MB answers to 10.92.0.2 (the stack): $(cat "$dir/logs/access.log")"
for c in curl wget; do
    got=$(counter "$TEST_TMP/$c.counters" TcpLayer.BytesReceived)
    [ "$got" -ge 2000000 ] || fail "$c's stack received $got TCP bytes, want >= 2000000: $(cat "$TEST_TMP/$c.counters")"
done
echo "preloaded curl, wget -> kernel nginx: 2 MB each, byte-exact; their stacks received" \
     "$(counter "$TEST_TMP/curl.counters" TcpLayer.BytesReceived) and $(counter "$TEST_TMP/wget.counters" TcpLayer.BytesReceived) TCP bytes"

# ---- iperf3 -c -> iperf3 -s, both directions
for rev in "" -R; do
    client "iperf3$rev" iperf3 -c 10.92.0.1 -p 5201 -t 2 $rev -J >"$TEST_TMP/iperf3.json" 2>"$TEST_TMP/iperf3.err" \
        || fail "preloaded iperf3 -c $rev: $(head -c 400 "$TEST_TMP/iperf3.json") $(cat "$TEST_TMP/iperf3.err")"
    python3 - "$TEST_TMP/iperf3.json" "$rev" <<'PY' || fail "iperf3 $rev report: $(head -c 600 "$TEST_TMP/iperf3.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert "error" not in d, d.get("error")
c = d["start"]["connected"][0]
assert c["remote_host"] == "10.92.0.1" and c["local_host"] == "10.92.0.2", c
sent, rx = d["end"]["sum_sent"]["bytes"], d["end"]["sum_received"]["bytes"]
assert rx > 1_000_000 and sent >= rx, (sent, rx)
print("iperf3 %s: %.1f MB, %.0f Mbit/s" % ("kernel -> preloaded (-R)" if sys.argv[2] else "preloaded -> kernel", rx / 1e6,
      d["end"]["sum_received"]["bits_per_second"] / 1e6))
PY
done
sent=$(counter "$TEST_TMP/iperf3.counters" TcpLayer.BytesSent)
received=$(counter "$TEST_TMP/iperf3-R.counters" TcpLayer.BytesReceived)
[ "$sent" -gt 1000000 ] && [ "$received" -gt 1000000 ] \
    || fail "the preloaded iperf3 stacks did not carry the data (sent $sent, received $received)"
grep -q 'Accepted connection from 10.92.0.2' "$TEST_TMP/iperf3-server.log" || fail "the kernel iperf3 saw no client from 10.92.0.2"

# ---- redis-cli, redis-benchmark -> redis-server
value="gazelle-$RANDOM-$RANDOM-$(head -c 2000 /dev/urandom | base64 -w0)"
[ "$(client redis-cli redis-cli -h 10.92.0.1 -p 6379 set key "$value" 2>"$TEST_TMP/cli.err")" = OK ] \
    || fail "preloaded redis-cli SET: $(cat "$TEST_TMP/cli.err") $(tail -3 "$TEST_TMP/redis.log")"
[ "$(client redis-cli redis-cli -h 10.92.0.1 -p 6379 get key 2>>"$TEST_TMP/cli.err")" = "$value" ] || fail "preloaded GET did not return the value SET"
[ "$(ip netns exec "$NS_PEER" redis-cli -h 10.92.0.1 -p 6379 get key)" = "$value" ] || fail "the kernel's own redis-cli reads another value"
client redis-benchmark redis-benchmark -h 10.92.0.1 -p 6379 -c 20 -n 5000 -d 100 -t set,get --csv >"$TEST_TMP/bench.csv" 2>"$TEST_TMP/bench.err" \
    || fail "preloaded redis-benchmark: $(tail -3 "$TEST_TMP/bench.err")"
for t in SET GET; do
    grep -q "^\"$t\",\"[1-9]" "$TEST_TMP/bench.csv" || fail "redis-benchmark reported no $t rate: $(cat "$TEST_TMP/bench.csv")"
done
[ "$(ip netns exec "$NS_PEER" redis-cli -h 10.92.0.1 -p 6379 strlen key:__rand_int__)" = 100 ] \
    || fail "the benchmark's 100-byte value is not in the kernel's redis"
[ "$(counter "$TEST_TMP/redis-benchmark.counters" TcpLayer.Established)" -ge 20 ] \
    || fail "redis-benchmark's stack established $(counter "$TEST_TMP/redis-benchmark.counters" TcpLayer.Established) connections, want >= 20"
echo "preloaded redis-cli SET/GET exact (read back by the kernel's client), redis-benchmark 20 clients: $(cut -d, -f1-2 "$TEST_TMP/bench.csv" | tr '\n' ' ')"

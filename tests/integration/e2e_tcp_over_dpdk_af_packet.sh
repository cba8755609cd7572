#!/usr/bin/env bash
# End to end over TCP: unmodified curl and python3's http.server, preloaded, through our stack on
# DPDK net_af_packet, the files checked byte for byte:
#   1. preloaded curl  -> kernel http.server (peer namespace)
#   2. kernel curl     -> preloaded http.server (listening on INADDR_ANY: stack and kernel)
#   2b. a loopback curl -> the same preloaded server (its kernel side)
# The stack's veth end has no kernel address, so no kernel could have carried 1 (and 2's client
# reaches 10.97.0.2, which only the stack answers). Stack to stack: e2e_tcp_stack_to_stack.sh.
source "$(dirname "$0")/lib.sh"
need curl
need python3
mkdir -p "$TEST_TMP/www"
head -c 300000 /dev/urandom >"$TEST_TMP/www/blob.bin"
fetch() { # NS URL OUT [preload conf]
    local ns=$1 url=$2 out=$3 conf=${4:-}
    if [ -n "$conf" ]; then
        GAZELLE_CONF=$conf LD_PRELOAD=$PRELOAD timeout 60 ip netns exec "$ns" curl -sS --max-time 30 -o "$out" "$url"
    else
        timeout 60 ip netns exec "$ns" curl -sS --max-time 30 -o "$out" "$url"
    fi
}

netns_pair 10.97.0.1/24
stack_conf "$TEST_TMP/stack.conf" "$VETH_STACK" 10.97.0.2 "gz-tcp-$$"
in_ns "$NS_PEER" python3 -m http.server 8080 --bind 10.97.0.1 --directory "$TEST_TMP/www" >"$TEST_TMP/kernel-server.log" 2>&1 &
TEST_PIDS+=($!)
wait_port_in_ns "$NS_PEER" 10.97.0.1 8080
fetch "$NS_STACK" http://10.97.0.1:8080/blob.bin "$TEST_TMP/got1.bin" "$TEST_TMP/stack.conf" 2>"$TEST_TMP/c1.err" \
    || fail "preloaded curl failed: $(cat "$TEST_TMP/c1.err")"
cmp "$TEST_TMP/www/blob.bin" "$TEST_TMP/got1.bin" || fail "1: file differs"
echo "1. preloaded curl fetched $(stat -c %s "$TEST_TMP/got1.bin") bytes from a kernel server"

GAZELLE_COUNTERS=$TEST_TMP/server.counters GAZELLE_CONF=$TEST_TMP/stack.conf LD_PRELOAD=$PRELOAD ip netns exec "$NS_STACK" \
    python3 -m http.server 8081 --directory "$TEST_TMP/www" >"$TEST_TMP/stack-server.log" 2>&1 &
TEST_PIDS+=($!)
wait_listening "$TEST_TMP/server.counters" "the preloaded http.server"
fetch "$NS_PEER" http://10.97.0.2:8081/blob.bin "$TEST_TMP/got2.bin" 2>"$TEST_TMP/c2.err" \
    || fail "kernel curl to the preloaded server failed: $(cat "$TEST_TMP/c2.err") $(cat "$TEST_TMP/stack-server.log")"
cmp "$TEST_TMP/www/blob.bin" "$TEST_TMP/got2.bin" || fail "2: file differs"
echo "2. kernel curl fetched $(stat -c %s "$TEST_TMP/got2.bin") bytes from a preloaded server"
fetch "$NS_STACK" http://127.0.0.1:8081/blob.bin "$TEST_TMP/got2b.bin" 2>"$TEST_TMP/c2b.err" \
    || fail "loopback curl to the preloaded server failed: $(cat "$TEST_TMP/c2b.err")"
cmp "$TEST_TMP/www/blob.bin" "$TEST_TMP/got2b.bin" || fail "2b: file differs"
echo "2b. the same preloaded server also served a loopback (kernel) client"

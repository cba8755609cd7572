#!/usr/bin/env bash
# TCP between two preloaded processes, each with its own stack on DPDK net_af_packet, on the two ends
# of a veth pair where the kernel has no address on either side: curl fetches a file from python3's
# http.server, byte for byte.
source "$(dirname "$0")/lib.sh"
need curl
need python3
mkdir -p "$TEST_TMP/www"
head -c 300000 /dev/urandom >"$TEST_TMP/www/blob.bin"
netns_pair ""
stack_conf "$TEST_TMP/server.conf" "$VETH_PEER" 10.96.0.3 "gz-tcp-s-$$"
stack_conf "$TEST_TMP/client.conf" "$VETH_STACK" 10.96.0.2 "gz-tcp-c-$$"
GAZELLE_COUNTERS=$TEST_TMP/server.counters GAZELLE_CONF=$TEST_TMP/server.conf LD_PRELOAD=$PRELOAD ip netns exec "$NS_PEER" \
    python3 -m http.server 8082 --bind 10.96.0.3 --directory "$TEST_TMP/www" >"$TEST_TMP/server.log" 2>&1 &
TEST_PIDS+=($!)
wait_listening "$TEST_TMP/server.counters" "the preloaded http.server"
GAZELLE_CONF=$TEST_TMP/client.conf LD_PRELOAD=$PRELOAD timeout 60 ip netns exec "$NS_STACK" \
    curl -sS --max-time 30 -o "$TEST_TMP/got.bin" http://10.96.0.3:8082/blob.bin 2>"$TEST_TMP/client.err" \
    || fail "curl failed: $(cat "$TEST_TMP/client.err"); server: $(cat "$TEST_TMP/server.log")"
cmp "$TEST_TMP/www/blob.bin" "$TEST_TMP/got.bin" || fail "file differs"
grep -q "GET /blob.bin" "$TEST_TMP/server.log" || fail "the server did not log the request"
echo "preloaded curl fetched $(stat -c %s "$TEST_TMP/got.bin") bytes from a preloaded http.server, stack to stack"

#!/usr/bin/env bash
# End to end between two preloaded processes, each with its own stack on DPDK net_af_packet, on the
# two ends of a veth pair where the kernel has no address on either side: a preloaded socat UDP
# server answers a preloaded socat client. No kernel could have carried it.
source "$(dirname "$0")/lib.sh"
need socat
netns_pair ""
stack_conf "$TEST_TMP/server.conf" "$VETH_PEER" 10.98.0.3 "gz-e2e-s-$$"
stack_conf "$TEST_TMP/client.conf" "$VETH_STACK" 10.98.0.2 "gz-e2e-c-$$"
GAZELLE_CONF=$TEST_TMP/server.conf LD_PRELOAD=$PRELOAD ip netns exec "$NS_PEER" \
    socat UDP-RECVFROM:7200,bind=10.98.0.3 EXEC:'tr a-z A-Z' 2>"$TEST_TMP/server.err" &
TEST_PIDS+=($!)
sleep 1
got=$(echo "stack to stack" | GAZELLE_CONF=$TEST_TMP/client.conf LD_PRELOAD=$PRELOAD timeout 20 \
      ip netns exec "$NS_STACK" socat -t 3 - UDP:10.98.0.3:7200 2>"$TEST_TMP/client.err") || true
[ "$got" = "STACK TO STACK" ] || fail "got '$got' (server: $(cat "$TEST_TMP/server.err"); client: $(cat "$TEST_TMP/client.err"))"
echo "preloaded client <-> preloaded server: $got"

#!/usr/bin/env bash
# End to end: unmodified socat and nc, preloaded, exchange UDP with a Linux-kernel peer through our
# stack on DPDK net_af_packet. The stack's veth end lives in a namespace where the kernel has no
# address at all, so the kernel there cannot reach 10.99.0.1: the answers can only come through the
# stack (also checked: the same command without the preload fails).
source "$(dirname "$0")/lib.sh"
need socat
need nc
netns_pair 10.99.0.1/24
stack_conf "$TEST_TMP/lstack.conf" "$VETH_STACK" 10.99.0.2 "gz-e2e-$$"
in_ns "$NS_PEER" socat UDP-RECVFROM:7000,bind=10.99.0.1,fork EXEC:'tr a-z A-Z' &
TEST_PIDS+=($!)
sleep 0.3

# Without the stack the kernel in the stack's namespace has no route: the exchange must fail.
if out=$(echo nope | timeout 5 ip netns exec "$NS_STACK" socat -t 1 - UDP:10.99.0.1:7000 2>&1) && [ "$out" = NOPE ]; then
    fail "the kernel reached the peer by itself; the test would prove nothing"
fi

got=$(echo "hello over the stack" | GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD timeout 20 \
      ip netns exec "$NS_STACK" socat -t 2 - UDP:10.99.0.1:7000 2>"$TEST_TMP/socat.err") || true
[ "$got" = "HELLO OVER THE STACK" ] || fail "socat over the stack got '$got': $(cat "$TEST_TMP/socat.err")"
echo "socat: $got"

got=$(echo "nc too" | GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD timeout 20 \
      ip netns exec "$NS_STACK" nc -u -w 2 10.99.0.1 7000 2>"$TEST_TMP/nc.err") || true
[ "$got" = "NC TOO" ] || fail "nc -u over the stack got '$got': $(cat "$TEST_TMP/nc.err")"
echo "nc -u: $got"

# The other role: a preloaded UDP server on INADDR_ANY (served by both sides, one datagram each run:
# socat's "fork" option would answer from a forked child, which cannot reach the parent's stack)
# answers a kernel client on the peer over the stack, then a loopback client over the kernel.
serve_once() {
    GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD ip netns exec "$NS_STACK" \
        socat UDP-RECVFROM:7100,bind=0.0.0.0 EXEC:'rev' 2>>"$TEST_TMP/server.err" &
    TEST_PIDS+=($!)
    sleep 1
}
serve_once
got=$(echo "abc" | timeout 10 ip netns exec "$NS_PEER" socat -t 2 - UDP:10.99.0.2:7100 2>&1) || true
[ "$got" = "cba" ] || fail "the preloaded UDP server did not answer the kernel peer: '$got' $(cat "$TEST_TMP/server.err")"
echo "preloaded server, peer client: $got"
serve_once
got=$(echo "xyz" | timeout 10 ip netns exec "$NS_STACK" socat -t 2 - UDP:127.0.0.1:7100 2>&1) || true
[ "$got" = "zyx" ] || fail "the preloaded UDP server did not answer on loopback: '$got' $(cat "$TEST_TMP/server.err")"
echo "preloaded server, loopback client: $got"

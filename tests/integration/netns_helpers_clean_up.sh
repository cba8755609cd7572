#!/usr/bin/env bash
# The namespace helpers of lib.sh (used by the end-to-end tests): the pair is built as described (a
# kernel peer with an address, a stack side with none), a kernel server runs in it, and everything
# is gone afterwards, also when the test using them fails half-way.
source "$(dirname "$0")/lib.sh"
need ip
need socat
# 1. A test that fails after building its pair and starting a server inside it leaves nothing.
set +e
bash -c '
    source "'"$ROOT"'/tests/integration/lib.sh"
    netns_pair 10.199.0.1/24
    echo "$NS_STACK $NS_PEER" >"'"$TEST_TMP"'/names"
    in_ns "$NS_PEER" socat TCP-LISTEN:7001,bind=10.199.0.1,fork EXEC:cat &
    TEST_PIDS+=($!)
    sleep 0.3
    fail "deliberate failure half-way"
' >"$TEST_TMP/inner.log" 2>&1
inner=$?
set -e
[ $inner -ne 0 ] || fail "the inner test should have failed"
read -r s p <"$TEST_TMP/names"
ip netns list | grep -qw "$s" && fail "namespace $s left behind"
ip netns list | grep -qw "$p" && fail "namespace $p left behind"
pgrep -f "TCP-LISTEN:7001,bind=10.199.0.1" >/dev/null && fail "the server in the namespace outlived its test"
# 2. The pair as the end-to-end tests use it.
netns_pair 10.199.1.1/24
[ -z "$(ip -n "$NS_STACK" -4 addr show dev "$VETH_STACK" | grep inet)" ] || fail "the stack side has a kernel address"
ip -n "$NS_PEER" -4 addr show dev "$VETH_PEER" | grep -q "10.199.1.1/24" || fail "peer address missing"
in_ns "$NS_PEER" socat TCP-LISTEN:7002,bind=10.199.1.1,reuseaddr EXEC:cat &
TEST_PIDS+=($!)
wait_port_in_ns "$NS_PEER" 10.199.1.1 7002
echo "namespaces $NS_STACK/$NS_PEER built; a failing test left nothing behind"

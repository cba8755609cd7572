#!/usr/bin/env bash
# A signal during a blocking accept/recv/recvfrom/read on a stack socket does what Linux does (signal(7)):
# a handler installed with SA_RESTART restarts the call unless the socket has SO_RCVTIMEO, any other
# handler ends it with EINTR, an ignored signal does neither. The kernel is the oracle: signal_restart
# prints one line per case and the preloaded run must print the same, both while the call busy-polls
# the stack (GAZELLE_SPIN_US=-1) and once it sleeps between polls (GAZELLE_SPIN_US=100). The stack runs on
# DPDK net_null (10.77.9.2: no kernel interface has it, so a bind there succeeds only on the stack).
source "$(dirname "$0")/lib.sh"
prog=$ROOT/build/tests/signal_restart
[ -x "$prog" ] || fail "$prog missing: run make"
prefix=gz-sigrestart-$$
TEST_DPDK_PREFIXES+=("$prefix")
vdev_conf "$TEST_TMP/lstack.conf" "$prefix" net_null0 02:00:00:00:77:09 10.77.9.2
timeout 30 "$prog" 127.0.0.1 >"$TEST_TMP/kernel.out" 2>&1 || fail "kernel run failed: $(cat "$TEST_TMP/kernel.out")"
echo "kernel:"; cat "$TEST_TMP/kernel.out"
[ "$(wc -l <"$TEST_TMP/kernel.out")" -eq 11 ] || fail "the kernel run did not print its 11 lines"
for spin in -1 100; do
    GAZELLE_SPIN_US=$spin GAZELLE_STATS=$TEST_TMP/stats.$spin GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD \
        timeout 30 "$prog" 10.77.9.2 >"$TEST_TMP/preload.out" 2>"$TEST_TMP/err" \
        || fail "GAZELLE_SPIN_US=$spin: preloaded run failed or hung ($?): $(cat "$TEST_TMP/preload.out" "$TEST_TMP/err")"
    grep -q "cannot start the device\|sockets run on the kernel" "$TEST_TMP/err" && fail "the stack did not start: $(cat "$TEST_TMP/err")"
    grep -q "^tcp.capacity" "$TEST_TMP/stats.$spin" || fail "no stack statistics: the stack did not serve this process"
    diff -u "$TEST_TMP/kernel.out" "$TEST_TMP/preload.out" || fail "GAZELLE_SPIN_US=$spin: preloaded differs from the kernel"
    echo "GAZELLE_SPIN_US=$spin: identical to the kernel"
done

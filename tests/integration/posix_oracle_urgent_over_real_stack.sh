#!/usr/bin/env bash
# Urgent data (MSG_OOB, SIOCATMARK, SO_OOBINLINE, POLLPRI, FIONREAD at the mark) and SO_REUSEPORT
# groups: tests/integration/programs/posix_oracle_urgent.c run on the kernel (127.0.0.1) and preloaded
# over the REAL stack on DPDK net_null (host_addr 10.77.1.2, every connection the stack talking to
# itself through its local delivery; no kernel interface has the address). Outputs must be identical.
source "$(dirname "$0")/lib.sh"
oracle=$BUILD/tests/posix_oracle_urgent
stack=$BUILD/libgazelle-stack.so
[ -x "$oracle" ] && [ -f "$stack" ] || fail "missing $oracle or $stack (run make)"
prefix=gz-urg-$$
TEST_DPDK_PREFIXES+=("$prefix")
vdev_conf "$TEST_TMP/lstack.conf" "$prefix" net_null0 02:00:00:00:77:12 10.77.1.2
timeout 60 "$oracle" >"$TEST_TMP/kernel.txt" || fail "the oracle failed on the kernel"
GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD timeout 60 "$oracle" 10.77.1.2 \
    >"$TEST_TMP/stack.txt" 2>"$TEST_TMP/stack.err" || fail "the oracle failed over the real stack: $(tail -5 "$TEST_TMP/stack.err")"
grep -q "cannot start the device\|sockets run on the kernel" "$TEST_TMP/stack.err" && fail "the stack did not start: $(cat "$TEST_TMP/stack.err")"
grep -q "every listener got some *yes" "$TEST_TMP/kernel.txt" || fail "the kernel run did not spread the group: $(cat "$TEST_TMP/kernel.txt")"
diff -u "$TEST_TMP/kernel.txt" "$TEST_TMP/stack.txt" || fail "output over the real stack differs from the kernel's"
echo "identical to the kernel's output over $(wc -l <"$TEST_TMP/kernel.txt") lines"

#!/usr/bin/env bash
# The POSIX oracle preloaded over the REAL stack (build/libgazelle-stack.so) on DPDK net_null (a
# device that needs nothing and answers nothing), host_addr 10.77.0.2, its clients aimed at
# 10.77.0.2: every connection is the stack talking to itself, which works only through the stack's
# local delivery (a datagram to its own address never reaches ARP or the NIC). No kernel interface
# has that address, so the run can only succeed if the stack served it. Output must match the
# kernel's (127.0.0.1) line for line.
source "$(dirname "$0")/lib.sh"
oracle=$BUILD/tests/posix_oracle
stack=$BUILD/libgazelle-stack.so
[ -x "$oracle" ] && [ -f "$stack" ] || fail "missing $oracle or $stack (run make)"
prefix=gz-oracle-$$
TEST_DPDK_PREFIXES+=("$prefix")
vdev_conf "$TEST_TMP/lstack.conf" "$prefix" net_null0 02:00:00:00:77:02 10.77.0.2
timeout 120 "$oracle" >"$TEST_TMP/kernel.txt" || fail "the oracle failed on the kernel"
GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD timeout 120 "$oracle" 10.77.0.2 \
    >"$TEST_TMP/stack.txt" 2>"$TEST_TMP/stack.err" || fail "the oracle failed over the real stack: $(tail -5 "$TEST_TMP/stack.err")"
grep -q "cannot start the device\|sockets run on the kernel" "$TEST_TMP/stack.err" && fail "the stack did not start: $(cat "$TEST_TMP/stack.err")"
diff -u "$TEST_TMP/kernel.txt" "$TEST_TMP/stack.txt" || fail "output over the real stack differs from the kernel's"
echo "identical to the kernel's output over $(wc -l <"$TEST_TMP/kernel.txt") lines"

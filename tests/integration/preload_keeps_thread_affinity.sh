#!/usr/bin/env bash
# Starting the stack must not pin the program's thread. rte_eal_init binds its caller to the main
# lcore's CPU (CPU 0 by default); in the preloaded model the caller is the program's own thread, so
# every preloaded process ended up on CPU 0 and two of them polling each other shared one core
# (ping-pong RTT 8 ms, the scheduler tick). The program's CPU set before its first stack socket must
# equal the set afterwards, and the stack must really have started (its address answers a connect to
# itself through local delivery: no kernel interface has 10.77.0.3).
source "$(dirname "$0")/lib.sh"
[ "$(nproc)" -ge 2 ] || fail "needs at least 2 CPUs to tell pinned from unpinned"
prefix=gz-affinity-$$
TEST_DPDK_PREFIXES+=("$prefix")
vdev_conf "$TEST_TMP/lstack.conf" "$prefix" net_null0 02:00:00:00:77:03 10.77.0.3
cat >"$TEST_TMP/affinity.py" <<'PY'
import os, socket
before = sorted(os.sched_getaffinity(0))
srv = socket.socket(); srv.bind(("10.77.0.3", 5555)); srv.listen()
cli = socket.create_connection(("10.77.0.3", 5555), timeout=5)
conn, _ = srv.accept(); cli.sendall(b"ping"); assert conn.recv(4) == b"ping"
after = sorted(os.sched_getaffinity(0))
print("before", before, "after", after)
PY
out=$(GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD timeout 60 python3 "$TEST_TMP/affinity.py" 2>"$TEST_TMP/err") \
    || fail "the program failed: $(tail -5 "$TEST_TMP/err")"
grep -q "sockets run on the kernel" "$TEST_TMP/err" && fail "the stack did not start: $(cat "$TEST_TMP/err")"
echo "$out"
[ "$(echo "$out" | sed 's/.*before \(.*\) after.*/\1/')" = "$(echo "$out" | sed 's/.* after //')" ] \
    || fail "the thread's CPU set changed when the stack started: $out"

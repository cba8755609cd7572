#!/usr/bin/env bash
# The soak: 1,000 TCP connections opened, used (one request each, the answer checked by content) and
# closed between a preloaded client (4 threads, 8 connections open at a time each) and a preloaded server
# (accepting in one thread, serving in 3 worker threads with epoll, odd ones edge-triggered: sockets used
# from another thread than the one that made them), each process with its own stack, joined by DPDK
# net_memif (10.66.0.x: no kernel interface has it, so only the stacks can carry it; the programs also
# check the stacks' own counters). Afterwards both stacks are back to their baseline: connection table,
# 4-tuple index, packet pool and mbufs, the preload's fds and the fd numbers in /proc/self/fd
# (tests/integration/programs/stack_soak.c). TIME_WAIT: the client closes first, so its connections sit
# in TIME_WAIT for 2MSL; tcp_time_wait_ms = 2000 here makes that short, and the client checks that only
# TIME_WAIT entries remain right after the soak and that they all expire (see check in stack_soak.c).
# The same programs on the kernel's loopback first, as a reference for the programs themselves.
source "$(dirname "$0")/lib.sh"
prog=$BUILD/tests/stack_soak
[ -x "$prog" ] || fail "missing $prog (run make)"

# Reference: the kernel (no preload): the request/response and fd checks must pass there too.
# Waits until the server says it listens (a probe connection would count as one of its clients).
wait_listening() {
    for _ in $(seq 100); do grep -q listening "$1" 2>/dev/null && return; sleep 0.1; done
    fail "the server did not start: $(cat "$1")"
}
timeout 60 "$prog" server 127.0.0.1 47311 1000 3 >"$TEST_TMP/kserver.out" 2>&1 &
kpid=$!
TEST_PIDS+=($kpid)
wait_listening "$TEST_TMP/kserver.out"
timeout 60 "$prog" client 127.0.0.1 47311 1000 4 >"$TEST_TMP/kclient.out" 2>&1 || fail "the programs fail on the kernel: $(cat "$TEST_TMP/kclient.out")"
wait $kpid || fail "kernel server: $(cat "$TEST_TMP/kserver.out")"

memif_pair_confs
for role in server client; do echo "tcp_time_wait_ms = 2000" >>"$TEST_TMP/memif-$role.conf"; done
SOAK_DONE_FILE=$TEST_TMP/server-done SOAK_HOLD_FILE=$TEST_TMP/client-done \
    GAZELLE_CONF=$TEST_TMP/memif-server.conf LD_PRELOAD=$PRELOAD timeout 120 "$prog" server 10.66.0.1 8080 1000 3 \
    >"$TEST_TMP/server.out" 2>"$TEST_TMP/server.err" &
spid=$!
TEST_PIDS+=($spid)
wait_listening "$TEST_TMP/server.out"
# Each side stays until the other has checked its fds (SOAK_DONE_FILE, SOAK_HOLD_FILE): an exit takes
# the memif link, and so the peer's memif fds, away.
SOAK_DONE_FILE=$TEST_TMP/client-done SOAK_HOLD_FILE=$TEST_TMP/server-done \
    GAZELLE_CONF=$TEST_TMP/memif-client.conf LD_PRELOAD=$PRELOAD timeout 120 "$prog" client 10.66.0.1 8080 1000 4 \
    >"$TEST_TMP/client.out" 2>"$TEST_TMP/client.err" &
cpid=$!
TEST_PIDS+=($cpid)
wait $spid && src=0 || src=$?
wait $cpid && crc=0 || crc=$?
if [ $crc -ne 0 ] || [ $src -ne 0 ]; then
    echo "--- client stderr"; cat "$TEST_TMP/client.err"; echo "--- server stderr"; cat "$TEST_TMP/server.err"
fi
echo "--- client"; cat "$TEST_TMP/client.out"
echo "--- server"; cat "$TEST_TMP/server.out"
[ $crc -eq 0 ] && [ $src -eq 0 ] || fail "client exit $crc, server exit $src"
grep -q "^skip" "$TEST_TMP/client.out" "$TEST_TMP/server.out" && fail "a process ran without its stack"
[ "$(grep -c '^ok' "$TEST_TMP/client.out")" -eq 13 ] || fail "expected 13 client checks"
[ "$(grep -c '^ok' "$TEST_TMP/server.out")" -eq 12 ] || fail "expected 12 server checks"

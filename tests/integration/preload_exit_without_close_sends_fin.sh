#!/usr/bin/env bash
# A preloaded program that exits without close() (wget does) must not leave its stack connection open
# at the peer: the preload's exit handler closes it, so the peer reads EOF (a FIN), not nothing and not
# a reset. Client and server are preloaded processes with their own stacks joined by DPDK net_memif
# (10.66.0.x: no kernel interface has it). The client's GAZELLE_STATS file (docs/stats.md) shows what
# the exit did: one socket left open, flushed and acknowledged.
source "$(dirname "$0")/lib.sh"
prog=$BUILD/tests/stack_soak
[ -x "$prog" ] || fail "missing $prog (run make)"
memif_pair_confs
GAZELLE_CONF=$TEST_TMP/memif-server.conf LD_PRELOAD=$PRELOAD timeout 30 "$prog" eofserver 10.66.0.1 8081 \
    >"$TEST_TMP/server.out" 2>"$TEST_TMP/server.err" &
spid=$!
TEST_PIDS+=($spid)
for _ in $(seq 100); do grep -q listening "$TEST_TMP/server.out" 2>/dev/null && break; sleep 0.1; done
GAZELLE_STATS=$TEST_TMP/client.stats GAZELLE_CONF=$TEST_TMP/memif-client.conf LD_PRELOAD=$PRELOAD timeout 30 \
    "$prog" exitclient 10.66.0.1 8081 >"$TEST_TMP/client.out" 2>"$TEST_TMP/client.err" && crc=0 || crc=$?
wait $spid && src=0 || src=$?
cat "$TEST_TMP/client.out" "$TEST_TMP/server.out"
[ $crc -eq 0 ] || fail "client exit $crc: $(cat "$TEST_TMP/client.err")"
[ $src -eq 0 ] || fail "server exit $src: $(cat "$TEST_TMP/server.err")"
[ -f "$TEST_TMP/client.stats" ] || fail "the client's exit wrote no GAZELLE_STATS file"
echo "--- the client's exit stats"; grep "^exit\.\|^tcp.connections\|^tcp.state.finwait\|^tcp.state.timewait\|ActiveOpens" "$TEST_TMP/client.stats"
grep -qx "exit.left_open 1" "$TEST_TMP/client.stats" || fail "the exit handler did not see the one open socket"
grep -qx "exit.delivered 1" "$TEST_TMP/client.stats" || fail "the FIN was not delivered and acknowledged before the exit"
grep -qx "tcp.state.finwait1 0" "$TEST_TMP/client.stats" || fail "a FIN still unacknowledged after the exit flush"
grep -qx "counter.TcpLayer.ActiveOpens 1" "$TEST_TMP/client.stats" || fail "the connection did not go through the client's stack"

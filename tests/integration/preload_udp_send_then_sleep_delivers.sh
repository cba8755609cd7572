#!/usr/bin/env bash
# A preloaded program batches datagrams (GAZELLE_FLUSH_US, default 50 us): a sendto can leave its frame in
# the stack's transmit burst. A program that sends one datagram and then sleeps in nanosleep (a call the
# preload never sees) must still get it out: the flush thread sends it. Two preloaded python3 processes over
# net_memif: the receiver echoes a first datagram (so both sides know each other's MAC), the sender then sends
# "probe" and sleeps 120 s; the receiver must get "probe" while the sender still sleeps (not at its exit).
source "$(dirname "$0")/lib.sh"
need python3
! ip -4 addr show | grep -q ' 10\.66\.0\.' || fail "a kernel interface has 10.66.0.x: the test would prove nothing"
memif_pair_confs
cat >"$TEST_TMP/receiver.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.66.0.1", 7300))
print("bound", file=sys.stderr, flush=True)
data, peer = s.recvfrom(100)
s.sendto(data, peer)
s.settimeout(60)
data, _ = s.recvfrom(100)
print(data.decode(), flush=True)
PY
cat >"$TEST_TMP/sender.py" <<'PY'
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(30)
s.sendto(b"hello", ("10.66.0.1", 7300))
s.recvfrom(100)
s.sendto(b"probe", ("10.66.0.1", 7300))
time.sleep(120)
PY
GAZELLE_CONF=$TEST_TMP/memif-server.conf LD_PRELOAD=$PRELOAD timeout 100 python3 "$TEST_TMP/receiver.py" \
    >"$TEST_TMP/receiver.out" 2>"$TEST_TMP/receiver.err" &
receiver=$!
TEST_PIDS+=("$receiver")
deadline=$((SECONDS + 60))
until grep -qs bound "$TEST_TMP/receiver.err"; do
    alive "$receiver" || fail "the receiver ended: $(cat "$TEST_TMP/receiver.err")"
    [ $SECONDS -lt $deadline ] || fail "the receiver never bound: $(cat "$TEST_TMP/receiver.err")"
    sleep 0.1
done
GAZELLE_CONF=$TEST_TMP/memif-client.conf LD_PRELOAD=$PRELOAD python3 "$TEST_TMP/sender.py" 2>"$TEST_TMP/sender.err" &
sender=$!
TEST_PIDS+=("$sender")
wait "$receiver" || fail "the receiver ended with $? (no probe within 60 s?): $(cat "$TEST_TMP/receiver.err")"
got=$(cat "$TEST_TMP/receiver.out")
[ "$got" = probe ] || fail "the receiver got '$got'"
alive "$sender" || fail "the sender had already ended: the probe may have left only at its exit ($(cat "$TEST_TMP/sender.err"))"
echo "a datagram sent just before a 120 s nanosleep arrived while the sender slept"

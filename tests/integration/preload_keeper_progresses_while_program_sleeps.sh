#!/usr/bin/env bash
# A program that queues more than the peer's window (a blocking sendall returns once its bytes are queued)
# and then sleeps outside any socket call: with the kernel its data still flows (softirqs, timers). Over
# our stack the keeper thread polls the stack while the program is away (PosixLayer.KeepUp). Both ends
# preloaded over memif; the sender sleeps 6 s after sendall, the receiver must have every byte well before
# it wakes (with GAZELLE_KEEPER_MS=0, no keeper, it has only what the first windows carried until then).
source "$(dirname "$0")/lib.sh"
need python3
memif_pair_confs
bytes=4000000
cat >"$TEST_TMP/receiver.py" <<'PY'
import socket, sys, time
want = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.66.0.1", 7300))
s.listen(1)
c, _ = s.accept()
got, first = 0, None
while got < want:
    b = c.recv(65536)
    if not b:
        break
    if first is None:
        first = time.monotonic()
    got += len(b)
print(f"received {got} in {time.monotonic() - first:.3f} s", flush=True)
while c.recv(65536):
    pass
PY
cat >"$TEST_TMP/sender.py" <<'PY'
import socket, sys, time
c = socket.create_connection(("10.66.0.1", 7300))
c.sendall(b"k" * int(sys.argv[1]))
print("queued", flush=True)
time.sleep(6)
print("woke", flush=True)
c.close()
PY
env GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD" GAZELLE_COUNTERS="$TEST_TMP/server.counters" \
    python3 "$TEST_TMP/receiver.py" $bytes >"$TEST_TMP/receiver.log" 2>&1 &
receiver=$!
TEST_PIDS+=($receiver)
wait_listening "$TEST_TMP/server.counters" "the receiver"
env GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD" timeout 60 python3 "$TEST_TMP/sender.py" $bytes \
    >"$TEST_TMP/sender.log" 2>&1 || fail "sender: $(cat "$TEST_TMP/sender.log")"
for _ in $(seq 100); do alive $receiver || break; sleep 0.1; done
line=$(cat "$TEST_TMP/receiver.log")
read -r _ got _ secs _ <<<"$line"
[ "$got" = "$bytes" ] || fail "the receiver got '$line', want all $bytes bytes"
# Every byte before the sender woke (6 s): 4 MB over memif takes milliseconds; 4 s leaves room for a loaded machine.
awk -v s="$secs" 'BEGIN { exit !(s < 4) }' || fail "the last bytes came only when the sender woke: $line (the stack made no progress while the program slept)"
echo "preloaded sender asleep after sendall: its $bytes bytes arrived in $secs s (keeper)"

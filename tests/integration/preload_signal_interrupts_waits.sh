#!/usr/bin/env bash
# A signal handled while a preloaded program waits in epoll_wait, poll or select on a stack socket ends
# the wait with EINTR, as on Linux, also while the call busy-polls the stack (GAZELLE_SPIN_US=-1: it
# never enters a kernel wait). nginx (master_process off) only notices SIGTERM when epoll_wait returns:
# before, it kept running after SIGTERM. python3 runs a Python-level handler only once the call has
# returned EINTR, so a handler that raises proves the call ended. The stack runs on DPDK net_null
# (10.77.8.2: no kernel interface has it, so the UDP socket is the stack's).
source "$(dirname "$0")/lib.sh"
need python3
prefix=gz-sigwait-$$
TEST_DPDK_PREFIXES+=("$prefix")
vdev_conf "$TEST_TMP/lstack.conf" "$prefix" net_null0 02:00:00:00:77:08 10.77.8.2
cat >"$TEST_TMP/waits.py" <<'PY'
import select, signal, socket
class Interrupted(Exception): pass
def handler(signum, frame): raise Interrupted()
signal.signal(signal.SIGALRM, handler)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.8.2", 9000))
ep = select.epoll(); ep.register(s.fileno(), select.EPOLLIN)
pl = select.poll(); pl.register(s.fileno(), select.POLLIN)
waits = {"epoll_wait": lambda: ep.poll(-1), "poll": lambda: pl.poll(), "select": lambda: select.select([s], [], [])}
for name, wait in waits.items():
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        wait()
        print("FAIL %s returned without the signal" % name)
    except Interrupted:
        print("ok   %s ended by the signal" % name)
PY
for spin in -1 100; do
    out=$(GAZELLE_SPIN_US=$spin GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD timeout 20 python3 "$TEST_TMP/waits.py" 2>"$TEST_TMP/err") \
        || fail "GAZELLE_SPIN_US=$spin: python3 failed or hung ($?): $out $(cat "$TEST_TMP/err")"
    grep -q "cannot start the device\|sockets run on the kernel" "$TEST_TMP/err" && fail "the stack did not start: $(cat "$TEST_TMP/err")"
    echo "GAZELLE_SPIN_US=$spin:"; echo "$out"
    [ "$(grep -c '^ok' <<<"$out")" -eq 3 ] || fail "GAZELLE_SPIN_US=$spin: not every wait was ended by the signal"
done

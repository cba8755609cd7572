#!/usr/bin/env bash
# fork/exec of a preloaded program (tests/integration/programs/fork_probe.c; the contract is in
# ARCHITECTURE.md, "fork"): the child never enters .NET and gets kernel sockets for new ones; an exec'd
# image loads the stack afresh; the parent keeps working.
#   1. without a configuration (the stack library loads, serves nothing); a socket the parent never
#      placed is a kernel socket in the child (the preload makes the kernel socket of an unplaced one
#      before fork);
#   2. over the real stack on DPDK net_null at 10.78.0.2 (no kernel interface has it: the exchanges at
#      that address are the stack talking to itself): the parent's TCP over the stack works before and
#      after the fork, and the exec'd image starts its own stack and is served by it;
#   3. over the real stack, a child that inherits live stack connections gets clean errors on them
#      (ENOTCONN, POLLERR|POLLHUP without waiting, close works), leaves through exit() (the preload's
#      exit handler must leave the parent's stack alone there), and the parent's connection lives on.
source "$(dirname "$0")/lib.sh"
probe=$BUILD/tests/fork_probe
[ -x "$probe" ] || fail "missing $probe (run make)"
run() { # run NAME CHECKS ARGS...: fork_probe ARGS must pass with exactly CHECKS "ok" lines
    local name=$1 checks=$2 out
    shift 2
    out=$(LD_PRELOAD=$PRELOAD timeout 60 "$probe" "$@" 2>"$TEST_TMP/$name.err") || fail "$name: $out $(cat "$TEST_TMP/$name.err")"
    echo "--- $name"; echo "$out"
    [ "$(echo "$out" | grep -c '^ok')" -eq "$checks" ] || fail "$name: expected $checks checks"
}
GAZELLE_CONF= LSTACK_CONF_PATH= run no-config 10
prefix=gz-fork-$$
TEST_DPDK_PREFIXES+=("$prefix")
vdev_conf "$TEST_TMP/lstack.conf" "$prefix" net_null0 02:00:00:00:78:02 10.78.0.2
export GAZELLE_CONF=$TEST_TMP/lstack.conf
run real-stack 15 10.78.0.2
GAZELLE_STATS=$TEST_TMP/orphans.stats run orphans 9 orphans 10.78.0.2
[ -f "$TEST_TMP/orphans.stats" ] || fail "the parent's exit wrote no GAZELLE_STATS file"
grep -q "cannot start the device\|sockets run on the kernel" "$TEST_TMP/real-stack.err" "$TEST_TMP/orphans.err" \
    && fail "the stack did not start: $(cat "$TEST_TMP/real-stack.err" "$TEST_TMP/orphans.err")"
true

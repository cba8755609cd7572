#!/usr/bin/env bash
# fork/exec of a preloaded program: the child never enters .NET and gets kernel sockets; an exec'd
# image loads the stack afresh; the parent keeps working (tests/integration/programs/fork_probe.c).
source "$(dirname "$0")/lib.sh"
probe=$BUILD/tests/fork_probe
[ -x "$probe" ] || fail "missing $probe (run make)"
out=$(LD_PRELOAD=$PRELOAD timeout 60 "$probe" 2>"$TEST_TMP/err") || fail "fork_probe failed: $out $(cat "$TEST_TMP/err")"
echo "$out"
[ "$(echo "$out" | grep -c '^ok')" -eq 9 ] || fail "expected 9 checks"

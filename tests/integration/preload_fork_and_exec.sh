#!/usr/bin/env bash
# fork/exec of a preloaded program: the child never enters .NET and gets kernel sockets; an exec'd
# image loads the stack afresh; the parent keeps working (tests/integration/programs/fork_probe.c).
# Then, over the test-only stand-in stack library, a child that inherits a live stack connection gets
# clean errors on it (ENOTCONN, POLLERR|POLLHUP, close works) while the parent's connection lives on.
source "$(dirname "$0")/lib.sh"
probe=$BUILD/tests/fork_probe
[ -x "$probe" ] || fail "missing $probe (run make)"
out=$(LD_PRELOAD=$PRELOAD timeout 60 "$probe" 2>"$TEST_TMP/err") || fail "fork_probe failed: $out $(cat "$TEST_TMP/err")"
echo "$out"
[ "$(echo "$out" | grep -c '^ok')" -eq 9 ] || fail "expected 9 checks"
fake=$BUILD/libgazelle-stack-fake.so
out=$(GAZELLE_STACK_LIB=$fake GAZELLE_FAKE_STACK_ADDR=10.78.0.2 LD_PRELOAD=$PRELOAD timeout 60 "$probe" orphans 10.78.0.2 2>"$TEST_TMP/err2") \
    || fail "fork_probe orphans failed: $out $(cat "$TEST_TMP/err2")"
echo "$out"
[ "$(echo "$out" | grep -c '^ok')" -eq 8 ] || fail "expected 8 orphan checks"

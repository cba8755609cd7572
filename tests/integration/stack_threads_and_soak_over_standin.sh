#!/usr/bin/env bash
# 1,000 connections opened, used (echo checked byte for byte) and closed by four client threads while
# an epoll server thread of the same preloaded process accepts and echoes them all, over the
# test-only stand-in stack (10.80.0.2: no kernel interface has it, so only the stack can serve it);
# afterwards the process's open fds (stack sockets' reserved numbers included) are back to baseline.
# The same program on the kernel first, as a reference.
source "$(dirname "$0")/lib.sh"
prog=$BUILD/tests/stack_stress
fake=$BUILD/libgazelle-stack-fake.so
[ -x "$prog" ] && [ -f "$fake" ] || fail "missing $prog or $fake (run make)"
timeout 120 "$prog" 127.0.0.1 1000 4 || fail "failed on the kernel"
GAZELLE_STACK_LIB=$fake GAZELLE_FAKE_STACK_ADDR=10.80.0.2 LD_PRELOAD=$PRELOAD timeout 120 "$prog" 10.80.0.2 1000 4 \
    2>"$TEST_TMP/err" || fail "failed over the stand-in stack: $(cat "$TEST_TMP/err")"
grep -q "TEST BUILD: 10.80.0.2/24" "$TEST_TMP/err" || fail "the stand-in stack did not start"

#!/usr/bin/env bash
# The POSIX oracle preloaded over the test-only stack library (build/libgazelle-stack-fake.so: the
# real shim, entry points and POSIX layer over the NUnit tests' in-memory stand-in stack), its
# clients aimed at 10.77.0.2 - an address no kernel interface has, so the run can only succeed if
# the stack served them (the kernel answers "Network is unreachable"). Output must match the
# kernel's line for line, except the lines below, which test TCP itself (RST on SO_LINGER 0, option
# validation and values, TCP_INFO, MSS): the stand-in does not model TCP; the real stack must match
# them when it runs this oracle.
source "$(dirname "$0")/lib.sh"
oracle=$BUILD/tests/posix_oracle
fake=$BUILD/libgazelle-stack-fake.so
[ -x "$oracle" ] && [ -f "$fake" ] || fail "missing $oracle or $fake (run make)"
stand_in_differs='^(recv after RST |SO_RCVBUF |SO_SNDBUF |setsockopt short optlen|setsockopt unknown |getsockopt unknown TCP|  > 0 |  tcpi |epoll_wait after peer RST)'
timeout 120 "$oracle" >"$TEST_TMP/kernel.txt" || fail "the oracle failed on the kernel"
GAZELLE_STACK_LIB=$fake GAZELLE_FAKE_STACK_ADDR=10.77.0.2 LD_PRELOAD=$PRELOAD timeout 120 "$oracle" 10.77.0.2 \
    >"$TEST_TMP/stack.txt" 2>"$TEST_TMP/stack.err" || fail "the oracle failed over the stand-in stack: $(cat "$TEST_TMP/stack.err")"
grep -q "TEST BUILD: 10.77.0.2/24" "$TEST_TMP/stack.err" || fail "the stand-in stack did not start: $(cat "$TEST_TMP/stack.err")"
skipped=$(grep -cE "$stand_in_differs" "$TEST_TMP/kernel.txt")
[ "$skipped" -le 12 ] || fail "the exception list matches too much ($skipped lines)"
diff -u <(grep -vE "$stand_in_differs" "$TEST_TMP/kernel.txt") <(grep -vE "$stand_in_differs" "$TEST_TMP/stack.txt") \
    || fail "output over the stand-in stack differs from the kernel's"
echo "identical to the kernel's output over $(wc -l <"$TEST_TMP/kernel.txt") lines ($skipped TCP-model lines not compared)"

#!/usr/bin/env bash
# The POSIX oracle (tests/integration/programs/posix_oracle.c) run on the kernel and then preloaded:
# the outputs must be identical, line for line.
#
# Honest scope today: the preloaded run has no stack configuration, so every socket it opens still
# runs on the kernel (the stack library loads, says so on stderr, and marks nothing). This test
# therefore proves the preload layer is transparent (no call is broken by interposition, fork
# included), not yet that our stack matches Linux. It becomes that proof when the oracle runs with a
# GAZELLE_CONF whose host_addr it targets (posix_oracle ADDR), once the stack and a NIC are merged.
source "$(dirname "$0")/lib.sh"
oracle=$BUILD/tests/posix_oracle
[ -x "$oracle" ] || fail "missing $oracle (run make)"
timeout 120 "$oracle" >"$TEST_TMP/kernel.txt" || fail "the oracle failed on the kernel"
env -u GAZELLE_CONF -u LSTACK_CONF_PATH LD_PRELOAD=$PRELOAD timeout 120 "$oracle" \
    >"$TEST_TMP/preload.txt" 2>"$TEST_TMP/preload.err" || fail "the oracle failed preloaded: $(cat "$TEST_TMP/preload.err")"
grep -q "gazelle: no configuration" "$TEST_TMP/preload.err" || fail "the preloaded run did not load the stack library: $(cat "$TEST_TMP/preload.err")"
diff -u "$TEST_TMP/kernel.txt" "$TEST_TMP/preload.txt" || fail "preloaded output differs from the kernel's"
lines=$(wc -l <"$TEST_TMP/kernel.txt")
[ "$lines" -gt 150 ] || fail "the oracle printed only $lines lines"
echo "kernel and preloaded outputs identical ($lines lines)"

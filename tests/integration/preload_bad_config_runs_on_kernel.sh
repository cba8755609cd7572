#!/usr/bin/env bash
# A preloaded program whose configuration is unusable (a bad value, an unknown key, a missing file)
# names the problem (file, line, key) on stderr and runs on the kernel: a loopback TCP exchange works.
source "$(dirname "$0")/lib.sh"
probe=$BUILD/tests/fork_probe
cat >"$TEST_TMP/bad.conf" <<'CONF'
# a configuration with two mistakes
host_addr = "10.1.2.3"
mask_addr = "255.255.0.0"
no_such_key = 1
nic_rxqueue_size = 1000
CONF
out=$(GAZELLE_CONF=$TEST_TMP/bad.conf LD_PRELOAD=$PRELOAD timeout 30 "$probe" 2>"$TEST_TMP/err") || fail "the program failed: $out $(cat "$TEST_TMP/err")"
cat "$TEST_TMP/err"
grep -q "bad.conf:4: no_such_key" "$TEST_TMP/err" || fail "the unknown key was not named with its line"
grep -q "bad.conf:5: nic_rxqueue_size" "$TEST_TMP/err" || fail "the bad value was not named with its line"
grep -q "sockets run on the kernel" "$TEST_TMP/err" || fail "no word that the kernel serves"
echo "$out" | grep -q "^ok   parent: sockets work after the fork" || fail "kernel sockets did not work: $out"
out=$(LSTACK_CONF_PATH=$TEST_TMP/missing.conf LD_PRELOAD=$PRELOAD timeout 30 "$probe" 2>"$TEST_TMP/err2") || fail "the program failed without its file"
grep -q "missing.conf" "$TEST_TMP/err2" || fail "the missing file was not named: $(cat "$TEST_TMP/err2")"

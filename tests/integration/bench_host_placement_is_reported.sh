#!/usr/bin/env bash
# The benchmarks label every run with the host's placement of the VM's two CPUs (bench/e2e/host-lib.sh,
# docs/benchmark-variance.md). Checks the classification on fixed samples (no timing in the verdict) and
# that the probe builds, runs and prints a well-formed sample on this machine.
source "$(dirname "$0")/lib.sh"
source "$ROOT/bench/e2e/host-lib.sh"
host_log=$TEST_TMP/host.log
cat >"$host_log" <<'LOG'
100.000 rt 70 cpu0 1.970 cpu1 1.968 steal0 0 steal1 0
100.250 rt 68 cpu0 1.968 cpu1 2.800 steal0 10 steal1 0
100.500 rt 66 cpu0 1.967 cpu1 2.810 steal0 0 steal1 0
101.000 rt 470 cpu0 1.969 cpu1 1.968 steal0 0 steal1 0
101.250 rt 468 cpu0 2.900 cpu1 1.969 steal0 0 steal1 20
102.000 rt 69 cpu0 1.968 cpu1 1.968 steal0 0 steal1 0
102.250 rt 471 cpu0 1.968 cpu1 1.968 steal0 0 steal1 0
LOG
expect() { # FROM TO WANTED
    local got
    got=$(host_state "$1" "$2")
    [ "$got" = "$3" ] || fail "host_state $1 $2: '$got', expected '$3'"
}
expect 100.000 100.500 "near (rt 68 ns, cpu 2.80 ns, steal 10 ms)"
expect 101.000 101.250 "far (rt 468 ns, cpu 1.97 ns, steal 20 ms)"
expect 102.000 102.250 "near 50% (rt 69 ns, cpu 1.97 ns, steal 0 ms)"
expect 100.250 101.000 "near 66% (rt 68 ns, cpu 2.80 ns, steal 10 ms)"
expect 200.000 300.000 "unknown"
tally=$(for r in "100.000 100.500" "101.000 101.250" "102.000 102.250" "100.250 101.000" "200.000 300.000"; do
    echo "- run: $(host_state $r)"; done | host_tally)
[ "$tally" = "1 near, 1 far, 2 mixed, 1 unknown; a CPU slowed in 2" ] || fail "host_tally: '$tally'"

need cc
[ "$(nproc)" -ge 2 ] || { echo "one CPU: the probe has no pair to measure; classification checked only"; exit 0; }
host_sampler_start "$TEST_TMP"
[ -n "$host_sampler_pid" ] || fail "the probe did not build"
for _ in $(seq 300); do [ "$(wc -l <"$host_log")" -ge 2 ] && break; sleep 0.1; done
host_sampler_stop
head -n 1 "$host_log" | grep -qE '^[0-9]+\.[0-9]{3} rt [0-9]+ cpu0 [0-9.]+ cpu1 [0-9.]+ steal0 [0-9]+ steal1 [0-9]+$' \
    || fail "malformed sample: $(head -n 1 "$host_log")"
echo "placement classified; probe sample: $(head -n 1 "$host_log")"

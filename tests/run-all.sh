#!/usr/bin/env bash
# Runs every test (NUnit in Release, the configuration that ships; then each integration script) and prints, last, one line:
#   N passed, N failed[, N skipped]
# totalled over everything it ran. Exits non-zero if anything failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RESULTS=$ROOT/build/test-results
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
passed=0 failed=0 skipped=0

DOTNET=$ROOT/scripts/dotnet-tmp.sh # no leftover directories in /tmp (see there)

echo "== build (every project of Gazelle.slnx, warnings are errors)"
if "$DOTNET" build Gazelle.slnx -c Release --nologo -v quiet >"$RESULTS/build.log" 2>&1; then
    passed=$((passed + 1)); echo "  pass  solution builds (src, aot, tests, bench)"
else
    failed=$((failed + 1)); echo "  FAIL  solution build - log:"; grep -E "error|warning" "$RESULTS/build.log" | sort -u | head -n 30
fi

echo "== NUnit (tests/Gazelle.Tests)"
# A test that runs longer than NUNIT_TEST_TIMEOUT is ended with the test host (blame names it below).
"$DOTNET" test tests/Gazelle.Tests -c Release --no-build --nologo -v quiet --logger "trx;LogFileName=nunit.trx" \
    --logger "console;verbosity=normal" --results-directory "$RESULTS" \
    --blame-hang-timeout "${NUNIT_TEST_TIMEOUT:-5min}" --blame-hang-dump-type none >"$RESULTS/nunit.log" 2>&1
nunit_rc=$?
# Show failures with their messages; the full log stays in build/test-results/nunit.log.
grep -E -A 12 '^\s+Failed [A-Za-z]' "$RESULTS/nunit.log" | head -n 200 || true
trx=$RESULTS/nunit.trx
if [ -f "$trx" ]; then
    counters=$(grep -o '<Counters [^>]*>' "$trx")
    attr() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
    nunit_failed=$(($(attr failed) + $(attr error) + $(attr timeout) + $(attr aborted)))
    passed=$((passed + $(attr passed)))
    failed=$((failed + nunit_failed))
    skipped=$((skipped + $(attr notExecuted)))
    echo "  NUnit: $(attr passed) passed, $(attr failed) failed, $(attr notExecuted) not executed (of $(attr total))"
else
    echo "FAIL: NUnit produced no results (build error?) - see $RESULTS/nunit.log"
    failed=$((failed + 1)); nunit_failed=1
fi
# A test host that crashed (a segfault in a native thread, say) or was ended as hung leaves counters
# of the tests reported so far and no failure: count it as one, with what vstest said about it.
if [ "$nunit_rc" -ne 0 ] && [ "$nunit_failed" -eq 0 ]; then
    failed=$((failed + 1))
    echo "  FAIL  NUnit run aborted (dotnet test exited $nunit_rc) - the test host crashed or hung:"
    grep -E -A 1 'aborted|Aborted|running when the crash|inactivity time|Process terminated' "$RESULTS/nunit.log" \
        | grep -v '^--$' | awk '!seen[$0]++' | head -n 20 | sed 's/^/        /'
fi

echo "== integration (tests/integration)"
for t in tests/integration/*.sh; do
    [ "$(basename "$t")" = lib.sh ] && continue
    name=$(basename "$t" .sh)
    start=$SECONDS
    timeout -k 10 300 "$t" >"$RESULTS/$name.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); echo "  pass  $name ($((SECONDS - start))s)"
    else
        why="exit $rc"; [ $rc -eq 124 ] || [ $rc -eq 137 ] && why="timed out after 300 s: killed"
        failed=$((failed + 1)); echo "  FAIL  $name ($((SECONDS - start))s, $why) - log:"; sed 's/^/        /' "$RESULTS/$name.log" | tail -n 30
    fi
done

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]

# Shared helpers for integration tests. Each test script is one test: exit 0 = pass, other = fail.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build
PRELOAD=$BUILD/libgazelle.so
TEST_TMP=$(mktemp -d /tmp/gz-test.XXXXXX)
TEST_PIDS=()

cleanup_test() {
    local pid
    for pid in "${TEST_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$TEST_TMP"
}
trap cleanup_test EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 is not installed (run: make deps)"; }

# Waits until a TCP port accepts on 127.0.0.1 (kernel), at most $2 seconds.
wait_port() {
    local port=$1 deadline=$((SECONDS + ${2:-10}))
    until (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "nothing listens on port $port"
        sleep 0.1
    done
}

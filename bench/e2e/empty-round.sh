#!/usr/bin/env bash
# The cost of one waiting round that finds nothing, in the real (NativeAOT, preloaded) path: a preloaded
# sockperf server at one end of a net_memif pair keeps the link up, and bench/e2e/programs/empty_round.c,
# preloaded at the other end, times recv(MSG_DONTWAIT) on an empty UDP socket of its stack (shim, layer,
# lock, stack poll with an empty RX burst, timers). A timing, not a test.
#   bench/e2e/empty-round.sh [calls] [runs] [spin-ms]      (default 20000 200 5)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PRELOAD=${PRELOAD:-$ROOT/build/libgazelle.so} # PRELOAD=other/build/libgazelle.so compares another build
[ -f "$PRELOAD" ] || { echo "$PRELOAD missing: run make" >&2; exit 1; }
tmp=$(mktemp -d /tmp/gz-empty.XXXXXX)
srv=""
cleanup() {
    [ -n "$srv" ] && { kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
    rm -rf "$tmp" /var/run/dpdk/gz-empty-"$$"-*
}
trap cleanup EXIT
source "$ROOT/scripts/lstack-conf.sh"
cc -O2 -Wall -Wextra -Werror -o "$tmp/empty_round" "$ROOT/bench/e2e/programs/empty_round.c" -ldl
memif_pair_conf "$tmp" "empty-$$" "$tmp/memif.sock" 10.66.0 9000
env GAZELLE_CONF="$tmp/memif-server.conf" LD_PRELOAD="$PRELOAD" sockperf server -i 10.66.0.1 -p 11111 >"$tmp/server.log" 2>&1 &
srv=$!
sleep 2
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
env GAZELLE_CONF="$tmp/memif-client.conf" GAZELLE_SPIN_US=-1 LD_PRELOAD="$PRELOAD" timeout 300 ${WRAP:-} "$tmp/empty_round" 10.66.0.2 22222 "$@"

# Sourceable by the *-cost.sh scripts (bulk-cost.sh, udptp-cost.sh): what both ends of a measured pair share.

# cost_end_commands NAME: the two ends' command prefixes. pin0/pin1 put the server on CPU 0 and the client on
# CPU 1 with PIN=1; srec/crec run each end under `perf stat` of $EVENTS into $tmp/server.stat and
# $tmp/client.stat, and PROFILE=server|client wraps that end in `perf record -g` too (into PROFILE_OUT, else
# /tmp/gz-NAME.perf.data).
cost_end_commands() {
    pin0=() pin1=()
    [ -n "${PIN:-}" ] && pin0=(taskset -c 0) pin1=(taskset -c 1)
    srec=(perf stat -x, -e "$EVENTS" -o "$tmp/server.stat")
    crec=(perf stat -x, -e "$EVENTS" -o "$tmp/client.stat")
    local out=${PROFILE_OUT:-/tmp/gz-$1.perf.data}
    [ "${PROFILE:-}" = server ] && srec=(perf record -g -o "$out" "${srec[@]}")
    [ "${PROFILE:-}" = client ] && crec=(perf record -g -o "$out" "${crec[@]}")
    return 0
}

# stat FILE NAME: a counter from a GAZELLE_STATS file (docs/stats.md), 0 when absent.
stat() { awk -v k="$2" '$1 == "counter." k { print $2; f = 1 } END { if (!f) print 0 }' "$1"; }

#!/usr/bin/env bash
# Unmodified sockperf server and sockperf ping-pong (64 B messages, 2 s), TCP then UDP, each process
# preloaded with its own stack, joined by DPDK net_memif: no kernel interface has 10.66.0.x, so every
# reply came through our stacks. The summary must hold observations; over TCP no message may be dropped.
source "$(dirname "$0")/lib.sh"
need sockperf
memif_pair_confs
server_env=(GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD")
client_env=(GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD")
pingpong() { # $1 = TCP|UDP, $2 = port
    local proto=$1 port=$2 flag=() log=$TEST_TMP/pingpong-$1.log
    [ "$proto" = TCP ] && flag=(--tcp)
    env "${server_env[@]}" sockperf server -i 10.66.0.1 -p "$port" "${flag[@]}" >"$TEST_TMP/server-$proto.log" 2>&1 &
    local server=$!
    TEST_PIDS+=("$server")
    sleep 2
    env "${client_env[@]}" timeout 30 sockperf ping-pong -i 10.66.0.1 -p "$port" "${flag[@]}" -m 64 -t 2 >"$log" 2>&1 \
        || fail "$proto ping-pong failed: $(tail -5 "$log") / server: $(tail -3 "$TEST_TMP/server-$proto.log")"
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    local observations
    observations=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/Total [0-9]+ observations/ {print $3}')
    [ "${observations:-0}" -gt 0 ] || fail "$proto ping-pong reported no observations: $(tail -15 "$log")"
    grep -q 'IP = 10.66.0.1 ' "$log" || fail "$proto ping-pong did not target 10.66.0.1"
    if [ "$proto" = TCP ]; then
        grep -q '# dropped messages = 0;' "$log" || fail "TCP ping-pong dropped messages: $(grep 'dropped' "$log")"
    fi
    echo "sockperf $proto ping-pong over memif: $observations observations, $(grep -o 'percentile 50.000 = *[0-9.]*' "$log" | tr -s ' ') us half RTT"
}
pingpong TCP 11111
pingpong UDP 11112

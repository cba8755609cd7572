#!/usr/bin/env bash
# Unmodified sockperf server and sockperf ping-pong (64 B messages, 2 s), TCP then UDP, each process
# preloaded with its own stack, joined by DPDK net_memif: no kernel interface has 10.66.0.x, so every
# reply came through our stacks. The summary must hold observations; over TCP no message may be dropped;
# the server, stopped with SIGINT, must report at least as many messages handled as the client observed.
source "$(dirname "$0")/lib.sh"
need sockperf
memif_pair_confs
server_env=(GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD")
client_env=(GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD")
pingpong() { # $1 = TCP|UDP, $2 = port
    local proto=$1 port=$2 flag=() log=$TEST_TMP/pingpong-$1.log
    [ "$proto" = TCP ] && flag=(--tcp)
    # sockperf logs on stdout: sh sends it to serve's log (stderr); exec keeps the server's pid.
    serve "$TEST_TMP/server-$proto.log" "block on socket" env "${server_env[@]}" sh -c 'exec "$@" 1>&2' sh \
        sockperf server -i 10.66.0.1 -p "$port" "${flag[@]}"
    local server=$SERVER
    env "${client_env[@]}" timeout 30 sockperf ping-pong -i 10.66.0.1 -p "$port" "${flag[@]}" -m 64 -t 2 >"$log" 2>&1 \
        || fail "$proto ping-pong failed: $(tail -5 "$log") / server: $(tail -3 "$TEST_TMP/server-$proto.log")"
    interrupt_pid "$server"
    local observations handled
    observations=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/Total [0-9]+ observations/ {print $3}')
    handled=$(sed 's/\x1b\[[0-9;]*m//g' "$TEST_TMP/server-$proto.log" | awk '/Total [0-9]+ messages received/ {print $3}')
    [ "${observations:-0}" -gt 0 ] || fail "$proto ping-pong reported no observations: $(tail -15 "$log")"
    [ "${handled:-0}" -ge "$observations" ] || fail "$proto: the server handled ${handled:-no} messages for $observations observations: $(tail -5 "$TEST_TMP/server-$proto.log")"
    grep -q 'IP = 10.66.0.1 ' "$log" || fail "$proto ping-pong did not target 10.66.0.1"
    if [ "$proto" = TCP ]; then
        grep -q '# dropped messages = 0;' "$log" || fail "TCP ping-pong dropped messages: $(grep 'dropped' "$log")"
    fi
    echo "sockperf $proto ping-pong over memif: $observations observations ($handled handled by the server), $(grep -o 'percentile 50.000 = *[0-9.]*' "$log" | tr -s ' ') us half RTT"
}
pingpong TCP 11111
pingpong UDP 11112

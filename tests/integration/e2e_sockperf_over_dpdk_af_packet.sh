#!/usr/bin/env bash
# Unmodified sockperf, preloaded, against sockperf on a Linux-kernel peer, through our stack on DPDK
# net_af_packet, TCP and UDP, both roles (ping-pong, 64 B messages, 1 s each):
#   preloaded server <- kernel ping-pong client, and kernel server <- preloaded ping-pong client.
# The stack's veth end has no kernel address, so every reply crossed the stack. The client must report
# observations (each one a reply to its own numbered message), TCP with none dropped, duplicated or out
# of order; the server, stopped with SIGINT, must report at least as many messages handled.
source "$(dirname "$0")/lib.sh"
need sockperf
netns_pair 10.94.0.1/24
stack_conf "$TEST_TMP/stack.conf" "$VETH_STACK" 10.94.0.2 "gz-sp-$$"
ip -n "$NS_STACK" -4 addr show | grep -q 'inet 10\.94' && fail "the stack's namespace has a kernel address on 10.94.0.x"
on_stack=(env GAZELLE_CONF="$TEST_TMP/stack.conf" LD_PRELOAD="$PRELOAD" ip netns exec "$NS_STACK")
on_kernel=(ip netns exec "$NS_PEER")
strip() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }

# pingpong PROTO SERVER_SIDE CLIENT_SIDE ADDR PORT
pingpong() {
    local proto=$1 addr=$4 port=$5 flag=() name="sockperf $1, $2 server <- $3 ping-pong client" t=$TEST_TMP/$1-$2
    local -n on_s=on_$2 on_c=on_$3
    [ "$proto" = TCP ] && flag=(--tcp)
    # sockperf logs on stdout: sh sends it to serve's log (stderr); exec keeps the server's pid.
    serve "$t-server.log" "block on socket" "${on_s[@]}" sh -c 'exec "$@" 1>&2' sh sockperf server -i "$addr" -p "$port" "${flag[@]}"
    "${on_c[@]}" timeout 30 sockperf ping-pong -i "$addr" -p "$port" "${flag[@]}" -m 64 -t 1 >"$t-client.log" 2>&1 \
        || fail "$name: the client failed: $(tail -5 "$t-client.log") / server: $(tail -3 "$t-server.log")"
    interrupt_pid "$SERVER"
    local observations handled
    observations=$(strip "$t-client.log" | awk '/Total [0-9]+ observations/ {print $3}')
    handled=$(strip "$t-server.log" | awk '/Total [0-9]+ messages received/ {print $3}')
    [ "${observations:-0}" -gt 0 ] || fail "$name: no observations: $(strip "$t-client.log" | tail -15)"
    grep -q "IP = $addr " "$t-client.log" || fail "$name: the client did not target $addr"
    [ "${handled:-0}" -ge "$observations" ] || fail "$name: the server handled ${handled:-no} messages for $observations observations: $(strip "$t-server.log" | tail -5)"
    if [ "$proto" = TCP ]; then
        strip "$t-client.log" | grep -q '# dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0' \
            || fail "$name: messages lost or reordered: $(grep 'dropped' "$t-client.log")"
    fi
    echo "$name: $observations observations, $handled messages handled by the server"
}
pingpong TCP stack kernel 10.94.0.2 11111
pingpong TCP kernel stack 10.94.0.1 11112
pingpong UDP stack kernel 10.94.0.2 11113
pingpong UDP kernel stack 10.94.0.1 11114

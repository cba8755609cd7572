#!/usr/bin/env bash
# Unmodified nc (OpenBSD) and socat, TCP and UDP, both roles, preloaded, against the same programs on a
# Linux-kernel peer, through our stack on DPDK net_af_packet. The stack's veth end has no kernel address
# (its namespace's kernel cannot reach 10.95.0.1 at all: checked), so everything the kernel peer
# exchanged with 10.95.0.2 went through the stack. Every exchange carries data both ways, checked byte
# for byte on both ends:
#   nc TCP    preloaded listener <-> kernel client, then kernel listener <-> preloaded client
#             (200000 B up, then 150000 B down, the sender half-closing with -N)
#   nc UDP    preloaded listener <-> kernel client, then kernel listener <-> preloaded client
#   socat TCP preloaded echo server (EXEC:cat) <-> kernel client, then kernel echo server <-> preloaded client
# socat UDP in both roles against the kernel: e2e_udp_over_dpdk_af_packet.sh.
source "$(dirname "$0")/lib.sh"
need nc
need socat
netns_pair 10.95.0.1/24
stack_conf "$TEST_TMP/stack.conf" "$VETH_STACK" 10.95.0.2 "gz-ncs-$$"
ip -n "$NS_STACK" -4 addr show | grep -q 'inet 10\.95' && fail "the stack's namespace has a kernel address on 10.95.0.x"
if timeout 5 ip netns exec "$NS_STACK" nc -z -w 1 10.95.0.1 22 2>/dev/null; then fail "the stack's kernel reached the peer"; fi
# Command prefixes for each side (arrays, not functions: a backgrounded function runs in a subshell
# whose pid is not the server's, and killing it would leave the server running).
on_stack=(env GAZELLE_CONF="$TEST_TMP/stack.conf" LD_PRELOAD="$PRELOAD" ip netns exec "$NS_STACK")
on_kernel=(ip netns exec "$NS_PEER")
head -c 200000 /dev/urandom >"$TEST_TMP/a.bin"
head -c 150000 /dev/urandom >"$TEST_TMP/b.bin"
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# nc_tcp LISTENER_SIDE CLIENT_SIDE ADDR: two connections, one per direction (nc -l ends as soon as its
# client's stream ends, even with input left, so the two directions cannot share one connection):
# the client uploads a.bin and half-closes (-N); then the listener sends b.bin and half-closes.
nc_tcp() {
    local name="nc TCP, $1 listener <- $2 client" l=$1 c=$2 addr=$3 t=$TEST_TMP/nc-tcp-$1
    local -n on_l=on_$1 on_c=on_$2
    PORT=$((PORT + 1))
    serve "$t-up-l.err" "Listening on" "${on_l[@]}" timeout 30 nc -v -n -N -l "$addr" "$PORT" </dev/null >"$t-up-l.got"
    "${on_c[@]}" timeout 30 nc -N "$addr" "$PORT" <"$TEST_TMP/a.bin" >/dev/null 2>"$t-up-c.err" \
        || fail "$name: the uploading client failed: $(cat "$t-up-c.err")"
    wait "$SERVER" || fail "$name: the listener ended with $?: $(cat "$t-up-l.err")"
    cmp -s "$TEST_TMP/a.bin" "$t-up-l.got" || fail "$name: the listener got $(stat -c %s "$t-up-l.got") B, not the client's 200000 B"
    PORT=$((PORT + 1))
    serve "$t-down-l.err" "Listening on" "${on_l[@]}" timeout 30 nc -v -n -N -l "$addr" "$PORT" <"$TEST_TMP/b.bin" >/dev/null
    "${on_c[@]}" timeout 30 nc "$addr" "$PORT" </dev/null >"$t-down-c.got" 2>"$t-down-c.err" \
        || fail "$name: the downloading client failed: $(cat "$t-down-c.err")"
    wait "$SERVER" || fail "$name: the listener ended with $?: $(cat "$t-down-l.err")"
    cmp -s "$TEST_TMP/b.bin" "$t-down-c.got" || fail "$name: the client got $(stat -c %s "$t-down-c.got") B, not the listener's 150000 B"
    echo "$name: 200000 B up, 150000 B down, byte-exact"
}

# nc_udp LISTENER_SIDE CLIENT_SIDE ADDR: a request datagram up, the listener's answer down.
nc_udp() {
    local name="nc UDP, $1 listener <- $2 client" l=$1 c=$2 addr=$3 t=$TEST_TMP/nc-udp-$1 got
    local -n on_l=on_$1 on_c=on_$2
    PORT=$((PORT + 1))
    echo "answer from the $l listener" >"$t-answer"
    serve "$t-l.err" "Bound on" "${on_l[@]}" nc -v -n -u -l "$addr" "$PORT" <"$t-answer" >"$t-l.got"
    got=$(echo "request from the $c client" | "${on_c[@]}" timeout 20 nc -u -w 2 "$addr" "$PORT" 2>"$t-c.err") || true
    stop "$SERVER"
    [ "$got" = "answer from the $l listener" ] || fail "$name: the client got '$got': $(cat "$t-c.err" "$t-l.err")"
    [ "$(cat "$t-l.got")" = "request from the $c client" ] || fail "$name: the listener got '$(cat "$t-l.got")'"
    echo "$name: request and answer exact"
}

# socat_tcp SERVER_SIDE CLIENT_SIDE ADDR: an echo server (one connection, no fork: a forked child cannot
# reach the parent's stack) sends back the client's 200000 B.
socat_tcp() {
    local name="socat TCP, $1 echo server <- $2 client" l=$1 c=$2 addr=$3 t=$TEST_TMP/socat-tcp-$1
    local -n on_l=on_$1 on_c=on_$2
    PORT=$((PORT + 1))
    serve "$t-l.err" "listening on" "${on_l[@]}" timeout 30 socat -d -d TCP-LISTEN:$PORT,bind=$addr,reuseaddr EXEC:cat
    "${on_c[@]}" timeout 30 socat -t 5 - TCP:$addr:$PORT <"$TEST_TMP/a.bin" >"$t-c.got" 2>"$t-c.err" \
        || fail "$name: the client failed: $(cat "$t-c.err")"
    wait "$SERVER" || fail "$name: the server ended with $?: $(cat "$t-l.err")"
    cmp -s "$TEST_TMP/a.bin" "$t-c.got" || fail "$name: the echo of $(stat -c %s "$t-c.got") B differs from the 200000 B sent"
    echo "$name: 200000 B echoed byte-exact"
}

PORT=7300
nc_tcp stack kernel 10.95.0.2
nc_tcp kernel stack 10.95.0.1
nc_udp stack kernel 10.95.0.2
nc_udp kernel stack 10.95.0.1
socat_tcp stack kernel 10.95.0.2
socat_tcp kernel stack 10.95.0.1

#!/usr/bin/env bash
# Unmodified nc (OpenBSD) and socat, TCP and UDP, each end preloaded with its own stack, joined by DPDK
# net_memif (no kernel interface has 10.66.0.x, so every byte came through our stacks). Every exchange
# carries data both ways and is checked byte for byte on both ends:
#   nc TCP     listener <-> client: 200000 B up, then 150000 B down, the sender half-closing (-N)
#   nc UDP     listener <-> client: a request datagram up, the listener's answer down
#   socat TCP  TCP-LISTEN + EXEC:cat <-> client: 200000 B echoed back
#   socat UDP  UDP-LISTEN + EXEC:sed <-> client: three lines, each answered with a prefix
# A sender that exits right after its last write (the nc client after its upload, the socat echo server
# after its echo) leaves its last bytes in its stack: the exit flush must deliver them (socat's echo
# came back with 101360 of 200000 B before it).
source "$(dirname "$0")/lib.sh"
need nc
need socat
! ip -4 addr show | grep -q ' 10\.66\.0\.' || fail "a kernel interface has 10.66.0.x: the test would prove nothing"
memif_pair_confs
server_env=(GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD")
client_env=(GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD")
head -c 200000 /dev/urandom >"$TEST_TMP/up.bin"
head -c 150000 /dev/urandom >"$TEST_TMP/down.bin"
# A server ends by itself (TCP) or is stopped (UDP); either way its output is complete afterwards.
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# 1. nc TCP, one connection per direction (nc -l ends as soon as its client's stream ends, even with
# input left): the client uploads and half-closes (-N), then the listener sends and half-closes.
serve "$TEST_TMP/nc-up.err" "Listening on" env "${server_env[@]}" timeout 30 nc -v -n -N -l 10.66.0.1 7001 </dev/null >"$TEST_TMP/nc-server.got"
env "${client_env[@]}" timeout 30 nc -N 10.66.0.1 7001 <"$TEST_TMP/up.bin" >/dev/null 2>"$TEST_TMP/nc-client.err" \
    || fail "nc TCP uploading client: $(cat "$TEST_TMP/nc-client.err")"
wait "$SERVER" || fail "nc TCP listener ended with $?: $(cat "$TEST_TMP/nc-up.err")"
cmp -s "$TEST_TMP/up.bin" "$TEST_TMP/nc-server.got" || fail "nc TCP: the listener got $(stat -c %s "$TEST_TMP/nc-server.got") B, not the client's 200000 B"
serve "$TEST_TMP/nc-down.err" "Listening on" env "${server_env[@]}" timeout 30 nc -v -n -N -l 10.66.0.1 7005 <"$TEST_TMP/down.bin" >/dev/null
env "${client_env[@]}" timeout 30 nc 10.66.0.1 7005 </dev/null >"$TEST_TMP/nc-client.got" 2>"$TEST_TMP/nc-client.err" \
    || fail "nc TCP downloading client: $(cat "$TEST_TMP/nc-client.err")"
wait "$SERVER" || fail "nc TCP listener ended with $?: $(cat "$TEST_TMP/nc-down.err")"
cmp -s "$TEST_TMP/down.bin" "$TEST_TMP/nc-client.got" || fail "nc TCP: the client got $(stat -c %s "$TEST_TMP/nc-client.got") B, not the listener's 150000 B"
echo "nc TCP: 200000 B up, 150000 B down, byte-exact"

# 2. nc UDP: the listener answers the first datagram's sender with its own input.
echo "udp answer from the listener" >"$TEST_TMP/nc-udp-answer.txt"
serve "$TEST_TMP/nc-udp-server.err" "Bound on" env "${server_env[@]}" nc -v -n -u -l 10.66.0.1 7002 <"$TEST_TMP/nc-udp-answer.txt" >"$TEST_TMP/nc-udp-server.got"
got=$(echo "udp request from the client" | env "${client_env[@]}" timeout 20 nc -u -w 2 10.66.0.1 7002 2>"$TEST_TMP/nc-udp-client.err") || true
stop "$SERVER"
[ "$got" = "udp answer from the listener" ] || fail "nc UDP client got '$got': $(cat "$TEST_TMP/nc-udp-client.err" "$TEST_TMP/nc-udp-server.err")"
[ "$(cat "$TEST_TMP/nc-udp-server.got")" = "udp request from the client" ] || fail "nc UDP listener got '$(cat "$TEST_TMP/nc-udp-server.got")'"
echo "nc UDP: request and answer exact"

# 3. socat TCP: an echo server (one connection, no fork: a forked child cannot reach the parent's stack).
serve "$TEST_TMP/socat-server.err" "listening on" env "${server_env[@]}" timeout 30 socat -d -d TCP-LISTEN:7003,bind=10.66.0.1,reuseaddr EXEC:cat
env "${client_env[@]}" timeout 30 socat -t 5 - TCP:10.66.0.1:7003 <"$TEST_TMP/up.bin" >"$TEST_TMP/socat-echo.got" 2>"$TEST_TMP/socat-client.err" \
    || fail "socat TCP client: $(cat "$TEST_TMP/socat-client.err")"
wait "$SERVER" || fail "socat TCP server ended with $?: $(cat "$TEST_TMP/socat-server.err")"
cmp "$TEST_TMP/up.bin" "$TEST_TMP/socat-echo.got" || fail "socat TCP: echo of $(stat -c %s "$TEST_TMP/socat-echo.got") B differs from the 200000 B sent"
echo "socat TCP: 200000 B echoed byte-exact"

# 4. socat UDP: a connected UDP server answering each line (sed -u: no end of input on UDP to flush at).
serve "$TEST_TMP/socat-udp-server.err" "listening on" env "${server_env[@]}" socat -d -d UDP-LISTEN:7004,bind=10.66.0.1 EXEC:'sed -u s/^/echo=/'
got=$(printf 'first line\nsecond line\nthird line\n' | env "${client_env[@]}" timeout 20 socat -t 2 - UDP:10.66.0.1:7004 2>"$TEST_TMP/socat-udp-client.err") || true
stop "$SERVER"
[ "$got" = "$(printf 'echo=first line\necho=second line\necho=third line')" ] || fail "socat UDP got '$got': $(cat "$TEST_TMP/socat-udp-client.err" "$TEST_TMP/socat-udp-server.err")"
echo "socat UDP: three lines answered exactly"

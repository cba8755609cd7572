#!/usr/bin/env bash
# MTU 9000 over DPDK net_memif between two preloaded processes (`mtu` in lstack.conf; memif's dev_info
# says 1518-byte frames, its rings carry longer ones as descriptor chains: docs/dpdk.md). A socat echo
# server and client move 16 MiB each way, compared byte for byte, first with both ends at 9000 and memif
# buffers as long as a frame (bsize), then with the client left at 1500 and memif's default buffers: the
# MSS option keeps each direction to its receiver's MTU. The stats (GAZELLE_STATS) show the segments'
# size: at 9000 the server took the client's bytes in far fewer frames than 1448-byte segments need.
source "$(dirname "$0")/lib.sh"
need socat
need python3
! ip -4 addr show | grep -q ' 10\.66\.0\.' || fail "a kernel interface has 10.66.0.x: the test would prove nothing"
memif_pair_confs
head -c $((16 << 20)) /dev/urandom >"$TEST_TMP/data.bin"

# echo_run NAME SERVER_MTU CLIENT_MTU BSIZE: one socat echo of data.bin; checks it and prints the server's
# received bytes per received frame.
echo_run() {
    local name=$1 smtu=$2 cmtu=$3 bsize=$4 role mtu
    for role in server client; do
        mtu=$smtu; [ $role = client ] && mtu=$cmtu
        sed -e '/^mtu = /d' -e "s|\(net_memif0,[^\"]*\)\"|\1${bsize:+,bsize=$bsize}\"|" "$TEST_TMP/memif-$role.conf" >"$TEST_TMP/$name-$role.conf"
        [ "$mtu" -gt 0 ] && echo "mtu = $mtu" >>"$TEST_TMP/$name-$role.conf"
    done
    serve "$TEST_TMP/$name-server.err" "listening on" env GAZELLE_CONF="$TEST_TMP/$name-server.conf" GAZELLE_STATS="$TEST_TMP/$name-server.stats" \
        LD_PRELOAD="$PRELOAD" timeout 60 socat -d -d TCP-LISTEN:7010,bind=10.66.0.1,reuseaddr EXEC:cat
    env GAZELLE_CONF="$TEST_TMP/$name-client.conf" LD_PRELOAD="$PRELOAD" timeout 60 socat -t 10 - TCP:10.66.0.1:7010 \
        <"$TEST_TMP/data.bin" >"$TEST_TMP/$name.got" 2>"$TEST_TMP/$name-client.err" \
        || fail "$name: socat client: $(cat "$TEST_TMP/$name-client.err")"
    wait "$SERVER" || fail "$name: socat server ended with $?: $(cat "$TEST_TMP/$name-server.err")"
    cmp -s "$TEST_TMP/data.bin" "$TEST_TMP/$name.got" || fail "$name: the echo ($(stat -c %s "$TEST_TMP/$name.got") B) differs from the 16 MiB sent"
    python3 - "$TEST_TMP/$name-server.stats" <<'PY' || fail "$name: stats: $(cat "$TEST_TMP/$name-server.stats")"
import sys
s = dict(l.split() for l in open(sys.argv[1]) if len(l.split()) == 2)
print(int(s["counter.TcpLayer.BytesReceived"]) // int(s["counter.Link.FramesReceived"]))
PY
}

per_frame=$(echo_run jumbo 9000 9000 9026)
[ "$per_frame" -gt 4000 ] || fail "jumbo: the server received $per_frame B per frame: the 9000 MTU was not in effect"
echo "MTU 9000 both ends: 16 MiB echoed byte-exact, $per_frame B received per frame"
per_frame=$(echo_run mixed 9000 1500 "")
[ "$per_frame" -le 1460 ] || fail "mixed: the server received $per_frame B per frame from a client at MTU 1500"
echo "MTU 9000 server, 1500 client: 16 MiB echoed byte-exact, $per_frame B received per frame"

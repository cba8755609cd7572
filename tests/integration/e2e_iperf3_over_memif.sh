#!/usr/bin/env bash
# Unmodified iperf3 server and client (TCP), each preloaded with its own stack, joined by DPDK net_memif:
# no kernel interface has 10.66.0.x, so every byte measured came through our stacks. Two tests, 2 s each,
# so that each program both sends and receives: the client sending, then -R (the server sending). The
# client's -J report (with the server's, --get-server-output) must show no error, the direction asked
# for, and non-zero bytes received by the receiving side.
source "$(dirname "$0")/lib.sh"
need iperf3
need python3
! ip -4 addr show | grep -q ' 10\.66\.0\.' || fail "a kernel interface has 10.66.0.x: the test would prove nothing"
memif_pair_confs
server_env=(GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD" GAZELLE_COUNTERS="$TEST_TMP/server.counters")
client_env=(GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD")
env "${server_env[@]}" iperf3 -s -J -p 5201 -B 10.66.0.1 >"$TEST_TMP/server.log" 2>&1 &
TEST_PIDS+=($!)
wait_listening "$TEST_TMP/server.counters" "iperf3 -s"
run() { # NAME [iperf3 flags...]
    local name=$1
    shift
    env "${client_env[@]}" timeout 40 iperf3 -c 10.66.0.1 -p 5201 -t 2 -J --get-server-output "$@" >"$TEST_TMP/$name.json" 2>"$TEST_TMP/$name.err" \
        || fail "iperf3 client ($name) failed: $(head -c 400 "$TEST_TMP/$name.json") $(cat "$TEST_TMP/$name.err") / server: $(tail -3 "$TEST_TMP/server.log")"
    python3 - "$TEST_TMP/$name.json" "$name" <<'PY' || fail "iperf3 report ($name): $(head -c 600 "$TEST_TMP/$name.json")"
import json, sys
d = json.load(open(sys.argv[1]))
name = sys.argv[2]
assert "error" not in d, d.get("error")
assert d["start"]["connected"][0]["remote_host"] == "10.66.0.1", d["start"]["connected"]
reverse = d["start"]["test_start"]["reverse"]
assert reverse == (1 if name == "reverse" else 0), reverse
rx = d["end"]["sum_received"]
assert rx["bytes"] > 0 and rx["bits_per_second"] > 0, rx
server = d["server_output_json"]
assert "error" not in server, server.get("error")
assert server["start"]["accepted_connection"]["host"] == "10.66.0.2", server["start"]["accepted_connection"]
srx, stx = server["end"]["sum_received"], server["end"]["sum_sent"]
# The server's own report: it received (normal test) or sent (-R) the bytes.
assert (stx if reverse else srx)["bytes"] > 0, (srx, stx)
print("iperf3 TCP over memif, 2 s, %s: %.0f MB received, %.2f Gbit/s" % (
    "server sending (-R)" if reverse else "client sending", rx["bytes"] / 1e6, rx["bits_per_second"] / 1e9))
PY
}
run forward
run reverse -R

#!/usr/bin/env bash
# Unmodified iperf3 server and client (TCP, 3 s), each preloaded with its own stack, joined by DPDK
# net_memif: no kernel interface has 10.66.0.x, so every byte measured came through our stacks. The
# client's -J report must show no error and a non-zero received throughput.
source "$(dirname "$0")/lib.sh"
need iperf3
need python3
memif_pair_confs
server_env=(GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD")
client_env=(GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD")
env "${server_env[@]}" iperf3 -s -1 -p 5201 -B 10.66.0.1 >"$TEST_TMP/server.log" 2>&1 &
TEST_PIDS+=($!)
sleep 2
env "${client_env[@]}" timeout 40 iperf3 -c 10.66.0.1 -p 5201 -t 3 -J >"$TEST_TMP/client.json" 2>"$TEST_TMP/client.err" \
    || fail "iperf3 client failed: $(head -c 400 "$TEST_TMP/client.json") $(cat "$TEST_TMP/client.err") / server: $(tail -3 "$TEST_TMP/server.log")"
python3 - "$TEST_TMP/client.json" <<'PY' || fail "iperf3 report: $(head -c 400 "$TEST_TMP/client.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert "error" not in d, d.get("error")
assert d["start"]["connected"][0]["remote_host"] == "10.66.0.1", d["start"]["connected"]
rx = d["end"]["sum_received"]
assert rx["bytes"] > 0 and rx["bits_per_second"] > 0, rx
print("iperf3 TCP over memif, 3 s: %.0f MB received, %.2f Gbit/s" % (rx["bytes"] / 1e6, rx["bits_per_second"] / 1e9))
PY
grep -q 'Accepted connection from 10.66.0.2' "$TEST_TMP/server.log" || fail "the server saw no client from 10.66.0.2"

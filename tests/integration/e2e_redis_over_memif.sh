#!/usr/bin/env bash
# Unmodified redis-server and redis-cli / redis-benchmark, each preloaded with its own stack, joined by
# DPDK net_memif: no kernel interface has 10.66.0.x, so every reply came through our stacks.
source "$(dirname "$0")/lib.sh"
need redis-server
need redis-cli
need redis-benchmark
memif_pair_confs
server_env=(GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD" GAZELLE_COUNTERS="$TEST_TMP/server.counters")
client_env=(GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD")
env "${server_env[@]}" redis-server --port 6379 --bind 10.66.0.1 --save '' --appendonly no --protected-mode no \
    >"$TEST_TMP/redis.log" 2>&1 &
TEST_PIDS+=($!)
wait_listening "$TEST_TMP/server.counters" redis-server
cli() { env "${client_env[@]}" timeout 20 redis-cli -h 10.66.0.1 -p 6379 "$@" 2>>"$TEST_TMP/cli.err"; }
[ "$(cli ping)" = PONG ] || fail "PING over the stacks: $(cat "$TEST_TMP/cli.err") $(tail -3 "$TEST_TMP/redis.log")"
value="gazelle-$RANDOM-$RANDOM"
[ "$(cli set key "$value")" = OK ] || fail "SET failed"
[ "$(cli get key)" = "$value" ] || fail "GET returned '$(cli get key)', want '$value'"
env "${client_env[@]}" timeout 120 redis-benchmark -h 10.66.0.1 -p 6379 -c 50 -n 5000 -t get,set --csv \
    >"$TEST_TMP/bench.csv" 2>"$TEST_TMP/bench.err" || fail "redis-benchmark failed: $(tail -3 "$TEST_TMP/bench.err")"
for t in SET GET; do
    grep -q "^\"$t\",\"[1-9]" "$TEST_TMP/bench.csv" || fail "redis-benchmark reported no $t rate: $(cat "$TEST_TMP/bench.csv")"
done
[ "$(cli dbsize)" -ge 1 ] || fail "the server holds no keys after the benchmark"
echo "redis over memif: PING/SET/GET exact; redis-benchmark 50 clients:"
cut -d, -f1-2 "$TEST_TMP/bench.csv"

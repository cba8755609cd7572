#!/usr/bin/env bash
# A program that replaces malloc for the whole process (redis-server links jemalloc) must run
# preloaded with a configured stack: glibc's internals allocate with the program's allocator, so the
# deep-bound stack library must free with it too (shim/alloc_forward.c). Before that fix this
# aborted at start with "free(): invalid pointer". The stack here runs on DPDK net_null (no traffic
# needed); redis answers a kernel loopback client (loopback is never the stack's).
source "$(dirname "$0")/lib.sh"
need redis-server
need redis-cli
ldd "$(command -v redis-server)" | grep jemalloc >/dev/null || fail "this redis-server does not link jemalloc: the test would prove nothing"
prefix=gz-jemalloc-$$
TEST_DPDK_PREFIXES+=("$prefix")
vdev_conf "$TEST_TMP/lstack.conf" "$prefix" net_null0 02:00:00:00:77:01 10.77.7.2
port=$((20000 + RANDOM % 20000))
GAZELLE_CONF=$TEST_TMP/lstack.conf LD_PRELOAD=$PRELOAD redis-server --port "$port" --bind 127.0.0.1 --save '' \
    --appendonly no >"$TEST_TMP/redis.log" 2>&1 &
TEST_PIDS+=($!)
wait_port "$port" 20
kill -0 "${TEST_PIDS[0]}" 2>/dev/null || fail "redis-server died: $(grep -m3 -E 'free|crash|signal|gazelle' "$TEST_TMP/redis.log")"
[ "$(redis-cli -p "$port" set k jemalloc)" = OK ] || fail "SET failed: $(tail -5 "$TEST_TMP/redis.log")"
[ "$(redis-cli -p "$port" get k)" = jemalloc ] || fail "GET returned the wrong value"
grep -q "cannot start the device\|sockets run on the kernel" "$TEST_TMP/redis.log" && fail "the stack did not start: $(grep gazelle "$TEST_TMP/redis.log")"
echo "preloaded redis-server (jemalloc) with a running stack answered SET/GET"

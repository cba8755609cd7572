#!/usr/bin/env bash
# Unmodified nginx (single process: daemon off, master_process off) and curl / wget / wrk, each preloaded
# with its own stack, joined by DPDK net_memif: no kernel interface has 10.66.0.x, so every byte served
# came through our stacks. curl and wget must fetch a file byte-exact; wrk must complete requests with
# no socket errors and no non-2xx answers. wget exits without closing its connection (the exit flush
# closes it; a process killed outright would leave it open at nginx), so a later process picking the same
# ephemeral port would reset it: each process's ports must differ.
source "$(dirname "$0")/lib.sh"
need nginx
need curl
need wget
need wrk
memif_pair_confs
server_env=(GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD" GAZELLE_COUNTERS="$TEST_TMP/server.counters"
    GAZELLE_STATS="$TEST_TMP/server.stats")
client_env=(GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD")
dir=$TEST_TMP/nginx
nginx_conf "$dir" 10.66.0.1:8080
head -c 300000 /dev/urandom >"$dir/www/file.bin"   # several windows' worth, not a multiple of the MSS
head -c 1024 /dev/urandom >"$dir/www/small.bin"
env "${server_env[@]}" nginx -c "$dir/nginx.conf" -p "$dir" >"$TEST_TMP/nginx.out" 2>&1 &
nginx_pid=$!
TEST_PIDS+=($nginx_pid)
wait_listening "$TEST_TMP/server.counters" nginx
url=http://10.66.0.1:8080
env "${client_env[@]}" timeout 30 curl -sS --retry 5 --retry-connrefused --retry-delay 1 -o "$TEST_TMP/curl.bin" \
    "$url/file.bin" 2>"$TEST_TMP/curl.err" || fail "curl: $(cat "$TEST_TMP/curl.err") $(tail -3 "$dir/logs/error.log")"
cmp -s "$dir/www/file.bin" "$TEST_TMP/curl.bin" || fail "curl's copy differs from the served file"
env "${client_env[@]}" timeout 30 wget -q -O "$TEST_TMP/wget.bin" "$url/file.bin" 2>"$TEST_TMP/wget.err" \
    || fail "wget: $(cat "$TEST_TMP/wget.err") $(tail -3 "$dir/logs/error.log")"
cmp -s "$dir/www/file.bin" "$TEST_TMP/wget.bin" || fail "wget's copy differs from the served file"
env "${client_env[@]}" timeout 30 curl -sS -o "$TEST_TMP/curl2.bin" "$url/small.bin" 2>"$TEST_TMP/curl2.err" \
    || fail "second curl: $(cat "$TEST_TMP/curl2.err")"
cmp -s "$dir/www/small.bin" "$TEST_TMP/curl2.bin" || fail "the second curl's copy differs from the served file"
ports=$(awk '{print $2}' "$dir/logs/access.log" | sort -u | wc -l)
[ "$ports" -eq 3 ] || fail "curl, wget, curl used $ports distinct source ports, want 3: $(cat "$dir/logs/access.log")"
! grep -q 'reset by peer' "$dir/logs/error.log" || fail "nginx saw a reset: $(grep 'reset by peer' "$dir/logs/error.log")"
env "${client_env[@]}" timeout 30 wrk -t 1 -c 16 -d 2s "$url/small.bin" >"$TEST_TMP/wrk.log" 2>&1 \
    || fail "wrk failed: $(cat "$TEST_TMP/wrk.log")"
requests=$(awk '/requests in/ {print $1}' "$TEST_TMP/wrk.log")
[ "${requests:-0}" -gt 0 ] || fail "wrk completed no requests: $(cat "$TEST_TMP/wrk.log")"
! grep -q 'Socket errors' "$TEST_TMP/wrk.log" || fail "wrk saw socket errors: $(grep 'Socket errors' "$TEST_TMP/wrk.log")"
! grep -q 'Non-2xx' "$TEST_TMP/wrk.log" || fail "wrk saw failed responses: $(grep 'Non-2xx' "$TEST_TMP/wrk.log")"
served=$(grep -c '^10\.66\.0\.2 ' "$dir/logs/access.log" || true)
[ "$served" -ge $((requests + 3)) ] || fail "nginx logged $served requests from 10.66.0.2, want >= $((requests + 3))"
# nginx replaces its environment after opening its sockets; its exit stats must still be written (docs/stats.md).
interrupt_pid "$nginx_pid"
grep -q '^exit.left_open ' "$TEST_TMP/server.stats" 2>/dev/null \
    || fail "nginx wrote no GAZELLE_STATS file at its graceful exit: $(ls "$TEST_TMP")"
echo "nginx over memif: curl and wget byte-exact (300000 B); wrk 2 s, 16 connections, 1 KiB:"
grep -E 'requests in|Requests/sec' "$TEST_TMP/wrk.log"

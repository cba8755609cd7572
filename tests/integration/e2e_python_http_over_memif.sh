#!/usr/bin/env bash
# Unmodified python3 -m http.server with unmodified curl and wget as its clients, each process preloaded
# with its own stack, joined by DPDK net_memif (no kernel interface has 10.66.0.x, so every byte came
# through our stacks): both fetch a 300000-byte file byte-exact, and the server logs both requests as
# coming from the client stack's address. (nginx with curl and wget: e2e_nginx_over_memif.sh.)
source "$(dirname "$0")/lib.sh"
need python3
need curl
need wget
! ip -4 addr show | grep -q ' 10\.66\.0\.' || fail "a kernel interface has 10.66.0.x: the test would prove nothing"
memif_pair_confs
server_env=(GAZELLE_CONF="$TEST_TMP/memif-server.conf" LD_PRELOAD="$PRELOAD" GAZELLE_COUNTERS="$TEST_TMP/server.counters")
client_env=(GAZELLE_CONF="$TEST_TMP/memif-client.conf" LD_PRELOAD="$PRELOAD")
mkdir -p "$TEST_TMP/www"
head -c 300000 /dev/urandom >"$TEST_TMP/www/blob.bin"
env "${server_env[@]}" python3 -m http.server 8080 --bind 10.66.0.1 --directory "$TEST_TMP/www" >"$TEST_TMP/server.log" 2>&1 &
TEST_PIDS+=($!)
wait_listening "$TEST_TMP/server.counters" "python3 -m http.server"
url=http://10.66.0.1:8080/blob.bin
env "${client_env[@]}" timeout 30 curl -sS --retry 5 --retry-connrefused --retry-delay 1 -o "$TEST_TMP/curl.bin" "$url" \
    2>"$TEST_TMP/curl.err" || fail "curl: $(cat "$TEST_TMP/curl.err") / server: $(tail -3 "$TEST_TMP/server.log")"
cmp "$TEST_TMP/www/blob.bin" "$TEST_TMP/curl.bin" || fail "curl's copy differs from the served file"
env "${client_env[@]}" timeout 30 wget -q -O "$TEST_TMP/wget.bin" "$url" 2>"$TEST_TMP/wget.err" \
    || fail "wget: $(cat "$TEST_TMP/wget.err") / server: $(tail -3 "$TEST_TMP/server.log")"
cmp "$TEST_TMP/www/blob.bin" "$TEST_TMP/wget.bin" || fail "wget's copy differs from the served file"
served=$(grep -c '^10\.66\.0\.2 .*"GET /blob.bin HTTP/1.1" 200' "$TEST_TMP/server.log" || true)
[ "$served" -eq 2 ] || fail "the server logged $served GETs from 10.66.0.2, want 2: $(cat "$TEST_TMP/server.log")"
echo "python3 http.server over memif: curl and wget fetched 300000 B byte-exact"

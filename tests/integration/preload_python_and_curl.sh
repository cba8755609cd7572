#!/usr/bin/env bash
# Unmodified python3 (http.server) and curl run preloaded; their file work is untouched and the
# exchange is byte-exact.
source "$(dirname "$0")/lib.sh"
need curl
mkdir -p "$TEST_TMP/www"
head -c 300000 /dev/urandom > "$TEST_TMP/www/blob.bin"
port=$((20000 + RANDOM % 20000))
LD_PRELOAD=$PRELOAD python3 -m http.server "$port" --bind 127.0.0.1 --directory "$TEST_TMP/www" \
    >"$TEST_TMP/server.log" 2>&1 &
TEST_PIDS+=($!)
wait_port "$port"
LD_PRELOAD=$PRELOAD curl -sS --max-time 20 -o "$TEST_TMP/got.bin" "http://127.0.0.1:$port/blob.bin"
cmp "$TEST_TMP/www/blob.bin" "$TEST_TMP/got.bin" || fail "downloaded file differs"
grep -q "GET /blob.bin" "$TEST_TMP/server.log" || fail "python3 server did not log the request"
echo "curl fetched $(stat -c %s "$TEST_TMP/got.bin") bytes from python3 http.server, both preloaded"

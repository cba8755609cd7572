#!/usr/bin/env bash
# The main job. Today: the preload mechanism on unmodified programs (python3's http.server and curl)
# with no hardware and no configuration, so every socket runs on the kernel while the stack library
# is loaded beside the program. It prints what it ran and what it saw.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/gz-demo.XXXXXX)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
head -c 1000000 /dev/urandom > "$tmp/file.bin"
port=$((20000 + RANDOM % 20000))
echo "1. a program that never opens an IPv4 socket pays nothing:"
LD_PRELOAD=$ROOT/build/libgazelle.so "$ROOT/build/tests/preload_probe" files | sed 's/^/   /'
echo "2. unmodified python3 -m http.server and curl, both with LD_PRELOAD=build/libgazelle.so:"
LD_PRELOAD=$ROOT/build/libgazelle.so python3 -m http.server "$port" --bind 127.0.0.1 --directory "$tmp" >"$tmp/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
start=$(date +%s.%N)
LD_PRELOAD=$ROOT/build/libgazelle.so curl -sS -o "$tmp/got.bin" "http://127.0.0.1:$port/file.bin" 2>&1 | sed 's/^/   curl: /'
end=$(date +%s.%N)
if cmp -s "$tmp/file.bin" "$tmp/got.bin"; then verdict="byte-exact"; else verdict="DIFFERENT"; fi
printf '   curl fetched %s bytes in %.3f s: %s\n' "$(stat -c %s "$tmp/got.bin")" "$(echo "$end - $start" | bc -l 2>/dev/null || echo 0)" "$verdict"
sed 's/^/   server: /' "$tmp/server.log" | head -3
echo "3. the stack library itself: loaded by the first IPv4 socket, survives a forced GC:"
LD_PRELOAD=$ROOT/build/libgazelle.so "$ROOT/build/tests/preload_probe" socket 2>&1 | sed 's/^/   /'

#!/usr/bin/env bash
# Unmodified nginx (single process: daemon off, master_process off), preloaded, serving Linux-kernel
# clients through our stack on DPDK net_af_packet: kernel curl fetches two files over one keep-alive
# connection byte-exact, kernel wrk runs 2 s with no socket errors and no non-2xx answers, and nginx's
# access log holds every request, all from the kernel peer's 10.93.0.1. Then SIGTERM must stop nginx
# (it notices only when epoll_wait returns EINTR; it once kept running, spinning in our epoll_wait). The stack's veth end has no
# kernel address, so every answer crossed the stack. (Preloaded clients: e2e_nginx_over_memif.sh.)
source "$(dirname "$0")/lib.sh"
need nginx
need curl
need wrk
netns_pair 10.93.0.1/24
stack_conf "$TEST_TMP/stack.conf" "$VETH_STACK" 10.93.0.2 "gz-nginx-$$"
ip -n "$NS_STACK" -4 addr show | grep -q 'inet 10\.93' && fail "the stack's namespace has a kernel address on 10.93.0.x"
dir=$TEST_TMP/nginx
nginx_conf "$dir" 10.93.0.2:8080
head -c 300000 /dev/urandom >"$dir/www/file.bin"   # several windows' worth, not a multiple of the MSS
head -c 1024 /dev/urandom >"$dir/www/small.bin"
GAZELLE_CONF=$TEST_TMP/stack.conf LD_PRELOAD=$PRELOAD ip netns exec "$NS_STACK" nginx -c "$dir/nginx.conf" -p "$dir" \
    >"$TEST_TMP/nginx.out" 2>&1 &
nginx_pid=$!
TEST_PIDS+=("$nginx_pid")
url=http://10.93.0.2:8080
# The first request also waits for nginx's stack to come up (ARP unanswered until then: a timeout).
timeout 60 ip netns exec "$NS_PEER" curl -sS --connect-timeout 2 --retry 15 --retry-connrefused --retry-delay 1 \
    -o "$TEST_TMP/curl1.bin" "$url/file.bin" -o "$TEST_TMP/curl2.bin" "$url/small.bin" 2>"$TEST_TMP/curl.err" \
    || fail "kernel curl: $(cat "$TEST_TMP/curl.err") / nginx: $(tail -3 "$dir/logs/error.log") $(cat "$TEST_TMP/nginx.out")"
cmp -s "$dir/www/file.bin" "$TEST_TMP/curl1.bin" || fail "curl's copy of file.bin differs from the served file"
cmp -s "$dir/www/small.bin" "$TEST_TMP/curl2.bin" || fail "curl's copy of small.bin differs from the served file"
curl_ports=$(awk '$1 == "10.93.0.1" {print $2}' "$dir/logs/access.log" | sort -u | wc -l)
[ "$curl_ports" -eq 1 ] || fail "curl's two requests came over $curl_ports connections, want 1 (keep-alive): $(cat "$dir/logs/access.log")"
timeout 60 ip netns exec "$NS_PEER" wrk -t 1 -c 16 -d 2s "$url/small.bin" >"$TEST_TMP/wrk.log" 2>&1 \
    || fail "wrk failed: $(cat "$TEST_TMP/wrk.log")"
requests=$(awk '/requests in/ {print $1}' "$TEST_TMP/wrk.log")
[ "${requests:-0}" -gt 0 ] || fail "wrk completed no requests: $(cat "$TEST_TMP/wrk.log")"
! grep -q 'Socket errors' "$TEST_TMP/wrk.log" || fail "wrk saw socket errors: $(grep 'Socket errors' "$TEST_TMP/wrk.log")"
! grep -q 'Non-2xx' "$TEST_TMP/wrk.log" || fail "wrk saw failed responses: $(grep 'Non-2xx' "$TEST_TMP/wrk.log")"
served=$(grep -c '^10\.93\.0\.1 .* 200 1024$' "$dir/logs/access.log" || true)
[ "$served" -ge $((requests + 1)) ] || fail "nginx logged $served full answers of small.bin to 10.93.0.1, want >= $((requests + 1))"
echo "nginx over af_packet, kernel clients: curl byte-exact (300000 B + 1024 B, one connection); wrk 2 s, 16 connections, 1 KiB:"
grep -E 'requests in|Requests/sec' "$TEST_TMP/wrk.log"
kill -TERM "$nginx_pid"
for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$nginx_pid" 2>/dev/null; then kill -KILL "$nginx_pid"; fail "nginx was still running 5 s after SIGTERM"; fi
grep -q 'exit' "$dir/logs/error.log" || fail "nginx did not log its exit: $(tail -3 "$dir/logs/error.log")"
echo "nginx stopped on SIGTERM"

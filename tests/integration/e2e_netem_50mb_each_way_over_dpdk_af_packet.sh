#!/usr/bin/env bash
# 50 MB each way, byte-exact, between our stack (DPDK net_af_packet, no kernel address on its side)
# and the Linux kernel, over a link impaired in both directions like `tc qdisc ... netem loss 3%
# reorder 25% duplicate 1% corrupt 0.1% delay 2ms` (netns_impaired_pair: a seeded user-space relay,
# since this kernel has no sch_netem):
#   1. preloaded socat sends a file to a kernel socat, which writes it out;
#   2. kernel socat sends it to a preloaded socat.
# Each file is compared with cmp; the relay's counters must show every impairment happened. Prints
# the transfer times, the stack's retransmission counters and the kernel's (nstat). On failure the
# stack's counters, the relay's and a header-only pcap taken in the peer namespace are kept in
# build/test-results/<this test>-artifacts/.
source "$(dirname "$0")/lib.sh"
need socat
need cmp
SIZE_MB=${GAZELLE_NETEM_MB:-50}
netns_impaired_pair 10.94.0.1/24 3 25 1 0.1 2000 "${GAZELLE_NETEM_SEED:-5}"
stack_conf "$TEST_TMP/stack.conf" "$VETH_STACK" 10.94.0.2 "gz-netem-$$"
head -c $((SIZE_MB * 1000 * 1000)) /dev/urandom >"$TEST_TMP/src.bin"
if command -v dumpcap >/dev/null; then
    in_ns "$NS_PEER" dumpcap -q -i "$VETH_PEER" -s 96 -w "$TEST_TMP/peer.pcap" >/dev/null 2>&1 &
    TEST_PIDS+=($!)
fi
counter() { awk -v n="counter.$2" '$1 == n {v = $2} END {print v + 0}' "$1" 2>/dev/null || echo 0; }
artifacts() {
    local dir=$ROOT/build/test-results/$(basename "$0" .sh)-artifacts
    mkdir -p "$dir"
    cp "$TEST_TMP"/*.counters "$TEST_TMP"/*.live "$TEST_TMP"/*.log "$TEST_TMP"/*.err "$TEST_TMP/peer.pcap" "$dir/" 2>/dev/null || true
    echo "kept in $dir: $(ls "$dir" | tr '\n' ' ')"
}
on_failure() { # WHAT COUNTERS: prints the diagnosis and fails
    echo "---- stack counters ($2, else the last live copy)"; cat "$2" 2>/dev/null || cat "${2%.counters}.live" 2>/dev/null
    kill "$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null
    echo "---- relay"; cat "$TEST_TMP/relay.log"
    artifacts
    fail "$1"
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
kernel_retrans() { in_ns "$NS_PEER" nstat -asz TcpRetransSegs | awk '$1 == "TcpRetransSegs" {print $2}'; }
sleep 0.3

# 1. preloaded sender -> kernel receiver
in_ns "$NS_PEER" socat -u TCP-LISTEN:9000,bind=10.94.0.1,reuseaddr CREATE:"$TEST_TMP/got1.bin" 2>"$TEST_TMP/recv1.err" &
receiver=$!
TEST_PIDS+=($receiver)
sleep 0.3
start=$(date +%s%N)
GAZELLE_STATS=$TEST_TMP/send1.counters GAZELLE_COUNTERS=$TEST_TMP/send1.live GAZELLE_CONF=$TEST_TMP/stack.conf LD_PRELOAD=$PRELOAD timeout -k 5 150 \
    ip netns exec "$NS_STACK" socat -u OPEN:"$TEST_TMP/src.bin" TCP:10.94.0.1:9000 2>"$TEST_TMP/send1.err" \
    || on_failure "1: the preloaded sender failed or timed out: $(cat "$TEST_TMP/send1.err")" "$TEST_TMP/send1.counters"
timeout 30 tail --pid="$receiver" -f /dev/null || on_failure "1: the kernel receiver never saw the end" "$TEST_TMP/send1.counters"
ms1=$(ms_since "$start")
cmp -s "$TEST_TMP/src.bin" "$TEST_TMP/got1.bin" \
    || on_failure "1: the kernel received $(stat -c %s "$TEST_TMP/got1.bin") bytes that differ from the $SIZE_MB MB sent" "$TEST_TMP/send1.counters"
c=$TEST_TMP/send1.counters
echo "1. preloaded -> kernel: $SIZE_MB MB byte-exact in $ms1 ms ($((SIZE_MB * 8000 / (ms1 > 0 ? ms1 : 1))) Mbit/s);" \
     "stack: RetransmittedSegments=$(counter "$c" TcpLayer.RetransmittedSegments) FastRetransmits=$(counter "$c" TcpLayer.FastRetransmits)" \
     "RtoTimeouts=$(counter "$c" TcpLayer.RtoTimeouts) TailLossProbes=$(counter "$c" TcpLayer.TailLossProbes)" \
     "SpuriousRecoveriesUndone=$(counter "$c" TcpLayer.SpuriousRecoveriesUndone) PawsRejected=$(counter "$c" TcpLayer.PawsRejected)" \
     "Tcp.BadChecksum=$(counter "$c" Tcp.BadChecksum)"
echo "   RACK: RackLost=$(counter "$c" TcpLayer.RackLost) LostRetransmits=$(counter "$c" TcpLayer.LostRetransmits)" \
     "RackReorderTimeouts=$(counter "$c" TcpLayer.RackReorderTimeouts) RackReoWndGrowths=$(counter "$c" TcpLayer.RackReoWndGrowths)" \
     "SpuriousRetransmits=$(counter "$c" TcpLayer.SpuriousRetransmits) DsackUndos=$(counter "$c" TcpLayer.DsackUndos)"

# 2. kernel sender -> preloaded receiver (the sender retries until the preloaded socat listens)
GAZELLE_STATS=$TEST_TMP/recv2.counters GAZELLE_COUNTERS=$TEST_TMP/recv2.live GAZELLE_CONF=$TEST_TMP/stack.conf LD_PRELOAD=$PRELOAD timeout -k 5 200 \
    ip netns exec "$NS_STACK" socat -u TCP-LISTEN:9001,bind=10.94.0.2,reuseaddr CREATE:"$TEST_TMP/got2.bin" 2>"$TEST_TMP/recv2.err" &
receiver=$!
TEST_PIDS+=($receiver)
retrans_before=$(kernel_retrans)
start=$(date +%s%N)
timeout -k 5 150 ip netns exec "$NS_PEER" socat -u OPEN:"$TEST_TMP/src.bin" TCP:10.94.0.2:9001,retry=100,interval=0.2 2>"$TEST_TMP/send2.err" \
    || on_failure "2: the kernel sender failed or timed out: $(cat "$TEST_TMP/send2.err")" "$TEST_TMP/recv2.counters"
timeout 30 tail --pid="$receiver" -f /dev/null || on_failure "2: the preloaded receiver never saw the end" "$TEST_TMP/recv2.counters"
ms2=$(ms_since "$start")
cmp -s "$TEST_TMP/src.bin" "$TEST_TMP/got2.bin" \
    || on_failure "2: the stack received $(stat -c %s "$TEST_TMP/got2.bin") bytes that differ from the $SIZE_MB MB sent" "$TEST_TMP/recv2.counters"
c=$TEST_TMP/recv2.counters
echo "2. kernel -> preloaded: $SIZE_MB MB byte-exact in $ms2 ms ($((SIZE_MB * 8000 / (ms2 > 0 ? ms2 : 1))) Mbit/s);" \
     "kernel TcpRetransSegs=$(( $(kernel_retrans) - retrans_before ));" \
     "stack: OutOfOrderQueued=$(counter "$c" TcpLayer.OutOfOrderQueued) DuplicateSegments=$(counter "$c" TcpLayer.DuplicateSegments)" \
     "DsacksSent=$(counter "$c" TcpLayer.DsacksSent) Tcp.BadChecksum=$(counter "$c" Tcp.BadChecksum)"

# The link really was impaired, both ways, in every way asked.
kill "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null || true
cat "$TEST_TMP/relay.log"
while read -r line; do
    for what in lost duplicated corrupted immediate delayed; do
        n=$(grep -o " $what [0-9]*" <<<"$line" | awk '{print $2}')
        [ "${n:-0}" -gt 0 ] || { artifacts; fail "the relay did not impair ($what = ${n:-none}): $line"; }
    done
done < <(grep 'received' "$TEST_TMP/relay.log")
[ "$(grep -c received "$TEST_TMP/relay.log")" -eq 2 ] || fail "relay counters missing: $(cat "$TEST_TMP/relay.log")"

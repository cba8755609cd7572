# Shared helpers for integration tests. Each test script is one test: exit 0 = pass, other = fail.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build
PRELOAD=$BUILD/libgazelle.so
TEST_TMP=$(mktemp -d /tmp/gz-test.XXXXXX)
TEST_PIDS=()
# The POSIX layer's lock is not reentrant: in the tests it checks its owner and throws on a re-entry (a crash that
# names it) where a production run would hang (PollPolicy.CheckLockOwner).
export GAZELLE_CHECK_LOCK=1

TEST_NETNS=()
TEST_DPDK_PREFIXES=()
source "$ROOT/scripts/lstack-conf.sh"
source "$ROOT/scripts/nginx-conf.sh"

cleanup_test() {
    local pid ns
    for pid in "${TEST_PIDS[@]}"; do stop_pid "$pid"; done
    # Namespaces this test made (named after its own pid): end what still runs inside, then delete
    # them, which deletes their veth ends too.
    for ns in "${TEST_NETNS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    for ns in "${TEST_DPDK_PREFIXES[@]}"; do rm -rf "/var/run/dpdk/$ns"; done
    rm -rf "$TEST_TMP"
}
trap cleanup_test EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# stop_pid PID: SIGTERM, then SIGKILL if it is still there after 5 s (said loudly: a preloaded program
# can miss a signal that lands while the stack polls - seen with nginx blocked in epoll_wait), so a
# stuck program never hangs the test run.
alive() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$st" ] && [ "$st" != Z ]; }
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        echo "cleanup: pid $pid ($(cat /proc/"$pid"/comm 2>/dev/null)) still running 5 s after SIGTERM: SIGKILL" >&2
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
# Stops a server with SIGINT so it prints its summary. A program whose handler has SA_RESTART and that
# sits in a blocking recv/accept goes on waiting after it, on Linux as on the stack, until it next looks
# at its flag; a second SIGINT may be needed. Up to 5 tries, 2 s apart, each one said aloud.
interrupt_pid() {
    local pid=$1 try i
    for try in 1 2 3 4 5; do
        kill -INT "$pid" 2>/dev/null || break
        for i in $(seq 20); do alive "$pid" || break 2; sleep 0.1; done
        echo "pid $pid ($(cat /proc/"$pid"/comm 2>/dev/null)) still running 2 s after SIGINT #$try: again" >&2
    done
    alive "$pid" && fail "pid $pid ignored 5 SIGINTs"
    wait "$pid" 2>/dev/null || true
}
need() { command -v "$1" >/dev/null || fail "$1 is not installed (run: make deps)"; }

# Waits until a TCP port accepts on 127.0.0.1 (kernel), at most $2 seconds.
wait_port() {
    local port=$1 deadline=$((SECONDS + ${2:-10}))
    until (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "nothing listens on port $port"
        sleep 0.1
    done
}

# wait_listening COUNTERS WHAT [SECONDS]: waits, at most 60 s, until the preloaded server started with
# GAZELLE_COUNTERS=COUNTERS has a listening TCP socket on its stack (tcp.state.listen, docs/stats.md):
# its stack is up and its listen() has returned. (A fixed `sleep 2` was the wait before: too short for
# a loaded machine, where a preloaded server can take longer to start.)
wait_listening() {
    local file=$1 what=$2 deadline=$((SECONDS + ${3:-60})) n
    while :; do
        n=$(awk '$1 == "tcp.state.listen" {print $2}' "$file" 2>/dev/null || true) # no file yet: awk fails
        [ "${n:-0}" -ge 1 ] && return 0
        [ $SECONDS -lt $deadline ] || fail "$what never listened on its stack; counters: $(tr '\n' ' ' <"$file" 2>/dev/null)"
        sleep 0.1
    done
}

# ---- network namespaces for end-to-end tests (root) ----------------------------------------------
# netns_pair PEER_CIDR: two namespaces joined by a veth pair, named after this test's pid so that
# parallel tests never collide and cleanup touches only its own:
#   $NS_STACK  holds $VETH_STACK, up, with NO kernel address: the stack owns that link (DPDK
#              net_af_packet on it, or any NIC bound to it), so traffic on it cannot be the kernel's;
#   $NS_PEER   holds $VETH_PEER with PEER_CIDR (e.g. 10.99.0.1/24): the Linux-kernel peer; with
#              PEER_CIDR "" it has no kernel address either (a second stack's side).
# Both namespaces (and so both veth ends) are deleted on exit, on failure too (cleanup_test).
netns_pair() {
    local cidr=$1 id=$$
    NS_STACK=gz${id}s NS_PEER=gz${id}p VETH_STACK=gz${id}s0 VETH_PEER=gz${id}p0
    [ "$(id -u)" -eq 0 ] || fail "network namespaces need root"
    ip netns add "$NS_STACK" && TEST_NETNS+=("$NS_STACK")
    ip netns add "$NS_PEER" && TEST_NETNS+=("$NS_PEER")
    ip link add "$VETH_STACK" netns "$NS_STACK" type veth peer name "$VETH_PEER" netns "$NS_PEER"
    ip -n "$NS_STACK" link set lo up
    ip -n "$NS_STACK" link set "$VETH_STACK" up
    ip -n "$NS_PEER" link set lo up
    [ -z "$cidr" ] || ip -n "$NS_PEER" addr add "$cidr" dev "$VETH_PEER"
    ip -n "$NS_PEER" link set "$VETH_PEER" up
    # Offloads off on the peer: frames reach the stack with real checksums, as from a wire.
    ip netns exec "$NS_PEER" ethtool -K "$VETH_PEER" tx off rx off >/dev/null 2>&1 || true
}

# in_ns NS CMD...: runs CMD inside namespace NS.
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Waits until a TCP port accepts on ADDR inside namespace NS, at most $4 seconds.
wait_port_in_ns() {
    local ns=$1 addr=$2 port=$3 deadline=$((SECONDS + ${4:-10}))
    until ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "nothing listens on $addr:$port in $ns"
        sleep 0.1
    done
}

# stack_conf FILE IFACE HOST_ADDR PREFIX: writes an lstack.conf for a stack on IFACE via DPDK
# net_af_packet (no hugepages, its own EAL file prefix, removed by cleanup_test).
stack_conf() {
    local file=$1 iface=$2 addr=$3 prefix=$4
    TEST_DPDK_PREFIXES+=("$prefix")
    cat >"$file" <<CONF
# the stack on $iface (no kernel address there)
backend = "af_packet"
af_packet_iface = "$iface"
dpdk_args = ["--no-huge", "--no-pci", "--no-shconf", "--file-prefix", "$prefix", "-m", "128",
             "--no-telemetry", "--lcores", "0@(0-1)", "--log-level", "lib.eal:error"]
host_addr = "$addr"
mask_addr = "255.255.255.0"
CONF
}

# Writes $TEST_TMP/memif-server.conf and memif-client.conf: two stacks (10.66.0.1 serving the memif,
# 10.66.0.2 its client) joined by DPDK net_memif - shared memory between two preloaded processes,
# no kernel networking on the path. Cleans their DPDK runtime dirs on exit.
memif_pair_confs() {
    memif_pair_conf "$TEST_TMP" "memif-$$" "$TEST_TMP/memif.sock" 10.66.0
    TEST_DPDK_PREFIXES+=("gz-memif-$$-server" "gz-memif-$$-client")
}

# netns_impaired_pair PEER_CIDR LOSS% REORDER% DUPLICATE% CORRUPT% DELAY_US SEED: like netns_pair, but the
# veth from $NS_STACK reaches $NS_PEER through a third namespace $NS_RELAY, where
# build/tests/netem_relay (pid $RELAY_PID, counters in $TEST_TMP/relay.log when it stops) bridges
# the two links and impairs every frame in both directions as `tc qdisc ... netem loss L reorder R
# duplicate D corrupt C delay T` would on egress. (This machine's kernel has no sch_netem, and
# DPDK's af_packet bypasses the stack side's qdisc anyway; the relay needs neither.)
netns_impaired_pair() {
    local cidr=$1 id=$$ ns
    NS_STACK=gz${id}s NS_PEER=gz${id}p NS_RELAY=gz${id}r VETH_STACK=gz${id}s0 VETH_PEER=gz${id}p0
    [ "$(id -u)" -eq 0 ] || fail "network namespaces need root"
    [ -x "$BUILD/tests/netem_relay" ] || fail "build/tests/netem_relay is missing (run: make)"
    for ns in "$NS_STACK" "$NS_PEER" "$NS_RELAY"; do ip netns add "$ns" && TEST_NETNS+=("$ns"); ip -n "$ns" link set lo up; done
    ip link add "$VETH_STACK" netns "$NS_STACK" type veth peer name gz${id}r0 netns "$NS_RELAY"
    ip link add "$VETH_PEER" netns "$NS_PEER" type veth peer name gz${id}r1 netns "$NS_RELAY"
    ip -n "$NS_PEER" addr add "$cidr" dev "$VETH_PEER"
    for ns in "$NS_STACK:$VETH_STACK" "$NS_RELAY:gz${id}r0" "$NS_RELAY:gz${id}r1" "$NS_PEER:$VETH_PEER"; do
        ip -n "${ns%%:*}" link set "${ns#*:}" up
        # Frames as on a wire: full checksums, no segmentation or coalescing offloads (the relay
        # forwards MTU-sized frames only).
        ip netns exec "${ns%%:*}" ethtool -K "${ns#*:}" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    done
    ip netns exec "$NS_RELAY" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$NS_RELAY" "$BUILD/tests/netem_relay" gz${id}r0 gz${id}r1 "${@:2}" 2>"$TEST_TMP/relay.log" &
    RELAY_PID=$!
    TEST_PIDS+=("$RELAY_PID")
}

# serve LOG PATTERN CMD...: starts a server in the background (its pid in SERVER and TEST_PIDS; stdin
# passed on, stderr to LOG) and waits, at most 20 s, until LOG shows PATTERN: the server's own word that
# it listens (nc -v, socat -d -d, sockperf), printed after its bind/listen returned. Preloaded servers
# take a varying while to start their stack; a probe connection would be taken for the one client some
# servers serve. CMD must be a program, not a function (a backgrounded function is a subshell, and
# killing it would leave the server running).
serve() {
    local log=$1 pattern=$2 deadline=$((SECONDS + 20))
    shift 2
    "$@" <&0 2>"$log" &
    SERVER=$!
    TEST_PIDS+=("$SERVER")
    until grep -qs "$pattern" "$log"; do
        kill -0 "$SERVER" 2>/dev/null || fail "the server ended before it listened: $(cat "$log")"
        [ $SECONDS -lt $deadline ] || fail "the server never said it listens: $(cat "$log")"
        sleep 0.1
    done
}

# Sourceable: writes lstack.conf files for stacks on DPDK virtual devices without hugepages, for the
# demo, the benchmarks and the tests (one place for the shape of such a file).

# vdev_conf FILE EAL_PREFIX VDEV MAC ADDR: a stack at ADDR/24 on DPDK vdev VDEV with MAC.
vdev_conf() {
    cat >"$1" <<CONF
backend = "dpdk"
dpdk_args = ["--no-huge", "--no-pci", "--no-shconf", "--file-prefix", "$2", "-m", "128",
             "--no-telemetry", "--log-level", "lib.eal:error", "--vdev", "$3"]
devices = "$4"
host_addr = "$5"
mask_addr = "255.255.255.0"
CONF
}

# memif_pair_conf DIR TAG SOCKET NET [MTU]: DIR/memif-server.conf (NET.1, serving the memif on SOCKET) and
# DIR/memif-client.conf (NET.2): two stacks in two processes joined by DPDK net_memif (shared memory,
# no kernel networking). Their EAL file prefixes are gz-TAG-server and gz-TAG-client. With MTU (above
# 1500) both stacks run that MTU and memif's buffers hold a whole frame (memif carries long frames as
# descriptor chains: docs/dpdk.md).
memif_pair_conf() {
    local dir=$1 tag=$2 sock=$3 net=$4 mtu=${5:-} role n mac vdev
    for role in server client; do
        if [ $role = server ]; then n=1; else n=2; fi
        mac=02:00:00:00:00:0$n
        vdev="net_memif0,role=$role,socket=$sock,mac=$mac"
        [ -n "$mtu" ] && vdev="$vdev,bsize=$((mtu + 26))" # + Ethernet header, VLAN tag and FCS
        vdev_conf "$dir/memif-$role.conf" "gz-$tag-$role" "$vdev" "$mac" "$net.$n"
        [ -n "$mtu" ] && echo "mtu = $mtu" >>"$dir/memif-$role.conf"
    done
    return 0
}

using Gazelle.Stack;
using Gazelle.Wire;

namespace Gazelle.Config;

/// <summary>Which device layer carries the stack's frames.</summary>
public enum DeviceBackend
{
    /// <summary>A DPDK port as <c>dpdk_args</c> describe it (a PCI NIC, or any vdev given there).</summary>
    Dpdk,
    /// <summary>DPDK's <c>net_memif</c> shared-memory interface on <c>memif_socket</c>.</summary>
    Memif,
    /// <summary>DPDK's <c>net_af_packet</c> on the kernel interface <c>af_packet_iface</c>.</summary>
    AfPacket,
    /// <summary>The in-memory user-veth (tests and simulations; no DPDK).</summary>
    InMemory,
}

public enum LogLevel
{
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// <summary>
/// The typed content of lstack.conf. Keys keep Gazelle's names where Gazelle has them, so an existing
/// lstack.conf mostly loads unchanged; every key is described in docs/configuration.md. Defaults are those of
/// Gazelle where it has the key. Immutable; build one with <see cref="GazelleConfigParser"/>.
/// </summary>
public sealed record GazelleConfig
{
    /// <summary>File the configuration came from (for messages).</summary>
    public string Source { get; init; } = "";

    // --- device ---
    public DeviceBackend Backend { get; init; } = DeviceBackend.Dpdk;
    public IReadOnlyList<string> DpdkArgs { get; init; } = [];
    /// <summary>MAC of the port to use (<c>devices</c>); required with the dpdk backend.</summary>
    public MacAddress? Devices { get; init; }
    public string MemifSocket { get; init; } = "/run/gazelle/memif.sock";
    public string AfPacketInterface { get; init; } = "";
    public int NicRxQueueSize { get; init; } = 4096;
    public int NicTxQueueSize { get; init; } = 2048;
    public int NicReadNum { get; init; } = 128;
    /// <summary>VLAN id to tag with, or -1 for none; 0 and 4095 (reserved by IEEE 802.1Q) are accepted, as Gazelle
    /// accepts them, and mean none.</summary>
    public int NicVlanMode { get; init; } = -1;
    /// <summary>L3 MTU of the port, 0 keeping the device's (<c>mtu</c>); above the device's range only on a driver that
    /// carries long frames as chains (net_memif; docs/dpdk.md).</summary>
    public int Mtu { get; init; }

    // --- addressing ---
    public Ipv4Address HostAddr { get; init; }
    public Ipv4Address MaskAddr { get; init; }
    public Ipv4Address GatewayAddr { get; init; } = Ipv4Address.Any;

    // --- threads ---
    /// <summary>CPUs the stack threads are bound to, one stack (and one NIC queue) per CPU.</summary>
    public IReadOnlyList<int> NumCpus { get; init; } = [];
    /// <summary>CPUs of wake-up threads, one per stack (empty: none).</summary>
    public IReadOnlyList<int> NumWakeup { get; init; } = [];
    /// <summary>Number of stacks (and NIC queue pairs): one per CPU of <see cref="NumCpus"/>, at least one.</summary>
    public int StackCount => Math.Max(1, NumCpus.Count);

    // --- sizing ---
    public int TcpConnCount { get; init; } = 1500;
    public int MbufCountPerConn { get; init; } = 170;
    /// <summary>Explicit packet-buffer pool size per stack; 0 derives it (see <see cref="EffectiveMbufPoolSize"/>).</summary>
    public int MbufPoolSize { get; init; }
    public int UdpSocketCount { get; init; } = 1024;
    /// <summary>Send and receive rings of a connection whose program set no SO_SNDBUF/SO_RCVBUF. 1 MiB: with 256 KiB each, an
    /// iperf3 stream over memif at MTU 9000 kept only ~29 segments in flight, and every scheduling hiccup of either end
    /// emptied the pipe (30-40% fewer Gbit/s and a quarter more CPU per GB on a loaded machine, bench/e2e/bulk-cost.sh);
    /// 4 MiB was slower again (cold rings). Linux autotunes its loopback buffers to several MB.</summary>
    public int TcpSendBuffer { get; init; } = 1024 * 1024;
    public int TcpRecvBuffer { get; init; } = 1024 * 1024;
    /// <summary>How long a connection stays in TIME_WAIT (2MSL), in milliseconds.</summary>
    public int TcpTimeWaitMs { get; init; } = 60_000;
    public bool UdpEnable { get; init; } = true;

    // --- per-loop budgets (Gazelle names) ---
    public int SendConnectNumber { get; init; } = 4;
    public int ReadConnectNumber { get; init; } = 4;
    public int RpcNumber { get; init; } = 4;

    // --- accepted for compatibility ---
    public bool LowPowerMode { get; init; }
    public bool ListenShadow { get; init; }

    public LogLevel LogLevel { get; init; } = LogLevel.Info;

    /// <summary><see cref="MbufPoolSize"/> if set, else <c>tcp_conn_count * mbuf_count_per_conn</c> (Gazelle's rule).</summary>
    public long EffectiveMbufPoolSize => MbufPoolSize > 0 ? MbufPoolSize : (long)TcpConnCount * MbufCountPerConn;

    /// <summary>The per-stack settings the stack itself consumes.</summary>
    public StackConfig ToStackConfig() => new()
    {
        Address = HostAddr,
        Netmask = MaskAddr,
        Gateway = GatewayAddr,
        MaxTcpConnections = TcpConnCount,
        MaxUdpSockets = UdpEnable ? UdpSocketCount : 0,
        TcpSendBufferBytes = TcpSendBuffer,
        TcpReceiveBufferBytes = TcpRecvBuffer,
        VlanId = NicVlanMode is >= 1 and <= 4094 ? NicVlanMode : -1,
        TimeWaitMicros = TcpTimeWaitMs * 1000L,
    };
}

using Gazelle.Wire;

namespace Gazelle.Stack;

/// <summary>Addressing and sizing of one stack (from lstack.conf in production, set directly in tests).</summary>
public sealed record StackConfig
{
    public required Ipv4Address Address { get; init; }
    public required Ipv4Address Netmask { get; init; }
    public Ipv4Address Gateway { get; init; } = Ipv4Address.Any;
    /// <summary>Seed for ISNs (RFC 6528 secret), ephemeral ports (RFC 6056) and SYN cookies.</summary>
    public ulong Secret { get; init; } = 0x9E37_79B9_7F4A_7C15;
    public int MaxTcpConnections { get; init; } = 4096;
    public int MaxUdpSockets { get; init; } = 1024;
    public int TcpSendBufferBytes { get; init; } = 256 * 1024;
    public int TcpReceiveBufferBytes { get; init; } = 256 * 1024;
    /// <summary>Bytes of empty TCP send/receive rings a stack keeps for reuse; rings beyond it return to the GC.
    /// Rings are held only while bytes are queued, so this bounds idle memory, not the windows.</summary>
    public long TcpRingPoolBytes { get; init; } = 32L * 1024 * 1024;
    /// <summary>Received frames whose in-order TCP payload a stack may keep until the application reads it
    /// (recv then copies straight from the frame: one copy per byte fewer). The stack also caps it at a quarter
    /// of its NIC's buffer pool; beyond it payload is copied into the receive ring. 0 turns it off.</summary>
    public int TcpHeldFrames { get; init; } = 512;
    /// <summary>IEEE 802.1Q VLAN id, 1..4094: the stack tags every frame it sends with it and accepts only frames
    /// tagged with it. -1 (the default): untagged, and tagged frames are dropped.</summary>
    public int VlanId { get; init; } = -1;
    /// <summary>Largest SO_RCVBUF / SO_SNDBUF request honoured, as Linux's net.core.rmem_max / wmem_max
    /// (the preload layer copies the kernel's; these defaults are Linux's own).</summary>
    public int ReceiveBufferMax { get; init; } = 212992;
    public int SendBufferMax { get; init; } = 212992;
    /// <summary>TIME_WAIT duration (2MSL, RFC 9293 §3.10.7.4); Linux's 60 s by default.</summary>
    public long TimeWaitMicros { get; init; } = 60_000_000;
}

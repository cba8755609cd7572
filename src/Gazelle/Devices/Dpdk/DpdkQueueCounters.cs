namespace Gazelle.Devices.Dpdk;

/// <summary>Drops and slow paths of one queue of a <see cref="DpdkPort"/> (written by the queue's owner thread only).</summary>
public sealed class DpdkQueueCounters
{
    /// <summary>Multi-segment frames folded into their first segment's tailroom.</summary>
    public long RxLinearizedInPlace { get; internal set; }
    /// <summary>Multi-segment frames copied into one fresh mbuf (the one copy on the receive path).</summary>
    public long RxLinearizedCopied { get; internal set; }
    /// <summary>Drop: multi-segment frames larger than one mbuf, or no mbuf to linearise into.</summary>
    public long RxMultiSegmentDropped { get; internal set; }
    /// <summary>Receive calls cut short because the queue's pool had no free wrapper (frames stay in the NIC ring).</summary>
    public long RxWrapperShortage { get; internal set; }
    /// <summary>Frames from a non-DPDK pool copied into an mbuf before transmit.</summary>
    public long TxCopiedForeign { get; internal set; }
    /// <summary>Payload spans sent by reference (<see cref="NicOffloads.TxPayloadByReference"/>) that were copied into their
    /// frame's mbuf instead, because the pool had no mbuf to attach them to.</summary>
    public long TxReferencedPayloadCopied { get; internal set; }
    /// <summary>Transmit calls cut short because no mbuf was free for a foreign buffer's copy.</summary>
    public long TxNoMbufForCopy { get; internal set; }
    /// <summary>Frames the device did not take (TX ring full); the caller kept them.</summary>
    public long TxRingFull { get; internal set; }
    /// <summary>Frames longer than the pool's mbufs (cannot be sent); the caller kept them.</summary>
    public long TxOversize { get; internal set; }
}

/// <summary>Link state of a port.</summary>
public readonly record struct DpdkLinkStatus(bool Up, uint SpeedMbps, bool FullDuplex, bool Autoneg);

/// <summary>The device's own counters (rte_eth_stats).</summary>
public readonly record struct DpdkPortStats(ulong RxPackets, ulong TxPackets, ulong RxBytes, ulong TxBytes,
    ulong RxMissed, ulong RxErrors, ulong TxErrors, ulong RxNoMbuf);

/// <summary>What the device found checking a received frame's checksums (when RX checksum offload is enabled).</summary>
[Flags]
public enum DpdkRxChecksum
{
    /// <summary>Not checked (offload off, or not an IPv4/TCP/UDP frame): verify in software.</summary>
    Unknown = 0,
    IpGood = 1 << 0,
    IpBad = 1 << 1,
    L4Good = 1 << 2,
    L4Bad = 1 << 3,
}

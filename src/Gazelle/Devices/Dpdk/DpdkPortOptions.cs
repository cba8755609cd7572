namespace Gazelle.Devices.Dpdk;

/// <summary>How to set up a <see cref="DpdkPort"/> (from lstack.conf in production, set directly in tests).</summary>
public sealed record DpdkPortOptions
{
    /// <summary>RX/TX queue pairs: one per stack (each stack owns one queue and its pool).</summary>
    public int Queues { get; init; } = 1;
    public int RxDescriptors { get; init; } = 1024;
    public int TxDescriptors { get; init; } = 1024;
    /// <summary>Mbufs per queue pool; 0 = enough for the RX ring, the TX ring and <see cref="MbufsInFlight"/>.</summary>
    public int MbufsPerQueue { get; init; }
    /// <summary>Mbufs a stack may hold at once beyond the rings (reassembly, send/receive queues) when sizing automatically.</summary>
    public int MbufsInFlight { get; init; } = 4096;
    public int MbufCacheSize { get; init; } = 256;
    /// <summary>Frames per rx_burst/tx_burst call (the native arrays are sized from it).</summary>
    public int BurstSize { get; init; } = 32;
    /// <summary>L3 MTU to set; 0 keeps the device's. Above 1500 (jumbo) only if the device's max MTU allows.</summary>
    public int Mtu { get; init; }
    public bool Promiscuous { get; init; }
    /// <summary>Offloads the stack is willing to use; those the device also offers are enabled.</summary>
    public NicOffloads AllowedOffloads { get; init; } = NicOffloads.Ipv4ChecksumRx | NicOffloads.TcpUdpChecksumRx |
        NicOffloads.Ipv4ChecksumTx | NicOffloads.TcpUdpChecksumTx | NicOffloads.TcpSegmentation | NicOffloads.RssHash | NicOffloads.RxChecksumUnnecessary |
        NicOffloads.TxPayloadByReference;
    /// <summary>RSS key (its length must equal the device's hash key size); null keeps the driver's.</summary>
    public byte[]? RssKey { get; init; }
    /// <summary>Redirection table: queue id per entry (length = the device's RETA size); null spreads entries round-robin.</summary>
    public ushort[]? RssRedirectionTable { get; init; }
    /// <summary>Use RSS even with one queue (for the hash value in each received frame).</summary>
    public bool RssWithSingleQueue { get; init; }
    /// <summary>
    /// An lcore id every thread that receives or transmits on the port acts as (-1: none, each thread keeps
    /// its own). Only for a port whose callers are serialized, as the preload's threads are by the layer's lock:
    /// then the thread of the moment uses that lcore's mempool cache. A program thread EAL did not start has no
    /// lcore, so every mbuf it allocated came cold from the pool's ring (wrk's worker: the first touch of each
    /// mbuf was ~5% of its CPU, and as much again inside memif's receive, perf).
    /// </summary>
    public int ActAsLcore { get; init; } = -1;
    /// <summary>Buffers each queue's pool keeps allocated for the next transmit rents (<see cref="DpdkPacketPool.ReadyCapacity"/>;
    /// 0: none). Only for a port whose pools are used by one thread at a time (as <see cref="ActAsLcore"/>).</summary>
    public int TxReadyBuffers { get; init; }
}

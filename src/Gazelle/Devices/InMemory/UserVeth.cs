using Gazelle.Buffers;
using Gazelle.Devices.Rss;
using Gazelle.Wire;

namespace Gazelle.Devices.InMemory;

/// <summary>Shape of a <see cref="UserVeth"/>.</summary>
public sealed record UserVethOptions
{
    public required MacAddress MacAddress { get; init; }
    /// <summary>Largest L3 packet; frames longer than MTU + Ethernet header (+ one VLAN tag) are dropped.</summary>
    public int Mtu { get; init; } = 1500;
    /// <summary>Queue pairs (each an RX ring and a TX ring).</summary>
    public int QueueCount { get; init; } = 1;
    /// <summary>Slots per ring, a power of two.</summary>
    public int RingSize { get; init; } = 512;
    /// <summary>Buffers in the transmit pool the host rents from (<see cref="INic.TxPool"/>).</summary>
    public int TxPoolSize { get; init; } = 1024;
    /// <summary>Buffers in the receive pool frames arriving from the wire are copied into.</summary>
    public int RxPoolSize { get; init; } = 1024;
    public int BufferSize { get; init; } = 2048 + 128;
    public int Headroom { get; init; } = 128;
    /// <summary>RSS key; null for <see cref="ToeplitzHash.MicrosoftKey"/>.</summary>
    public byte[]? RssKey { get; init; }
    /// <summary>Size of the RSS redirection table (power of two).</summary>
    public int RetaSize { get; init; } = 128;
    /// <summary>For diagnostics only.</summary>
    public string Name { get; init; } = "uveth";
}

/// <summary>Counters of one <see cref="UserVeth"/>. Every frame the device drops is counted in exactly one
/// <c>Drop*</c> field.</summary>
public sealed class UserVethCounters
{
    /// <summary>Frames handed to the host by <see cref="UserVeth.Receive"/>.</summary>
    public long RxFrames;
    /// <summary>Bytes of those frames.</summary>
    public long RxBytes;
    /// <summary>Frames the host handed over in <see cref="UserVeth.Transmit"/> (accepted onto a TX ring).</summary>
    public long TxFrames;
    /// <summary>Bytes of those frames.</summary>
    public long TxBytes;
    /// <summary>Frames from the wire dropped because the chosen RX ring was full (the host polls too slowly).</summary>
    public long DropRxRingFull;
    /// <summary>Frames from the wire dropped because the RX pool had no free buffer.</summary>
    public long DropRxNoBuffer;
    /// <summary>Frames from the wire longer than MTU + link headers, or longer than a pool buffer.</summary>
    public long DropRxOversize;
    /// <summary>Frames from the wire shorter than an Ethernet header.</summary>
    public long DropRxRunt;
    /// <summary>Frames the host transmitted that were longer than MTU + link headers (taken and released).</summary>
    public long DropTxOversize;
    /// <summary>Transmit calls that returned early because a TX ring was full (not a drop: the caller keeps the
    /// frames it was not relieved of).</summary>
    public long TxRingFull;
}

/// <summary>
/// The seed's <b>user-veth</b>: an in-memory NIC whose hardware queues are software rings, with software RSS
/// (<see cref="ToeplitzHash"/>, as <c>rte_softrss</c> computes it) spreading received flows over them.
/// <para>
/// Host side (<see cref="INic"/>): the stack rents from <see cref="TxPool"/>, <see cref="Transmit"/>s onto a TX
/// ring and <see cref="Receive"/>s from an RX ring. Wire side: <see cref="DeliverFromWire"/> copies a frame into
/// a buffer of the device's own RX pool and puts it on the RX ring its RSS hash selects;
/// <see cref="DrainTransmitted"/> takes frames off the TX rings (a <see cref="UserVbridge"/> or a test does this).
/// Frames cross devices only by copy, so a buffer never leaves its pool's device.
/// </para>
/// <para>
/// Thread-safety: none. Every call on one device, its pools included, must come from one thread at a time
/// (the simulation loop, or a stack that drives both sides). Rings are single-producer/single-consumer by
/// construction but carry no memory barriers.
/// </para>
/// </summary>
public sealed class UserVeth : INic, IDisposable
{
    private const int EthHeaderLength = 14;
    private const int VlanTagLength = 4;

    private readonly PacketRing[] _rx;
    private readonly PacketRing[] _tx;
    private readonly NativePacketPool _txPool;
    private readonly NativePacketPool _rxPool;
    private readonly ToeplitzHash _hasher;
    private readonly int _maxFrame;
    private int _drainCursor;
    private bool _disposed;

    public UserVeth(UserVethOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.QueueCount <= 0) throw new ArgumentOutOfRangeException(nameof(options), "QueueCount must be positive");
        if (options.Mtu < 68) throw new ArgumentOutOfRangeException(nameof(options), "MTU below the IPv4 minimum of 68 (RFC 791)");
        if (options.BufferSize - options.Headroom < options.Mtu + EthHeaderLength + VlanTagLength)
            throw new ArgumentOutOfRangeException(nameof(options), "BufferSize - Headroom must hold a full frame (MTU + 18)");
        Options = options;
        MacAddress = options.MacAddress;
        Mtu = options.Mtu;
        _maxFrame = options.Mtu + EthHeaderLength + VlanTagLength;
        _rx = new PacketRing[options.QueueCount];
        _tx = new PacketRing[options.QueueCount];
        for (int q = 0; q < options.QueueCount; q++)
        {
            _rx[q] = new PacketRing(options.RingSize);
            _tx[q] = new PacketRing(options.RingSize);
        }
        _txPool = new NativePacketPool(options.TxPoolSize, options.BufferSize, options.Headroom);
        _rxPool = new NativePacketPool(options.RxPoolSize, options.BufferSize, options.Headroom);
        _hasher = new ToeplitzHash(options.RssKey ?? ToeplitzHash.MicrosoftKey);
        Reta = new RedirectionTable(options.QueueCount, options.RetaSize);
    }

    public UserVethOptions Options { get; }
    public MacAddress MacAddress { get; }
    public int Mtu { get; }
    public int QueueCount => _rx.Length;
    public NicOffloads Offloads => NicOffloads.RssHash;
    public IPacketPool TxPool => _txPool;
    /// <summary>Pool the device copies received frames into (the host releases them back here).</summary>
    public IPacketPool RxPool => _rxPool;
    public RedirectionTable Reta { get; }
    public ToeplitzHash RssHasher => _hasher;
    public UserVethCounters Counters { get; } = new();
    public string Name => Options.Name;

    /// <summary>Frames waiting on the TX rings for the wire side.</summary>
    public int PendingTransmit
    {
        get
        {
            int n = 0;
            foreach (var r in _tx) n += r.Count;
            return n;
        }
    }

    /// <summary>Frames waiting on RX ring <paramref name="queue"/> for the host.</summary>
    public int PendingReceive(int queue) => _rx[queue].Count;

    public int Receive(int queue, Span<PacketBuffer> frames)
    {
        if ((uint)queue >= (uint)_rx.Length) ThrowHelpers.ArgumentOutOfRange(nameof(queue));
        int n = _rx[queue].Dequeue(frames);
        var c = Counters;
        c.RxFrames += n;
        for (int i = 0; i < n; i++) c.RxBytes += frames[i].Length;
        return n;
    }

    public int Transmit(int queue, ReadOnlySpan<PacketBuffer> frames)
    {
        if ((uint)queue >= (uint)_tx.Length) ThrowHelpers.ArgumentOutOfRange(nameof(queue));
        var ring = _tx[queue];
        var c = Counters;
        for (int i = 0; i < frames.Length; i++)
        {
            var f = frames[i];
            if (f.Length > _maxFrame)
            {
                c.DropTxOversize++;
                f.Release();
                continue;
            }
            if (!ring.TryEnqueue(f))
            {
                c.TxRingFull++;
                return i;
            }
            c.TxFrames++;
            c.TxBytes += f.Length;
        }
        return frames.Length;
    }

    /// <summary>
    /// Wire side: a frame arrives. It is copied into a buffer of this device's RX pool, hashed, and queued on the
    /// RX ring the redirection table picks (queue 0 when the frame is not IPv4). Returns false when the frame was
    /// dropped (and counted).
    /// </summary>
    public bool DeliverFromWire(ReadOnlySpan<byte> frame)
    {
        var c = Counters;
        if (frame.Length < EthHeaderLength)
        {
            c.DropRxRunt++;
            return false;
        }
        if (frame.Length > _maxFrame)
        {
            c.DropRxOversize++;
            return false;
        }
        int queue = 0;
        bool hashed = RssFrameHasher.TryHash(frame, _hasher, out uint hash);
        if (hashed) queue = Reta.QueueOf(hash);
        var ring = _rx[queue];
        if (ring.IsFull)
        {
            c.DropRxRingFull++;
            return false;
        }
        var b = _rxPool.Rent();
        if (b is null)
        {
            c.DropRxNoBuffer++;
            return false;
        }
        if (frame.Length > b.Tailroom)
        {
            b.Release();
            c.DropRxOversize++;
            return false;
        }
        frame.CopyTo(b.Append(frame.Length));
        b.Queue = queue;
        b.RssHash = hash;
        ring.TryEnqueue(b);
        return true;
    }

    /// <summary>
    /// Wire side: takes up to <c>into.Length</c> frames the host transmitted, visiting TX queues round-robin one
    /// frame at a time (deterministic order). The caller owns the returned buffers (they belong to whatever pool
    /// the host rented them from) and must release them.
    /// </summary>
    public int DrainTransmitted(Span<PacketBuffer> into)
    {
        int n = 0;
        int queues = _tx.Length;
        int emptyInARow = 0;
        while (n < into.Length && emptyInARow < queues)
        {
            var b = _tx[_drainCursor].TryDequeue();
            _drainCursor = _drainCursor + 1 == queues ? 0 : _drainCursor + 1;
            if (b is null)
            {
                emptyInARow++;
                continue;
            }
            emptyInARow = 0;
            into[n++] = b;
        }
        return n;
    }

    /// <summary>Releases every frame still on a ring, then frees the pools' memory. Buffers the host still holds
    /// must be released first.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var r in _rx) r.ReleaseAll();
        foreach (var r in _tx) r.ReleaseAll();
        _txPool.Dispose();
        _rxPool.Dispose();
    }

    public override string ToString() => $"{Name} ({MacAddress}, {QueueCount} queues)";
}

using Gazelle.Buffers;
using Gazelle.Devices.Rss;
using Gazelle.Time;
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
    /// <summary>Line rate of the link out of this port in bits per second; 0 = infinitely fast (frames reach
    /// the wire side as soon as they are transmitted). With a rate, each TX queue serialises its frames one
    /// after another, each taking (length + 24 bytes of preamble, FCS and inter-frame gap) × 8 / rate.</summary>
    public long LineRateBitsPerSecond { get; init; }
    /// <summary>Propagation delay added after serialisation before the wire side can take a frame.</summary>
    public TimeSpanMicros Latency { get; init; }
    /// <summary>Declares <see cref="NicOffloads.TxPayloadByReference"/> and behaves as such a device: Transmit copies a
    /// frame's payload given by reference into the frame's own buffer before it returns (as net_memif copies frames
    /// into its shared ring), so the stack's by-reference path runs in the in-memory tests.</summary>
    public bool TxPayloadByReference { get; init; }
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
/// With <see cref="UserVethOptions.LineRateBitsPerSecond"/> or <see cref="UserVethOptions.Latency"/> set, the port is
/// a link with a line rate and a propagation delay: a frame becomes drainable only once it has been serialised
/// behind the frames before it and has crossed the link, in the virtual time given by <see cref="AdvanceTo"/>
/// (a simulation jumps its clock to <see cref="NextDeadline"/>).
/// Frames cross devices only by copy, so a buffer never leaves its pool's device.
/// </para>
/// <para>
/// Thread-safety: none. Every call on one device, its pools included, must come from one thread at a time
/// (the simulation loop, or a stack that drives both sides). Rings are single-producer/single-consumer by
/// construction but carry no memory barriers.
/// </para>
/// </summary>
public sealed class UserVeth : INic, ITimedNic, IDisposable
{
    private const int EthHeaderLength = 14;
    private const int VlanTagLength = 4;
    /// <summary>Preamble and start delimiter (8), FCS (4), inter-frame gap (12): on the wire, not in the data.</summary>
    private const int WireOverheadBytes = 24;

    private readonly PacketRing[] _rx;
    private readonly PacketRing[] _tx;
    private readonly NativePacketPool _txPool;
    private readonly NativePacketPool _rxPool;
    private readonly ToeplitzHash _hasher;
    private readonly int _maxFrame;
    private int _drainCursor;
    private bool _disposed;
    // Link model (only when a rate or latency is set): per TX queue, when each queued frame reaches the far end
    // (a FIFO beside the ring, same capacity), and when the queue's line is free again, in nanoseconds.
    private readonly bool _timed;
    private readonly long[][] _due = [];
    private readonly long[] _dueHead = [], _dueTail = [];
    private readonly long[] _lineFreeNs = [];
    private Instant _now;

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
        if (options.LineRateBitsPerSecond < 0 || options.Latency.Value < 0)
            throw new ArgumentOutOfRangeException(nameof(options), "line rate and latency must not be negative");
        _timed = options.LineRateBitsPerSecond > 0 || options.Latency.Value > 0;
        if (_timed)
        {
            _due = new long[options.QueueCount][];
            for (int q = 0; q < options.QueueCount; q++) _due[q] = new long[options.RingSize];
            _dueHead = new long[options.QueueCount];
            _dueTail = new long[options.QueueCount];
            _lineFreeNs = new long[options.QueueCount];
        }
    }

    public UserVethOptions Options { get; }
    public MacAddress MacAddress { get; }
    public int Mtu { get; }
    public int QueueCount => _rx.Length;
    public NicOffloads Offloads => Options.TxPayloadByReference ? NicOffloads.RssHash | NicOffloads.TxPayloadByReference : NicOffloads.RssHash;
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
            if (f.ExternalLength != 0) TakeInExternal(f);
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
            if (_timed) Schedule(queue, f.Length);
            c.TxFrames++;
            c.TxBytes += f.Length;
        }
        return frames.Length;
    }

    /// <summary>Copies a frame's payload by reference behind its data (the copy such a device makes while transmitting).</summary>
    private unsafe void TakeInExternal(PacketBuffer f)
    {
        if (!Options.TxPayloadByReference) ThrowHelpers.InvalidOperation("a frame with payload by reference reached a device that does not take them");
        int n1 = f.ExternalLength1, n2 = f.ExternalLength2;
        if (n1 + n2 > f.Tailroom) ThrowHelpers.InvalidOperation("a frame with payload by reference does not fit its buffer");
        new ReadOnlySpan<byte>(f.ExternalData1, n1).CopyTo(f.Append(n1));
        new ReadOnlySpan<byte>(f.ExternalData2, n2).CopyTo(f.Append(n2));
        f.SetExternal(null, 0, null, 0);
    }

    /// <summary>The link model learns the time from the host's poll loop (and from the bridge).</summary>
    public void AdvanceTo(Instant now)
    {
        if (now > _now) _now = now;
    }

    /// <summary>When the next queued frame reaches the far end (<see cref="Instant.Never"/> without a link model
    /// or with nothing queued).</summary>
    public Instant NextDeadline
    {
        get
        {
            if (!_timed) return Instant.Never;
            long d = long.MaxValue;
            for (int q = 0; q < _tx.Length; q++)
                if (_dueHead[q] != _dueTail[q]) d = Math.Min(d, _due[q][(int)(_dueHead[q] & (_due[q].Length - 1))]);
            return new Instant(d);
        }
    }

    private void Schedule(int queue, int length)
    {
        long rate = Options.LineRateBitsPerSecond;
        long start = Math.Max(_now.Microseconds * 1000, _lineFreeNs[queue]);
        long end = rate > 0 ? start + (length + WireOverheadBytes) * 8L * 1_000_000_000 / rate : start;
        _lineFreeNs[queue] = end;
        var due = _due[queue];
        due[(int)(_dueTail[queue]++ & (due.Length - 1))] = (end + 999) / 1000 + Options.Latency.Value;
    }

    private bool HeadDue(int queue) =>
        !_timed || (_dueHead[queue] != _dueTail[queue] && _due[queue][(int)(_dueHead[queue] & (_due[queue].Length - 1))] <= _now.Microseconds);

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
    /// Wire side: takes up to <c>into.Length</c> frames the host transmitted (with a link model, only those that
    /// have reached the far end by the time last passed to <see cref="AdvanceTo"/>), visiting TX queues round-robin one
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
            int q = _drainCursor;
            var b = HeadDue(q) ? _tx[q].TryDequeue() : null; // with a link model, only frames that have arrived
            _drainCursor = _drainCursor + 1 == queues ? 0 : _drainCursor + 1;
            if (b is null)
            {
                emptyInARow++;
                continue;
            }
            if (_timed) _dueHead[q]++;
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

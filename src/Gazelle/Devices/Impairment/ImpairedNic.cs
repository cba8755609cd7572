using Gazelle.Buffers;
using Gazelle.Devices.InMemory;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Devices.Impairment;

/// <summary>What an <see cref="ImpairedNic"/> does to the frames of one direction. Rates are probabilities per frame.</summary>
public sealed record ImpairmentProfile
{
    public static readonly ImpairmentProfile None = new();

    /// <summary>Probability that a frame is dropped.</summary>
    public double DropRate { get; init; }
    /// <summary>Probability that a (surviving) frame is sent twice.</summary>
    public double DuplicateRate { get; init; }
    /// <summary>Probability that one bit of a frame is flipped (past the Ethernet header when the frame has more,
    /// so the frame still reaches its destination and the receiver's checksums must catch it).</summary>
    public double CorruptRate { get; init; }
    /// <summary>Probability that a frame is held back an extra <see cref="ReorderDelay"/>, letting later frames overtake it.</summary>
    public double ReorderRate { get; init; }
    /// <summary>Extra hold of a reordered frame.</summary>
    public TimeSpanMicros ReorderDelay { get; init; } = new(1000);
    /// <summary>Fixed delay added to every frame.</summary>
    public TimeSpanMicros Latency { get; init; }
    /// <summary>Uniform random delay in [0, Jitter) added to every frame (can reorder too).</summary>
    public TimeSpanMicros Jitter { get; init; }

    internal void Validate(string name)
    {
        if (!IsRate(DropRate) || !IsRate(DuplicateRate) || !IsRate(CorruptRate) || !IsRate(ReorderRate))
            throw new ArgumentOutOfRangeException(name, "rates must be within [0, 1]");
        if (Latency.Value < 0 || Jitter.Value < 0 || ReorderDelay.Value < 0)
            throw new ArgumentOutOfRangeException(name, "delays must not be negative");
    }

    private static bool IsRate(double r) => r >= 0 && r <= 1;
}

/// <summary>Counters of one direction of an <see cref="ImpairedNic"/>.</summary>
public sealed class ImpairmentCounters
{
    /// <summary>Frames that entered the impairment in this direction.</summary>
    public long Frames;
    /// <summary>Frames dropped on purpose (<see cref="ImpairmentProfile.DropRate"/>).</summary>
    public long Dropped;
    /// <summary>Extra copies made (<see cref="ImpairmentProfile.DuplicateRate"/>).</summary>
    public long Duplicated;
    /// <summary>Frames with a flipped bit.</summary>
    public long Corrupted;
    /// <summary>Frames held back to be overtaken.</summary>
    public long Reordered;
    /// <summary>Frames held for any delay (latency, jitter or reorder).</summary>
    public long Delayed;
    /// <summary>Frames dropped because the hold queue for delayed frames was full.</summary>
    public long DropHoldFull;
    /// <summary>Duplicates not made because the pool had no buffer (the original still goes).</summary>
    public long DuplicateNoBuffer;
    /// <summary>Delayed or duplicate frames dropped because the wrapped device refused them when they came due (TX),
    /// or because the per-queue ready ring was full (RX).</summary>
    public long DropDeviceFull;
}

/// <summary>
/// A decorator that impairs any <see cref="INic"/>: drops, duplicates, corrupts, reorders and delays frames with
/// per-direction rates, deterministically from a seed (each direction has its own generator, and every frame
/// draws the same number of random values, so a given sequence of calls always gives the same outcome).
/// <para>
/// TX impairs frames passed to <see cref="Transmit"/> before the wrapped device sees them; RX impairs frames the
/// wrapped device returns before the caller sees them. Delays need time: the caller passes it through
/// <see cref="AdvanceTo"/> (forwarded to the wrapped device when it is an <see cref="ITimedNic"/>); frames are
/// released when their instant has come. Allocation-free after construction; not thread-safe; does not dispose
/// the wrapped device.
/// </para>
/// </summary>
public sealed class ImpairedNic : INic, ITimedNic, IDisposable
{
    private const int EthHeaderLength = 14;
    private const int ScratchSize = 64;

    private readonly INic _inner;
    private readonly SplitMixRandom _txRandom;
    private readonly SplitMixRandom _rxRandom;
    private readonly HoldQueue _held;
    private readonly PacketRing[] _ready;
    private readonly PacketBuffer[] _scratch = new PacketBuffer[ScratchSize];
    private readonly PacketBuffer[] _one = new PacketBuffer[1];
    private Instant _now;

    public ImpairedNic(INic inner, ulong seed, ImpairmentProfile transmit, ImpairmentProfile receive,
        int holdCapacity = 4096, int readyRingSize = 1024)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(transmit);
        ArgumentNullException.ThrowIfNull(receive);
        transmit.Validate(nameof(transmit));
        receive.Validate(nameof(receive));
        _inner = inner;
        Transmitting = transmit;
        Receiving = receive;
        _txRandom = new SplitMixRandom(seed);
        _rxRandom = new SplitMixRandom(seed ^ 0xA5A5_5A5A_C3C3_3C3CUL);
        _held = new HoldQueue(holdCapacity);
        _ready = new PacketRing[inner.QueueCount];
        for (int q = 0; q < _ready.Length; q++) _ready[q] = new PacketRing(readyRingSize);
    }

    public INic Inner => _inner;
    public ImpairmentProfile Transmitting { get; }
    public ImpairmentProfile Receiving { get; }
    public ImpairmentCounters TxCounters { get; } = new();
    public ImpairmentCounters RxCounters { get; } = new();
    /// <summary>Frames currently held for a delay (both directions).</summary>
    public int HeldCount => _held.Count;

    public MacAddress MacAddress => _inner.MacAddress;
    public int Mtu => _inner.Mtu;
    public int QueueCount => _inner.QueueCount;
    public NicOffloads Offloads => _inner.Offloads & ~(NicOffloads.RxChecksumUnnecessary | NicOffloads.TxPayloadByReference); // it may corrupt and delay frames
    public IPacketPool TxPool => _inner.TxPool;
    public Instant Now => _now;

    public Instant NextDeadline
    {
        get
        {
            var mine = _held.Count > 0 ? new Instant(_held.PeekTime) : Instant.Never;
            return _inner is ITimedNic t ? Instant.Min(mine, t.NextDeadline) : mine;
        }
    }

    public void AdvanceTo(Instant now)
    {
        if (now > _now) _now = now;
        if (_inner is ITimedNic t) t.AdvanceTo(now);
        while (_held.Count > 0 && _held.PeekTime <= _now.Microseconds)
        {
            _held.Pop(out var buffer, out int queue, out bool isTx);
            if (isTx) SendNow(queue, buffer, TxCounters);
            else if (!_ready[queue].TryEnqueue(buffer))
            {
                RxCounters.DropDeviceFull++;
                buffer.Release();
            }
        }
    }

    public int Transmit(int queue, ReadOnlySpan<PacketBuffer> frames)
    {
        if ((uint)queue >= (uint)_ready.Length) ThrowHelpers.ArgumentOutOfRange(nameof(queue));
        var c = TxCounters;
        for (int i = 0; i < frames.Length; i++)
        {
            var f = frames[i];
            var d = Decide(Transmitting, _txRandom, f.Length);
            c.Frames++;
            if (d.Drop)
            {
                c.Dropped++;
                f.Release();
                continue;
            }
            if (d.CorruptBit >= 0) Corrupt(f, d.CorruptBit, c);
            PacketBuffer? dup = d.Duplicate ? Copy(f, _inner.TxPool, c) : null;
            if (d.Delay > 0)
            {
                Hold(f, queue, true, d, c);
            }
            else
            {
                _one[0] = f;
                int taken = _inner.Transmit(queue, _one);
                _one[0] = null!;
                if (taken == 0)
                {
                    // Back-pressure from the device: the caller keeps this frame (as it gave it) and the rest.
                    if (d.CorruptBit >= 0) Corrupt(f, d.CorruptBit, c, undo: true);
                    dup?.Release();
                    return i;
                }
            }
            if (dup is not null)
            {
                if (d.Delay > 0) Hold(dup, queue, true, d, c);
                else SendNow(queue, dup, c);
            }
        }
        return frames.Length;
    }

    public int Receive(int queue, Span<PacketBuffer> frames)
    {
        if ((uint)queue >= (uint)_ready.Length) ThrowHelpers.ArgumentOutOfRange(nameof(queue));
        var ready = _ready[queue];
        int room = Math.Min(ScratchSize, ready.Capacity - ready.Count);
        if (room > 0)
        {
            var scratch = _scratch.AsSpan(0, room);
            int n = _inner.Receive(queue, scratch);
            var c = RxCounters;
            for (int i = 0; i < n; i++)
            {
                var f = scratch[i];
                scratch[i] = null!;
                var d = Decide(Receiving, _rxRandom, f.Length);
                c.Frames++;
                if (d.Drop)
                {
                    c.Dropped++;
                    f.Release();
                    continue;
                }
                if (d.CorruptBit >= 0) Corrupt(f, d.CorruptBit, c);
                PacketBuffer? dup = d.Duplicate ? Copy(f, f.Owner, c) : null;
                if (d.Delay > 0)
                {
                    Hold(f, queue, false, d, c);
                    if (dup is not null) Hold(dup, queue, false, d, c);
                }
                else
                {
                    Ready(ready, f, c);
                    if (dup is not null) Ready(ready, dup, c);
                }
            }
        }
        return ready.Dequeue(frames);
    }

    /// <summary>Releases every held or ready frame (the wrapped device is left alone).</summary>
    public void Dispose()
    {
        while (_held.Count > 0)
        {
            _held.Pop(out var b, out _, out _);
            b.Release();
        }
        foreach (var r in _ready) r.ReleaseAll();
    }

    private readonly struct Decision
    {
        public bool Drop { get; init; }
        public bool Duplicate { get; init; }
        public bool Reorder { get; init; }
        /// <summary>Bit index to flip, or -1.</summary>
        public int CorruptBit { get; init; }
        public long Delay { get; init; }
    }

    // Every frame draws exactly five values, whatever the outcome, so decisions for frame k do not depend on
    // what happened to earlier frames.
    private static Decision Decide(ImpairmentProfile p, SplitMixRandom rng, int length)
    {
        double uDrop = rng.NextDouble();
        double uDup = rng.NextDouble();
        double uCorrupt = rng.NextDouble();
        double uReorder = rng.NextDouble();
        ulong r = rng.NextUInt64();
        bool reorder = uReorder < p.ReorderRate;
        long delay = p.Latency.Value + (reorder ? p.ReorderDelay.Value : 0);
        if (p.Jitter.Value > 0) delay += (long)((r >> 32) * (ulong)p.Jitter.Value >> 32);
        int corruptBit = -1;
        if (uCorrupt < p.CorruptRate && length > 0)
        {
            int first = length > EthHeaderLength ? EthHeaderLength : 0;
            int span = (length - first) * 8;
            corruptBit = first * 8 + (int)(((r & 0xFFFF_FFFF) * (ulong)span) >> 32);
        }
        return new Decision
        {
            Drop = uDrop < p.DropRate,
            Duplicate = uDup < p.DuplicateRate,
            Reorder = reorder,
            CorruptBit = corruptBit,
            Delay = delay,
        };
    }

    private static void Corrupt(PacketBuffer f, int bit, ImpairmentCounters c, bool undo = false)
    {
        f.Data[bit >> 3] ^= (byte)(0x80 >> (bit & 7));
        c.Corrupted += undo ? -1 : 1;
    }

    private static PacketBuffer? Copy(PacketBuffer f, IPacketPool pool, ImpairmentCounters c)
    {
        var b = pool.Rent();
        if (b is null || b.Tailroom < f.Length)
        {
            b?.Release();
            c.DuplicateNoBuffer++;
            return null;
        }
        f.Data.CopyTo(b.Append(f.Length));
        b.Queue = f.Queue;
        b.RssHash = f.RssHash;
        c.Duplicated++;
        return b;
    }

    private void Hold(PacketBuffer f, int queue, bool isTx, in Decision d, ImpairmentCounters c)
    {
        if (!_held.TryPush(_now.Microseconds + d.Delay, f, queue, isTx))
        {
            c.DropHoldFull++;
            f.Release();
            return;
        }
        c.Delayed++;
        if (d.Reorder) c.Reordered++;
    }

    private void SendNow(int queue, PacketBuffer f, ImpairmentCounters c)
    {
        _one[0] = f;
        int taken = _inner.Transmit(queue, _one);
        _one[0] = null!;
        if (taken == 0)
        {
            c.DropDeviceFull++;
            f.Release();
        }
    }

    private static void Ready(PacketRing ready, PacketBuffer f, ImpairmentCounters c)
    {
        if (!ready.TryEnqueue(f))
        {
            c.DropDeviceFull++;
            f.Release();
        }
    }

    /// <summary>A fixed-capacity binary min-heap of held frames ordered by (release time, arrival order), so equal
    /// release times keep their arrival order.</summary>
    private sealed class HoldQueue
    {
        private struct Entry
        {
            public long Time;
            public long Seq;
            public PacketBuffer Buffer;
            public int Queue;
            public bool IsTx;
        }

        private readonly Entry[] _heap;
        private long _seq;

        public HoldQueue(int capacity)
        {
            if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity));
            _heap = new Entry[capacity];
        }

        public int Count { get; private set; }
        public long PeekTime => _heap[0].Time;

        public bool TryPush(long time, PacketBuffer buffer, int queue, bool isTx)
        {
            if (Count == _heap.Length) return false;
            var e = new Entry { Time = time, Seq = _seq++, Buffer = buffer, Queue = queue, IsTx = isTx };
            int i = Count++;
            while (i > 0)
            {
                int parent = (i - 1) >> 1;
                if (!Less(e, _heap[parent])) break;
                _heap[i] = _heap[parent];
                i = parent;
            }
            _heap[i] = e;
            return true;
        }

        public void Pop(out PacketBuffer buffer, out int queue, out bool isTx)
        {
            ref var top = ref _heap[0];
            buffer = top.Buffer;
            queue = top.Queue;
            isTx = top.IsTx;
            var last = _heap[--Count];
            _heap[Count] = default;
            if (Count == 0) return;
            int i = 0;
            while (true)
            {
                int l = 2 * i + 1;
                if (l >= Count) break;
                int r = l + 1;
                int m = r < Count && Less(_heap[r], _heap[l]) ? r : l;
                if (!Less(_heap[m], last)) break;
                _heap[i] = _heap[m];
                i = m;
            }
            _heap[i] = last;
        }

        private static bool Less(in Entry a, in Entry b) => a.Time < b.Time || (a.Time == b.Time && a.Seq < b.Seq);
    }
}

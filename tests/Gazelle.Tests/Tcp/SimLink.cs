using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>
/// Two TcpLayers joined by a simulated full-duplex link: virtual one-way delay, bandwidth (serialisation
/// and a tail-drop queue), and seeded loss, reordering and duplication. Preallocated: moving segments
/// allocates nothing, so the allocation test can run through it.
/// </summary>
internal sealed class SimLink
{
    public static readonly Ipv4Address AddrA = new(10, 0, 0, 1);
    public static readonly Ipv4Address AddrB = new(10, 0, 0, 2);

    private const int Slots = 1 << 14;
    private readonly TcpRepr[] _reprs = new TcpRepr[Slots];
    private readonly byte[][] _payloads = new byte[Slots][];
    private readonly int[] _lengths = new int[Slots];
    private readonly byte[] _dir = new byte[Slots];
    private readonly int[] _free = new int[Slots];
    private int _freeCount;
    private readonly PriorityQueue<int, long> _queue = new(Slots);
    private long _order;
    private readonly Random _rng;
    private readonly long[] _linkFreeAt = new long[2];

    public TcpLayer A { get; }
    public TcpLayer B { get; }
    public long Now;
    public double Loss, Reorder, Duplicate;
    public long DelayMicros = 1000;
    /// <summary>Bytes per microsecond (125 = 1 Gbit/s).</summary>
    public double BytesPerMicro = 125;
    public long QueueLimitBytes = 1 << 20;
    public int Mtu = 1500;
    public long Delivered, Dropped, Duplicated, Reordered, QueueDrops;
    /// <summary>When false, segments are discarded (a cut cable).</summary>
    public bool Up = true;

    public SimLink(int seed, Func<Ipv4Address, ulong, StackConfig>? config = null)
    {
        _rng = new Random(seed);
        for (int i = 0; i < Slots; i++) { _payloads[i] = new byte[9000]; _free[i] = i; }
        _freeCount = Slots;
        config ??= (a, s) => new StackConfig { Address = a, Netmask = new Ipv4Address(255, 255, 255, 0), Secret = s, MaxTcpConnections = 64 };
        A = new TcpLayer(config(AddrA, 0x1111_2222_3333_4444UL), new End(this, 0));
        B = new TcpLayer(config(AddrB, 0x5555_6666_7777_8888UL), new End(this, 1));
    }

    private sealed class End(SimLink link, byte dir) : ITcpOutput
    {
        public bool Send(Ipv4Address local, Ipv4Address remote, in TcpRepr header, ReadOnlySpan<byte> p1, ReadOnlySpan<byte> p2, byte tos)
            => link.Enqueue(dir, header, p1, p2);
        public int PathMtu(Ipv4Address remote) => link.Mtu;
    }

    private bool Enqueue(byte dir, in TcpRepr h, ReadOnlySpan<byte> p1, ReadOnlySpan<byte> p2)
    {
        if (!Up) return true;
        int len = p1.Length + p2.Length;
        int wire = len + 40 + 14;
        if (_rng.NextDouble() < Loss) { Dropped++; return true; }
        // Tail drop: the bytes still waiting for serialisation (not those already on the wire) are the queue.
        double backlog = Math.Max(0, _linkFreeAt[dir] - Now) * BytesPerMicro;
        if (backlog + wire > QueueLimitBytes) { QueueDrops++; return true; }
        int copies = _rng.NextDouble() < Duplicate ? 2 : 1;
        if (copies == 2) Duplicated++;
        long start = Math.Max(Now, _linkFreeAt[dir]);
        long done = start + (long)(wire / BytesPerMicro);
        _linkFreeAt[dir] = done;
        for (int c = 0; c < copies; c++)
        {
            if (_freeCount == 0) { QueueDrops++; return true; }
            int s = _free[--_freeCount];
            _reprs[s] = h;
            p1.CopyTo(_payloads[s]);
            p2.CopyTo(_payloads[s].AsSpan(p1.Length));
            _lengths[s] = len;
            _dir[s] = dir;
            long at = done + DelayMicros + c * 3;
            if (_rng.NextDouble() < Reorder) { at += _rng.Next(1, (int)Math.Max(2, DelayMicros / 2)); Reordered++; }
            _queue.Enqueue(s, (at << 16) | (_order++ & 0xFFFF));
        }
        return true;
    }

    /// <summary>Next event time of the link (long.MaxValue if idle).</summary>
    public long NextDelivery => _queue.TryPeek(out _, out long p) ? p >> 16 : long.MaxValue;

    /// <summary>Delivers every segment due at or before <see cref="Now"/>.</summary>
    public void DeliverDue()
    {
        while (_queue.TryPeek(out int s, out long p) && (p >> 16) <= Now)
        {
            _queue.Dequeue();
            byte dir = _dir[s];
            var to = dir == 0 ? B : A;
            var (src, dst) = dir == 0 ? (AddrA, AddrB) : (AddrB, AddrA);
            Delivered++;
            to.Input(src, dst, _reprs[s], _payloads[s].AsSpan(0, _lengths[s]), new Instant(Now));
            _free[_freeCount++] = s;
        }
    }

    /// <summary>Advances to the next event (delivery or timer), runs it, returns false if nothing is pending.</summary>
    public bool Step()
    {
        long na = A.Poll(new Instant(Now)).Microseconds;
        long nb = B.Poll(new Instant(Now)).Microseconds;
        long next = Math.Min(NextDelivery, Math.Min(na, nb));
        if (next == long.MaxValue) return false;
        Now = Math.Max(Now, next);
        DeliverDue();
        A.Poll(new Instant(Now));
        B.Poll(new Instant(Now));
        return true;
    }
}

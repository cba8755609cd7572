using Gazelle.Devices.Capture;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>
/// Two TcpLayers joined by a simulated full-duplex link: virtual one-way delay, bandwidth (serialisation
/// and a tail-drop queue), and seeded loss, reordering and duplication. Segments travel as real frames
/// (Ethernet + IPv4 + TCP emitted and parsed by the Wire layer, checksums verified), so every header TCP
/// produces is checked against the wire format; frames can be captured to a pcap. Preallocated: moving
/// segments allocates nothing, so the allocation test can run through it.
/// </summary>
internal sealed class SimLink
{
    public static readonly Ipv4Address AddrA = new(10, 0, 0, 1);
    public static readonly Ipv4Address AddrB = new(10, 0, 0, 2);

    private const int Slots = 1 << 14;
    private const int FrameHeaders = 14 + 20;
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
    /// <summary>A reordered frame is held back 1 µs up to this much longer (0: half the delay).</summary>
    public long ReorderMaxMicros;
    /// <summary>Bytes per microsecond (125 = 1 Gbit/s).</summary>
    public double BytesPerMicro = 125;
    public long QueueLimitBytes = 1 << 20;
    public int Mtu = 1500;
    public long Delivered, Dropped, Duplicated, Reordered, QueueDrops;
    /// <summary>Frames that failed to parse or whose checksum did not verify (must stay 0).</summary>
    public long WireErrors;
    /// <summary>When set, every frame put on the link is written here (virtual timestamps).</summary>
    public PcapWriter? Capture { get; set; }
    /// <summary>A hash of every frame put on the link with its virtual time, in order: two runs that emit the
    /// same segments at the same times have the same value.</summary>
    public ulong TraceHash { get; private set; } = 14695981039346656037UL;
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
        int tcpLen = TcpHeader.EmittedLength(h) + len;
        int wire = FrameHeaders + tcpLen;
        if (20 + tcpLen > Mtu) { WireErrors++; return true; } // an IP layer would refuse it (DF, RFC 1191)
        if (_freeCount == 0) { QueueDrops++; return true; }
        // Build the frame once (it is what a capture shows, even for segments the link then loses).
        int s = _free[--_freeCount];
        var f = _payloads[s].AsSpan(0, wire);
        var (src, dst) = dir == 0 ? (AddrA, AddrB) : (AddrB, AddrA);
        new EthernetRepr(new MacAddress(dir == 0 ? 0x02_00_00_00_00_02UL : 0x02_00_00_00_00_01UL),
            new MacAddress(dir == 0 ? 0x02_00_00_00_00_01UL : 0x02_00_00_00_00_02UL), EtherType.Ipv4).Emit(f);
        new Ipv4Repr { Source = src, Destination = dst, Protocol = IpProtocol.Tcp, Ttl = 64, DontFragment = true, PayloadLength = tcpLen }.Emit(f[14..]);
        var seg = f[FrameHeaders..];
        int hlen = TcpHeader.Emit(h, seg);
        p1.CopyTo(seg[hlen..]);
        p2.CopyTo(seg[(hlen + p1.Length)..]);
        TcpHeader.WriteChecksum(seg, src, dst);
        Capture?.Write(new Instant(Now), f);
        TraceHash = FoldTrace(TraceHash, f, Now);
        if (_rng.NextDouble() < Loss) { Dropped++; _free[_freeCount++] = s; return true; }
        // Tail drop: the bytes still waiting for serialisation (not those already on the wire) are the queue.
        double backlog = Math.Max(0, _linkFreeAt[dir] - Now) * BytesPerMicro;
        if (backlog + wire > QueueLimitBytes) { QueueDrops++; _free[_freeCount++] = s; return true; }
        long start = Math.Max(Now, _linkFreeAt[dir]);
        long done = start + (long)(wire / BytesPerMicro);
        _linkFreeAt[dir] = done;
        int copies = _rng.NextDouble() < Duplicate ? 2 : 1;
        for (int c = 0; c < copies; c++)
        {
            if (c == 1)
            {
                if (_freeCount == 0) break;
                int d = _free[--_freeCount];
                f.CopyTo(_payloads[d]);
                s = d;
                Duplicated++;
            }
            _lengths[s] = wire;
            _dir[s] = dir;
            long at = done + DelayMicros + c * 3;
            if (_rng.NextDouble() < Reorder) { at += _rng.Next(1, (int)Math.Max(2, ReorderMaxMicros > 0 ? ReorderMaxMicros : DelayMicros / 2)); Reordered++; }
            _queue.Enqueue(s, (at << 16) | (_order++ & 0xFFFF));
        }
        return true;
    }

    private static ulong FoldTrace(ulong h, ReadOnlySpan<byte> frame, long now)
    {
        h = (h ^ (ulong)now) * 1099511628211UL; // FNV-1a
        foreach (byte b in frame) h = (h ^ b) * 1099511628211UL;
        return h;
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
            Delivered++;
            var f = _payloads[s].AsSpan(0, _lengths[s]);
            if (!Ipv4Packet.TryCreate(f[14..], out var ip) || !ip.VerifyChecksum()
                || !TcpHeader.TryCreate(ip.Payload, out var tcp) || !tcp.VerifyChecksum(ip.Source, ip.Destination)
                || !tcp.TryParse(out var repr))
                WireErrors++;
            else
                to.Input(ip.Source, ip.Destination, repr, tcp.Payload, new Instant(Now));
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

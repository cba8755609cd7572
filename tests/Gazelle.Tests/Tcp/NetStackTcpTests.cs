using Gazelle.Devices;
using Gazelle.Devices.Impairment;
using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>
/// TCP end to end through two whole NetStacks (Ethernet, ARP, IPv4, checksums) on user-veths joined by a
/// user-vbridge, with a seeded impaired NIC on one side; virtual time, byte-exact checks, leak checks.
/// </summary>
public class NetStackTcpTests
{
    private static readonly MacAddress MacA = MacAddress.Parse("02:00:00:00:01:0a");
    private static readonly MacAddress MacB = MacAddress.Parse("02:00:00:00:01:0b");
    private static readonly Ipv4Address IpA = Ipv4Address.Parse("10.1.0.1");
    private static readonly Ipv4Address IpB = Ipv4Address.Parse("10.1.0.2");

    private const long LineRate = 1_000_000_000;

    private static StackConfig Cfg(Ipv4Address a, int heldFrames) =>
        new() { Address = a, Netmask = Ipv4Address.Parse("255.255.255.0"), MaxTcpConnections = 32, MaxUdpSockets = 8, TcpHeldFrames = heldFrames };

    private sealed class Net : IDisposable
    {
        public readonly UserVeth Va, Vb;
        public readonly UserVbridge Bridge = new();
        public readonly ImpairedNic? Impaired;
        public readonly NetStack A, B;
        public Instant Now = Instant.FromMilliseconds(1);

        public Net(ImpairmentProfile? impairment, ulong seed, int heldFrames = 512)
        {
            // Each host's link runs at 1 Gbit/s with 50 µs of propagation delay: virtual time advances as frames
            // cross it, so even a loss-free transfer has a duration to bound.
            Va = new UserVeth(new UserVethOptions { MacAddress = MacA, Name = "tcpa", LineRateBitsPerSecond = LineRate, Latency = new TimeSpanMicros(50) });
            Vb = new UserVeth(new UserVethOptions { MacAddress = MacB, Name = "tcpb", LineRateBitsPerSecond = LineRate, Latency = new TimeSpanMicros(50) });
            Bridge.AddPort(Va);
            Bridge.AddPort(Vb);
            INic nicA = Va;
            if (impairment is not null) nicA = Impaired = new ImpairedNic(Va, seed, impairment, impairment);
            A = new NetStack(Cfg(IpA, heldFrames), nicA);
            B = new NetStack(Cfg(IpB, heldFrames), Vb);
        }

        /// <summary>One round: poll both, move frames; then jump the clock to the next deadline (at most 1 ms).</summary>
        public void Step()
        {
            long rx = A.Counters.Link.FramesReceived + B.Counters.Link.FramesReceived;
            var na = A.Poll(Now);
            var nb = B.Poll(Now);
            int moved = Bridge.Pump(Now);
            // Time moves only when a round had nothing to do (frames received or moved mean more work now).
            if (moved > 0 || A.Counters.Link.FramesReceived + B.Counters.Link.FramesReceived != rx) return;
            var next = Instant.Min(na, nb);
            var cap = Now + new TimeSpanMicros(1000);
            Now = next <= Now ? Now + new TimeSpanMicros(10) : Instant.Min(next, cap);
        }

        public bool RunUntil(Func<bool> done, long maxMicros)
        {
            var end = Now + new TimeSpanMicros(maxMicros);
            while (Now < end)
            {
                if (done()) return true;
                Step();
            }
            return done();
        }

        public void Dispose()
        {
            A.Shutdown();
            B.Shutdown();
            for (int i = 0; i < 4; i++) Step();
            Impaired?.Dispose();
            Va.Dispose();
            Vb.Dispose();
        }
    }

    private static (SocketHandle client, SocketHandle server, SocketHandle listener) Connect(Net n)
    {
        Assert.That(n.B.Open(SocketKind.Tcp, out var l), Is.EqualTo(Errno.Ok));
        Assert.That(n.B.Bind(l, new Ipv4Endpoint(Ipv4Address.Any, 8080)), Is.EqualTo(Errno.Ok));
        Assert.That(n.B.Listen(l, 8), Is.EqualTo(Errno.Ok));
        Assert.That(n.A.Open(SocketKind.Tcp, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(n.A.Connect(c, new Ipv4Endpoint(IpB, 8080)), Is.EqualTo(Errno.EINPROGRESS));
        SocketHandle s = SocketHandle.Invalid;
        Assert.That(n.RunUntil(() => (n.A.GetReadiness(c) & Readiness.Writable) != 0 && n.B.Accept(l, out s, out _) == Errno.Ok, 30_000_000), Is.True, "handshake");
        Assert.That(n.A.TakeError(c), Is.EqualTo(Errno.Ok));
        return (c, s, l);
    }

    /// <summary>Six full-sized in-order segments that reach the receiver in one poll round are acknowledged
    /// by one ACK sent in that round (TcpLayer.BeginInputBatch), where the every-second-segment rule
    /// alone sends three (as it still does with header prediction off: the batch covers only segments
    /// the fast path took); the sender still sees everything acknowledged.</summary>
    [TestCase(true, 1)]
    [TestCase(false, 3)]
    public void InOrderBurstIsAcknowledgedOncePerPollRound(bool headerPrediction, int acks)
    {
        using var n = new Net(null, 1);
        n.B.Tcp.QuickAcks = 0; // past quick-ACK mode from the start
        n.B.Tcp.HeaderPrediction = headerPrediction;
        var (c, s, _) = Connect(n);
        var data = new byte[6 * 1448];
        Assert.That(n.A.Send(c, data, MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.EqualTo(data.Length));
        n.A.Poll(n.Now);
        n.Now += new TimeSpanMicros(1000); // the six frames cross the 1 Gbit/s, 50 µs link
        n.Bridge.Pump(n.Now);
        long inBefore = n.B.Counters.Tcp.Delivered, outBefore = n.B.Tcp.Counters.SegmentsOut;
        n.B.Poll(n.Now);
        Assert.That(n.B.Counters.Tcp.Delivered - inBefore, Is.EqualTo(6), "the six segments arrive in one poll");
        Assert.That(n.B.Tcp.Counters.SegmentsOut - outBefore, Is.EqualTo(acks), "ACKs for the burst");
        n.Now += new TimeSpanMicros(1000);
        n.Bridge.Pump(n.Now);
        n.A.Poll(n.Now);
        Assert.That(n.A.Tcp.Peek(c)!.SndUna, Is.EqualTo(n.A.Tcp.Peek(c)!.SndMax), "the ACK covers all six");
        var got = new byte[data.Length];
        Assert.That(n.B.Receive(s, got, MessageFlags.None, out int k), Is.EqualTo(Errno.Ok));
        Assert.That(k, Is.EqualTo(data.Length));
    }

    /// <summary>Byte i of the bulk stream: a position-derived pattern, so 100 MB need no arrays and any
    /// misplaced, duplicated or lost byte shows.</summary>
    private static byte PatternAt(long i) => (byte)((ulong)(i * 2654435761L) >> 13);

    /// <summary>Issue 3's acceptance: 100 MB through two whole stacks on a user-vbridge at 0%, 1% and 5%
    /// loss with reordering and duplication, byte-exact, within a virtual-time bound. The links run at 1 Gbit/s
    /// (a 1448-byte segment takes 1538 bytes of wire), so 100 MB need 0.85 s at best: at 0% the bound (1 s) asks
    /// for at least 85% of the line rate. With loss, the bounds only hold when loss is repaired by fast recovery:
    /// repairing each of the ~700 (1%) or ~3500 (5%) lost segments by a 200 ms timeout would take 140 s or
    /// 700 s, against bounds of 20 s and 120 s (and the RTO count must stay a small fraction).</summary>
    [TestCase(0.00, 11UL, 1.0)]
    [TestCase(0.01, 12UL, 20.0)]
    [TestCase(0.05, 13UL, 120.0)]
    public void Bulk100MBThroughTwoStacksOnAVbridge(double drop, ulong seed, double maxVirtualSeconds)
    {
        var profile = drop == 0 ? null : new ImpairmentProfile
        {
            DropRate = drop, DuplicateRate = 0.01, ReorderRate = 0.02,
            Latency = new TimeSpanMicros(200), Jitter = new TimeSpanMicros(50),
        };
        using var n = new Net(profile, seed);
        var (c, s, l) = Connect(n);
        const long Total = 100_000_000;
        var chunk = new byte[65536];
        var got = new byte[65536];
        long sent = 0, received = 0, mismatchAt = -1;
        var start = n.Now;
        long filledFor = -1;
        bool done = n.RunUntil(() =>
        {
            if (sent < Total)
            {
                int len = (int)Math.Min(chunk.Length, Total - sent);
                if (filledFor != sent)
                {
                    for (int i = 0; i < len; i++) chunk[i] = PatternAt(sent + i);
                    filledFor = sent;
                }
                if (n.A.Send(c, chunk.AsSpan(0, len), MessageFlags.None, out int k) == Errno.Ok) sent += k;
            }
            while (n.B.Receive(s, got, MessageFlags.None, out int k) == Errno.Ok && k > 0)
            {
                for (int i = 0; i < k && mismatchAt < 0; i++)
                    if (got[i] != PatternAt(received + i)) mismatchAt = received + i;
                received += k;
            }
            return received >= Total || mismatchAt >= 0;
        }, (long)(maxVirtualSeconds * 2 * 1_000_000));
        double seconds = (n.Now - start).Value / 1e6;
        long fast = n.A.Tcp.Counters.FastRetransmits, rto = n.A.Tcp.Counters.RtoTimeouts;
        TestContext.Out.WriteLine($"100 MB at {drop:P0} loss: virtual {seconds:F2} s, {fast} fast retransmits, {rto} RTO timeouts");
        Assert.That(mismatchAt, Is.EqualTo(-1), "first wrong byte");
        Assert.That(done && received == Total, Is.True, $"received {received}/{Total}");
        Assert.That(seconds, Is.LessThan(maxVirtualSeconds), "virtual time over the bound: line rate not reached, or loss repaired too slowly");
        if (drop > 0) Assert.That(rto * 10, Is.LessThan(fast), "loss must be repaired mostly by fast recovery, not timeouts");
        Assert.That(n.B.Tcp.Counters.FramesHeld, Is.GreaterThan(Total / 1448 / (drop == 0 ? 2 : 10)), "in-order payload stays in its frame until read");
        Assert.That(n.A.Close(c), Is.EqualTo(Errno.Ok));
        Assert.That(n.B.Close(s), Is.EqualTo(Errno.Ok));
        Assert.That(n.B.Close(l), Is.EqualTo(Errno.Ok));
    }

    /// <summary>With a store of 4 held frames (the NIC's pool is never lent out beyond it), the rest of the
    /// in-order payload is copied into the ring as before: byte-exact both ways, under loss too.</summary>
    [TestCase(0.0, 1UL, 512)]
    [TestCase(0.02, 2UL, 512)]
    [TestCase(0.02, 3UL, 4)]
    public void BulkBothWaysThroughTwoStacks(double drop, ulong seed, int heldFrames)
    {
        var profile = drop == 0 ? null : new ImpairmentProfile
        {
            DropRate = drop, DuplicateRate = 0.01, ReorderRate = 0.02, CorruptRate = 0.005,
            Latency = new TimeSpanMicros(200), Jitter = new TimeSpanMicros(50),
        };
        using var n = new Net(profile, seed, heldFrames);
        var (c, s, l) = Connect(n);
        const int Total = 4_000_000;
        var data = new byte[Total];
        new Random((int)seed).NextBytes(data);
        var gotB = new byte[Total];
        var gotA = new byte[Total];
        int sentA = 0, sentB = 0, recvA = 0, recvB = 0;
        bool done = n.RunUntil(() =>
        {
            if (sentA < Total && n.A.Send(c, data.AsSpan(sentA, Math.Min(65536, Total - sentA)), MessageFlags.None, out int k) == Errno.Ok) sentA += k;
            if (sentB < Total && n.B.Send(s, data.AsSpan(sentB, Math.Min(65536, Total - sentB)), MessageFlags.None, out k) == Errno.Ok) sentB += k;
            if (n.B.Receive(s, gotB.AsSpan(recvB), MessageFlags.None, out k) == Errno.Ok) recvB += k;
            if (n.A.Receive(c, gotA.AsSpan(recvA), MessageFlags.None, out k) == Errno.Ok) recvA += k;
            return recvA == Total && recvB == Total;
        }, 600_000_000);
        TestContext.Out.WriteLine($"virtual {n.Now} A: {n.A.Tcp.Counters.FastRetransmits} fast / {n.A.Tcp.Counters.RtoTimeouts} rto; B: {n.B.Tcp.Counters.FastRetransmits} fast / {n.B.Tcp.Counters.RtoTimeouts} rto; bad checksums at B {n.B.Counters.Tcp.BadChecksum}");
        Assert.That(done, Is.True, $"A→B {recvB}/{Total}, B→A {recvA}/{Total}");
        Assert.That(gotB.AsSpan().SequenceEqual(data), Is.True, "A→B byte-exact");
        Assert.That(gotA.AsSpan().SequenceEqual(data), Is.True, "B→A byte-exact");

        // Orderly close from both sides, then every timer (TIME-WAIT) runs out: nothing may remain.
        Assert.That(n.A.Close(c), Is.EqualTo(Errno.Ok));
        Assert.That(n.RunUntil(() => n.B.Receive(s, gotB, MessageFlags.None, out int z) == Errno.Ok && z == 0, 60_000_000), Is.True, "EOF at B");
        Assert.That(n.B.Close(s), Is.EqualTo(Errno.Ok));
        Assert.That(n.B.Close(l), Is.EqualTo(Errno.Ok));
        n.RunUntil(() => n.A.Tcp.LiveConnections == 0 && n.B.Tcp.LiveConnections == 0, 200_000_000);
        Assert.That(n.A.Tcp.LiveConnections + n.B.Tcp.LiveConnections, Is.Zero, "TCBs leaked");
        Assert.That(n.A.Tcp.FlowTableCount + n.B.Tcp.FlowTableCount, Is.Zero);
        Assert.That(n.A.Tcp.HeldFramesInUse + n.B.Tcp.HeldFramesInUse, Is.Zero, "held frames released");
        Assert.That(n.Va.RxPool.InUse + n.Vb.RxPool.InUse, Is.Zero, "receive pools back to baseline");
        Assert.That(n.A.Tcp.Counters.FramesHeld + n.B.Tcp.Counters.FramesHeld, Is.GreaterThan(0));
        if (heldFrames < 16) Assert.That(n.B.Tcp.Counters.HoldRefused, Is.GreaterThan(0), "a full store copies instead");
        if (drop > 0)
        {
            Assert.That(n.A.Tcp.Counters.FastRetransmits + n.B.Tcp.Counters.FastRetransmits, Is.GreaterThan(0));
            Assert.That(n.B.Counters.Tcp.BadChecksum + n.A.Counters.Tcp.BadChecksum + n.A.Counters.Ip.BadChecksum + n.B.Counters.Ip.BadChecksum,
                Is.GreaterThan(0), "corrupted frames were caught by checksums, not delivered");
        }
    }

    /// <summary>Payload held in its frames reads as the ring does: in pieces that straddle frames, with
    /// MSG_PEEK, followed by bytes that had to go to the ring; the frames go back to the pool as they are read.</summary>
    [Test]
    public void HeldPayloadReadsLikeTheRing()
    {
        using var n = new Net(null, 7, heldFrames: 3);
        var (c, s, _) = Connect(n);
        var data = new byte[10 * 1448 + 77];
        new Random(3).NextBytes(data);
        Assert.That(n.A.Send(c, data, MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.EqualTo(data.Length));
        Assert.That(n.RunUntil(() => n.B.Available(s, out int a) == Errno.Ok && a == data.Length, 10_000_000), Is.True, "all arrived");
        Assert.That(n.B.Tcp.HeldFramesInUse, Is.EqualTo(3), "three frames held, the rest copied");
        Assert.That(n.B.Tcp.Counters.HoldRefused, Is.GreaterThan(0));
        Assert.That(n.Vb.RxPool.InUse, Is.EqualTo(3));

        var got = new byte[data.Length];
        var peek = new byte[2000];
        int at = 0;
        foreach (int piece in new[] { 1000, 1000, 3000, 1, 5000 })
        {
            Assert.That(n.B.Receive(s, peek, MessageFlags.Peek, out int p), Is.EqualTo(Errno.Ok));
            Assert.That(peek.AsSpan(0, p).SequenceEqual(data.AsSpan(at, p)), Is.True, $"peek at {at}");
            Assert.That(n.B.Receive(s, got.AsSpan(at, piece), MessageFlags.None, out int k), Is.EqualTo(Errno.Ok));
            Assert.That(k, Is.EqualTo(piece));
            at += k;
        }
        Assert.That(n.B.Tcp.HeldFramesInUse, Is.Zero, "read frames went back");
        Assert.That(n.Vb.RxPool.InUse, Is.Zero);
        Assert.That(n.B.Receive(s, got.AsSpan(at), MessageFlags.None, out int rest), Is.EqualTo(Errno.Ok));
        Assert.That(at + rest, Is.EqualTo(data.Length));
        Assert.That(got.AsSpan().SequenceEqual(data), Is.True, "byte-exact");
    }

    [Test]
    public void WholeStackTcpPathAllocatesNothing()
    {
        using var n = new Net(null, 5);
        var (c, s, _) = Connect(n);
        var data = new byte[65536];
        var rx = new byte[65536];
        long moved = 0;
        bool Pump(long bytes)
        {
            long target = moved + bytes;
            var end = n.Now + new TimeSpanMicros(10_000_000);
            while (moved < target && n.Now < end)
            {
                n.A.Send(c, data, MessageFlags.None, out _);
                while (n.B.Receive(s, rx, MessageFlags.None, out int k) == Errno.Ok && k > 0) moved += k;
                n.Step();
            }
            return moved >= target;
        }
        Assert.That(Pump(8_000_000), Is.True, "warm-up");
        long segmentsBefore = n.B.Counters.Tcp.Delivered;
        bool ok = true;
        long allocated = AllocationProbe.LeastAllocated(() => ok &= Pump(40_000_000), out int rounds);
        Assert.That(ok, Is.True);
        Assert.That((n.B.Counters.Tcp.Delivered - segmentsBefore) / rounds, Is.GreaterThan(25_000));
        Assert.That(allocated, Is.Zero, "Ethernet/ARP/IPv4/TCP send and receive paths allocate nothing");
    }

    [Test]
    public void RequestResponseAndRefusedConnect()
    {
        using var n = new Net(null, 3);
        var (c, s, _) = Connect(n);
        var one = new byte[4];
        one[0] = 1;
        n.A.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one);
        n.B.SetOption(s, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one);
        var req = new byte[100];
        var buf = new byte[100];
        var start = n.Now;
        for (int i = 0; i < 200; i++)
        {
            req[0] = (byte)i;
            Assert.That(n.A.Send(c, req, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
            int got = 0;
            Assert.That(n.RunUntil(() => n.B.Receive(s, buf, MessageFlags.None, out got) == Errno.Ok && got > 0, 1_000_000), Is.True);
            Assert.That(buf[0], Is.EqualTo((byte)i));
            n.B.Send(s, buf.AsSpan(0, got), MessageFlags.None, out _);
            Assert.That(n.RunUntil(() => n.A.Receive(c, buf, MessageFlags.None, out got) == Errno.Ok && got > 0, 1_000_000), Is.True);
        }
        // Zero virtual latency: no exchange may wait on a delayed ACK or Nagle.
        Assert.That((n.Now - start).Value, Is.LessThan(200 * 1000), "request/response never stalls on timers");

        // A SYN to a closed port is answered with RST: connect fails with ECONNREFUSED.
        n.A.Open(SocketKind.Tcp, out var r);
        Assert.That(n.A.Connect(r, new Ipv4Endpoint(IpB, 9)), Is.EqualTo(Errno.EINPROGRESS));
        Assert.That(n.RunUntil(() => (n.A.GetReadiness(r) & Readiness.Error) != 0, 5_000_000), Is.True);
        Assert.That(n.A.TakeError(r), Is.EqualTo(Errno.ECONNREFUSED));
        n.A.Close(r);
    }

    private static byte[] TcpInfo(NetStack stack, SocketHandle s)
    {
        var info = new byte[TcpLayer.TcpInfoSize];
        Assert.That(stack.GetOption(s, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_INFO, info, out int len), Is.EqualTo(Errno.Ok));
        Assert.That(len, Is.EqualTo(TcpLayer.TcpInfoSize));
        return info;
    }

    private static uint U32(byte[] b, int offset) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(offset));
    private static ulong U64(byte[] b, int offset) => System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(offset));

    /// <summary>TCP_INFO of both ends after a lossy transfer agrees with what happened and with itself
    /// (the values differ from Linux's by nature; their meaning and units must not).</summary>
    [Test]
    public void TcpInfoAgreesWithTheTransferAndAcrossTheEnds()
    {
        var profile = new ImpairmentProfile { DropRate = 0.03, Latency = new TimeSpanMicros(500) };
        using var n = new Net(profile, 21UL);
        var (c, s, l) = Connect(n);
        const int Total = 400_000;
        var data = new byte[Total];
        for (int i = 0; i < Total; i++) data[i] = PatternAt(i);
        var buf = new byte[65536];
        int sent = 0, got = 0;
        bool done = n.RunUntil(() =>
        {
            if (sent < Total && n.A.Send(c, data.AsSpan(sent), MessageFlags.None, out int k) == Errno.Ok) sent += k;
            while (n.B.Receive(s, buf, MessageFlags.None, out int r) == Errno.Ok && r > 0)
            {
                Assert.That(buf.AsSpan(0, r).SequenceEqual(data.AsSpan(got, r)), Is.True);
                got += r;
            }
            return got == Total && U32(TcpInfo(n.A, c), 24) == 0; // all received and acknowledged
        }, 120_000_000);
        Assert.That(done, Is.True, "transfer");
        n.RunUntil(() => false, 300_000); // quiet: delayed ACKs and window updates settle
        var a = TcpInfo(n.A, c);
        var b = TcpInfo(n.B, s);
        Assert.Multiple(() =>
        {
            Assert.That((a[0], b[0]), Is.EqualTo(((byte)1, (byte)1)), "TCP_ESTABLISHED");
            Assert.That(a[1], Is.Zero, "ca_state Open once idle");
            Assert.That((a[2], a[4]), Is.EqualTo(((byte)0, (byte)0)), "no RTO pending, no backoff");
            Assert.That(a[5] & 3, Is.EqualTo(b[5] & 3), "timestamps and SACK agreed by both");
            Assert.That(a[6] & 0xF, Is.EqualTo(b[6] >> 4), "A's send scale is B's receive scale");
            Assert.That(U32(b, 20), Is.EqualTo(U32(a, 16)), "B's rcv_mss is A's snd_mss (full segments)");
            Assert.That(U32(a, 16), Is.LessThanOrEqualTo(U32(a, 60) - 40), "snd_mss within the path MTU");
            Assert.That((U32(a, 24), U32(a, 28), U32(a, 32), U32(a, 36)), Is.EqualTo((0u, 0u, 0u, 0u)), "unacked, sacked, lost, retrans");
            Assert.That(U64(a, 120), Is.EqualTo((ulong)Total), "bytes_acked");
            Assert.That(U64(b, 128), Is.EqualTo((ulong)Total), "bytes_received");
            Assert.That(U32(a, 100), Is.GreaterThan(0u), "3% loss caused retransmissions");
            Assert.That(U64(a, 208), Is.GreaterThan(0ul), "bytes_retrans");
            Assert.That(U64(a, 200), Is.EqualTo((ulong)Total + U64(a, 208)), "bytes_sent = data + retransmitted");
            Assert.That(U32(a, 156), Is.GreaterThanOrEqualTo(U32(b, 152)), "data_segs_out >= what arrived");
            Assert.That(U32(a, 156), Is.GreaterThanOrEqualTo((uint)(Total / U32(a, 16))), "data_segs_out");
            Assert.That(U32(a, 136), Is.GreaterThanOrEqualTo(U32(a, 156)), "segs_out >= data_segs_out");
            Assert.That(U32(b, 140), Is.GreaterThanOrEqualTo(U32(b, 152)), "segs_in >= data_segs_in");
            Assert.That(U32(b, 224), Is.GreaterThan(0u), "out-of-order packets after losses");
            Assert.That(U32(a, 148), Is.GreaterThanOrEqualTo(1000u), "min_rtt: 0.5 ms each way at least");
            Assert.That(U32(a, 68), Is.GreaterThanOrEqualTo(U32(a, 148)), "rtt >= min_rtt");
            Assert.That(U32(a, 8), Is.GreaterThanOrEqualTo(Math.Max(200_000u, U32(a, 68))), "rto >= 200 ms and >= rtt");
            Assert.That(U32(a, 80), Is.GreaterThanOrEqualTo(1u), "snd_cwnd");
            Assert.That(U32(a, 76), Is.LessThan(0x7FFFFFFFu), "a loss episode set ssthresh");
            Assert.That(U64(a, 104), Is.GreaterThan(0ul), "pacing_rate");
            Assert.That(U64(a, 112), Is.EqualTo(ulong.MaxValue), "no max pacing rate");
            Assert.That(U32(a, 192), Is.GreaterThanOrEqualTo((uint)(Total / U32(a, 16))), "delivered");
            Assert.That(U32(a, 144), Is.Zero, "notsent_bytes");
            Assert.That(U32(a, 228), Is.EqualTo(U32(b, 232)), "A's snd_wnd is the window B advertised last");
            Assert.That(U32(a, 44), Is.LessThanOrEqualTo(U32(a, 56) + 1000), "last data sent before the last ACK came");
            Assert.That(U32(b, 52), Is.LessThan(1000u), "B received data within the last second");
            Assert.That(U64(a, 160), Is.GreaterThan(0ul), "delivery_rate");
            Assert.That((uint)System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(a.AsSpan(240)), Is.LessThanOrEqualTo((uint)n.A.Tcp.Counters.RtoTimeouts), "total_rto");
        });
        n.A.Close(c);
        n.B.Close(s);
        n.B.Close(l);
    }
}

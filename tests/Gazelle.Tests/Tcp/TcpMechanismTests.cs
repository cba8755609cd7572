using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

public class TcpMechanismTests : TcpFixture
{
    [Test]
    public void SackScoreboardRetransmitsTheHoleAtOnce()
    {
        var c = Established();
        Tcp.Send(c, Bytes(8 * 1460), MessageFlags.None, out _);
        for (int i = 0; i < 8; i++) Expect(TcpFlags.Ack, seq: OurNxt + i * 1460, length: 1460);
        // Segment 2 is lost; the peer SACKs 3..5 (more than 2 MSS above the hole → IsLost, RFC 6675).
        var ack = Seg(TcpFlags.Ack, PeerNxt, OurNxt + 1460);
        ack.Options.SackCount = 1;
        ack.Options.Sack[0] = new SackBlock(OurNxt + 2 * 1460, OurNxt + 5 * 1460);
        Send(ack);
        Expect(TcpFlags.Ack, seq: OurNxt + 1460, length: 1460);
        Assert.That(Tcp.Counters.FastRetransmits, Is.EqualTo(1));
        Assert.That(Tcp.Counters.RtoTimeouts, Is.Zero);
        // The retransmission repairs it: a full ACK ends recovery.
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 8 * 1460));
        Assert.That(Tcp.Peek(c)!.InRecovery, Is.False);
    }

    [Test]
    public void DuplicateSegmentsAreReportedWithDsack()
    {
        Established(timestamps: true);
        var first = PeerNxt;
        SendData(1000);
        SendData(1000);
        Expect(TcpFlags.Ack, ack: PeerNxt);
        // The peer retransmits the first segment needlessly: the ACK reports it as a D-SACK block.
        Send(Seg(TcpFlags.Ack, first, OurNxt), Bytes(1000));
        var d = Expect(TcpFlags.Ack, ack: PeerNxt);
        Assert.That(d.Header.Options.SackCount, Is.EqualTo(1));
        Assert.That(d.Header.Options.Sack[0], Is.EqualTo(new SackBlock(first, first + 1000)));
        Assert.That(Tcp.Counters.DsacksSent, Is.EqualTo(1));
        // Out-of-order data received twice: D-SACK first, then the queued block (RFC 2883 §4.2.2).
        var hole = PeerNxt;
        PeerNxt += 500;
        SendData(500);
        Expect(TcpFlags.Ack, ack: hole);
        PeerNxt -= 500;
        SendData(500);
        var d2 = Expect(TcpFlags.Ack, ack: hole);
        Assert.That(d2.Header.Options.SackCount, Is.EqualTo(2));
        Assert.That(d2.Header.Options.Sack[0], Is.EqualTo(new SackBlock(hole + 500, hole + 1000)));
        Assert.That(d2.Header.Options.Sack[1], Is.EqualTo(new SackBlock(hole + 500, hole + 1000)));
        Out.Segments.Clear();
    }

    [Test]
    public void InvalidSackBlocksAreIgnored()
    {
        var c = Established();
        Tcp.Send(c, Bytes(1460), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, length: 1460);
        var ack = Seg(TcpFlags.Ack, PeerNxt, OurNxt);
        ack.Options.SackCount = 1;
        ack.Options.Sack[0] = new SackBlock(OurNxt + 100_000, OurNxt + 200_000);
        Send(ack);
        Assert.That(Tcp.Counters.SackBlocksInvalid, Is.EqualTo(1));
        Assert.That(Tcp.Peek(c)!.SackCount, Is.Zero);
    }

    [Test]
    public void OutOfOrderMemoryIsBounded()
    {
        var c = Established();
        var start = PeerNxt;
        for (int i = 0; i <= Tcb.MaxOooIntervals; i++)
        {
            PeerNxt = start + 1 + i * 20; // 10-byte islands with gaps
            SendData(10);
        }
        Assert.That(Tcp.Counters.OutOfOrderQueued, Is.EqualTo(Tcb.MaxOooIntervals));
        Assert.That(Tcp.Counters.OutOfOrderDropped, Is.EqualTo(1));
        Tcp.Available(c, out int a);
        Assert.That(a, Is.Zero);
        Out.Segments.Clear();
    }

    [Test]
    public void ListenBacklogOverflowDropsSyn()
    {
        ListenOn(backlog: 1);
        Established();
        Assert.That(Tcp.Open(SocketKind.Tcp, out _), Is.EqualTo(Errno.Ok)); // unrelated socket
        // The first connection was accepted; fill the accept queue with a second, then overflow.
        var syn = SynWithOptions(new SeqNum(5000));
        syn.SrcPort = 40001;
        Send(syn);
        var sa = Expect(TcpFlags.Syn | TcpFlags.Ack);
        var ack = Seg(TcpFlags.Ack, new SeqNum(5001), sa.Header.Seq + 1);
        ack.SrcPort = 40001;
        Send(ack);
        var syn3 = SynWithOptions(new SeqNum(7000));
        syn3.SrcPort = 40002;
        Send(syn3);
        ExpectNothing();
        Assert.That(Tcp.Counters.ListenOverflows, Is.EqualTo(1));
    }

    [Test]
    public void PoolExhaustionGivesEnfile()
    {
        for (int i = 0; i < Tcp.PoolCapacity; i++) Assert.That(Tcp.Open(SocketKind.Tcp, out _), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Open(SocketKind.Tcp, out var h), Is.EqualTo(Errno.ENFILE));
        Assert.That(h.IsValid, Is.False);
        Assert.That(Tcp.Counters.PoolExhausted, Is.EqualTo(1));
    }

    [Test]
    public void DataForAnOrphanedConnectionIsReset()
    {
        var c = Established();
        Tcp.Close(c);
        Expect(TcpFlags.Fin | TcpFlags.Ack);
        SendData(10);
        Expect(TcpFlags.Rst | TcpFlags.Ack);
        Assert.That(Tcp.Counters.DataAfterClose, Is.EqualTo(1));
    }

    [Test]
    public void ReceiveWindowClosesAndReopensAfterRead()
    {
        var c = Established(wscale: 7);
        var rcvBuf = Tcp.Peek(c)!.RcvBufSize;
        int total = 0;
        while (total < rcvBuf)
        {
            int n = Math.Min(1460, rcvBuf - total);
            SendData(n);
            total += n;
        }
        Advance(50);
        TcpRepr last = default;
        while (Out.Segments.Count > 0) last = Out.Segments.Dequeue().Header;
        Assert.That(last.Window, Is.Zero, "full buffer → zero window");
        Assert.That(last.Ack, Is.EqualTo(PeerNxt));
        SendData(100); // into a zero window: not accepted, answered with an ACK
        Expect(TcpFlags.Ack, ack: PeerNxt - 100);
        PeerNxt -= 100;
        Tcp.Available(c, out int avail);
        Assert.That(avail, Is.EqualTo(rcvBuf));
        var buf = new byte[rcvBuf];
        Tcp.Receive(c, buf, MessageFlags.None, out int got);
        Assert.That(got, Is.EqualTo(rcvBuf));
        var upd = Expect(TcpFlags.Ack, ack: PeerNxt);
        Assert.That(upd.Header.Window, Is.GreaterThan(0), "window update after the read");
    }

    [Test]
    public void PeekDoesNotConsume()
    {
        var c = Established();
        SendData(50);
        var buf = new byte[100];
        Tcp.Receive(c, buf, MessageFlags.Peek, out int n1);
        Tcp.Receive(c, buf, MessageFlags.None, out int n2);
        Assert.That((n1, n2), Is.EqualTo((50, 50)));
    }
}

public class TcpUnitTests
{
    [Test]
    public void FlowTableAddFindRemove()
    {
        var t = new FlowTable(2048, 42);
        var rng = new Random(5);
        var keys = new List<(Ipv4Address, ushort, Ipv4Address, ushort)>();
        for (int i = 0; i < 2000; i++)
        {
            var k = (new Ipv4Address((uint)rng.Next()), (ushort)rng.Next(1, 65536), new Ipv4Address((uint)rng.Next(0, 4)), (ushort)rng.Next(1, 100));
            if (t.Find(k.Item1, k.Item2, k.Item3, k.Item4) >= 0) continue;
            Assert.That(t.Add(k.Item1, k.Item2, k.Item3, k.Item4, keys.Count), Is.True);
            keys.Add(k);
        }
        Assert.That(t.Add(keys[0].Item1, keys[0].Item2, keys[0].Item3, keys[0].Item4, 9), Is.False, "duplicate");
        for (int i = 0; i < keys.Count; i += 2) Assert.That(t.Remove(keys[i].Item1, keys[i].Item2, keys[i].Item3, keys[i].Item4), Is.True);
        for (int i = 0; i < keys.Count; i++)
        {
            int found = t.Find(keys[i].Item1, keys[i].Item2, keys[i].Item3, keys[i].Item4);
            Assert.That(found, Is.EqualTo(i % 2 == 0 ? -1 : i));
        }
        Assert.That(t.Count, Is.EqualTo(keys.Count / 2));
    }

    [Test]
    public void IntervalListMergesAndTrims()
    {
        var l = new SeqNum[4];
        var r = new SeqNum[4];
        int n = 0;
        IntervalList.Add(l, r, ref n, new SeqNum(100), new SeqNum(200));
        IntervalList.Add(l, r, ref n, new SeqNum(300), new SeqNum(400));
        IntervalList.Add(l, r, ref n, new SeqNum(500), new SeqNum(600));
        Assert.That(n, Is.EqualTo(3));
        IntervalList.Add(l, r, ref n, new SeqNum(150), new SeqNum(350)); // bridges the first two
        Assert.That(n, Is.EqualTo(2));
        Assert.That((l[0], r[0]), Is.EqualTo((new SeqNum(100), new SeqNum(400))));
        IntervalList.Add(l, r, ref n, new SeqNum(700), new SeqNum(800));
        IntervalList.Add(l, r, ref n, new SeqNum(900), new SeqNum(950));
        Assert.That(IntervalList.Add(l, r, ref n, new SeqNum(1000), new SeqNum(1100)), Is.EqualTo(-1), "full");
        Assert.That(IntervalList.TrimBelow(l, r, ref n, new SeqNum(550)), Is.EqualTo(300 + 50));
        Assert.That((n, l[0]), Is.EqualTo((3, new SeqNum(550))));
        // Wrap-around near 2^32.
        n = 0;
        IntervalList.Add(l, r, ref n, new SeqNum(0xFFFF_FF00), new SeqNum(0x10));
        IntervalList.Add(l, r, ref n, new SeqNum(0x10), new SeqNum(0x20));
        Assert.That((n, r[0]), Is.EqualTo((1, new SeqNum(0x20))));
    }

    private static Tcb CcTcb(ICongestionControl cc)
    {
        var t = new Tcb(0, new RingPool(0));
        t.Reset(1 << 20, 1 << 20);
        t.SndMss = 1000;
        t.Cc = cc;
        t.SrttMicros = 100_000;
        return t;
    }

    [Test]
    public void CubicRegrowsToWmaxAroundK()
    {
        var cubic = new CubicCongestion();
        var t = CcTcb(cubic);
        t.Cwnd = 100 * 1000;
        t.SndMax = t.SndUna + t.Cwnd;
        t.Ssthresh = cubic.OnCongestionEvent(t, Instant.Zero);
        Assert.That(t.Ssthresh, Is.EqualTo(70 * 1000), "beta 0.7");
        t.Cwnd = t.Ssthresh;
        double k = Math.Cbrt(30 / 0.4); // RFC 9438 eq. 2: ~4.22 s
        long now = 0;
        int atHalfK = 0;
        // One RTT (100 ms) at a time, acknowledging a window's worth per RTT.
        while (now < (long)(k * 1e6))
        {
            int acks = t.Cwnd / 1000;
            for (int i = 0; i < acks; i++) cubic.OnAck(t, 1000, new Instant(now));
            now += 100_000;
            if (atHalfK == 0 && now >= (long)(k * 1e6 / 2)) atHalfK = t.Cwnd / 1000;
        }
        int atK = t.Cwnd / 1000;
        Assert.That(atHalfK, Is.InRange(85, 99), "concave region: fast at first, flattening");
        Assert.That(atK, Is.InRange(98, 104), "plateau at W_max at t = K");
        for (int i = 0; i < 30; i++)
        {
            int acks = t.Cwnd / 1000;
            for (int j = 0; j < acks; j++) cubic.OnAck(t, 1000, new Instant(now));
            now += 100_000;
        }
        Assert.That(t.Cwnd / 1000, Is.GreaterThan(atK + 5), "convex probing beyond W_max");
    }

    [Test]
    public void RenoAddsOneSegmentPerWindow()
    {
        var reno = new RenoCongestion();
        var t = CcTcb(reno);
        t.Cwnd = 10_000;
        t.Ssthresh = 10_000;
        for (int i = 0; i < 10; i++) reno.OnAck(t, 1000, Instant.Zero);
        Assert.That(t.Cwnd, Is.EqualTo(11_000));
        t.Ssthresh = 100_000;
        reno.OnAck(t, 1000, Instant.Zero);
        Assert.That(t.Cwnd, Is.EqualTo(12_000), "slow start");
        t.SndMax = t.SndUna + 12_000;
        Assert.That(reno.OnCongestionEvent(t, Instant.Zero), Is.EqualTo(6_000));
    }
}

public class TcpEifelTests : TcpFixture
{
    [Test]
    public void SpuriousFastRetransmitIsUndoneByTimestamps()
    {
        var c = Established(timestamps: true);
        var t = Tcp.Peek(c)!;
        Tcp.Send(c, Bytes(6 * 1448), MessageFlags.None, out _);
        var first = Expect(TcpFlags.Ack, seq: OurNxt, length: 1448);
        for (int i = 1; i < 6; i++) Expect(TcpFlags.Ack, length: 1448);
        int cwndBefore = t.Cwnd;
        Advance(5);
        // Reordering: segment 1 is late; the peer SACKs 2..4 first.
        var sack = Seg(TcpFlags.Ack, PeerNxt, OurNxt);
        sack.Options.TsEcr = first.Header.Options.TsVal;
        sack.Options.SackCount = 1;
        sack.Options.Sack[0] = new SackBlock(OurNxt + 1448, OurNxt + 4 * 1448);
        Send(sack);
        var rx = Expect(TcpFlags.Ack, seq: OurNxt, length: 1448);
        Assert.That(rx.Header.Options.TsVal, Is.GreaterThan(first.Header.Options.TsVal));
        Assert.That(t.Cwnd, Is.LessThan(cwndBefore), "window reduced on entering recovery");
        // Then the original arrives: its ACK echoes the original's timestamp, older than the retransmission's.
        var ack = Seg(TcpFlags.Ack, PeerNxt, OurNxt + 6 * 1448);
        ack.Options.TsEcr = first.Header.Options.TsVal;
        Send(ack);
        Assert.That(Tcp.Counters.SpuriousRecoveriesUndone, Is.EqualTo(1));
        Assert.That(t.InRecovery, Is.False);
        Assert.That(t.Cwnd, Is.GreaterThanOrEqualTo(cwndBefore));
    }
}

public class TcpWrapTests : TcpFixture
{
    [Test]
    public void ReceiveAcrossSequenceWrapWithReordering()
    {
        ListenOn();
        var isn = new SeqNum(0xFFFF_FE00);
        Send(SynWithOptions(isn));
        var sa = Expect(TcpFlags.Syn | TcpFlags.Ack, ack: isn + 1);
        PeerNxt = isn + 1;
        OurNxt = sa.Header.Seq + 1;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt));
        Assert.That(Tcp.Accept(Listener, out var c, out _), Is.EqualTo(Errno.Ok));
        var start = PeerNxt;
        PeerNxt = start + 400;
        SendData(400);                    // crosses 2^32, out of order
        var dup = Expect(TcpFlags.Ack, ack: start);
        Assert.That(dup.Header.Options.Sack[0].Left, Is.EqualTo(start + 400));
        PeerNxt = start;
        SendData(400);
        Expect(TcpFlags.Ack, ack: start + 800);
        Assert.That((start + 800).Value, Is.LessThan(0x1000u), "wrapped");
        var buf = new byte[1000];
        Tcp.Receive(c, buf, MessageFlags.None, out int n);
        Assert.That(n, Is.EqualTo(800));
        for (int i = 0; i < 800; i++) Assert.That(buf[i], Is.EqualTo(unchecked((byte)(start.Value + (uint)i))));
    }

    [Test]
    public void SendAcrossSequenceWrapWithSackRecovery()
    {
        // Learn the ISN this tuple gets now, then move the clock so that the next one sits just below 2^32
        // (RFC 6528: ISN = 4 µs clock + keyed hash of the tuple).
        var c0 = Established();
        SeqNum isn0 = OurNxt - 1;
        Send(Seg(TcpFlags.Rst, PeerNxt));
        Tcp.Close(c0);
        uint delta = unchecked(0xFFFF_F000u - isn0.Value);
        NowUs += (long)delta * 4;
        Send(SynWithOptions(new SeqNum(PeerIsn)));
        var sa = Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.That(sa.Header.Seq.Value, Is.InRange(0xFFFF_F000u, 0xFFFF_F010u));
        PeerNxt = new SeqNum(PeerIsn + 1);
        OurNxt = sa.Header.Seq + 1;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt));
        Assert.That(Tcp.Accept(Listener, out var c, out _), Is.EqualTo(Errno.Ok));
        Tcp.Send(c, Bytes(6 * 1460), MessageFlags.None, out _);
        for (int i = 0; i < 6; i++) Expect(TcpFlags.Ack, seq: OurNxt + i * 1460, length: 1460);
        var ack = Seg(TcpFlags.Ack, PeerNxt, OurNxt + 1460);
        ack.Options.SackCount = 1;
        ack.Options.Sack[0] = new SackBlock(OurNxt + 2 * 1460, OurNxt + 6 * 1460);
        Send(ack);
        Expect(TcpFlags.Ack, seq: OurNxt + 1460, length: 1460);
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 6 * 1460));
        Assert.That((OurNxt + 6 * 1460).Value, Is.LessThan(0x10000u), "wrapped");
        var t = Tcp.Peek(c)!;
        Assert.That(t.SndCount, Is.Zero);
        Assert.That(t.InRecovery, Is.False);
        Assert.That(Tcp.Counters.RtoTimeouts, Is.Zero);
    }
}

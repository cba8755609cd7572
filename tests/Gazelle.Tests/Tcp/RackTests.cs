using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>RACK-TLP loss detection (RFC 8985) against a scripted peer, on the virtual clock.</summary>
public class RackTests : TcpFixture
{
    private const int Mss = 1460;

    /// <summary>A passive open whose handshake takes <paramref name="rttMs"/>: SRTT = min_RTT = that.</summary>
    private SocketHandle EstablishedWithRtt(int rttMs)
    {
        ListenOn();
        Send(SynWithOptions(new SeqNum(PeerIsn)));
        var synAck = Expect(TcpFlags.Syn | TcpFlags.Ack, ack: new SeqNum(PeerIsn + 1));
        PeerNxt = new SeqNum(PeerIsn + 1);
        OurNxt = synAck.Header.Seq + 1;
        NowUs += rttMs * 1000;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt));
        Assert.That(Tcp.Accept(Listener, out var c, out _), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Peek(c)!.MinRttMicros, Is.EqualTo(rttMs * 1000));
        return c;
    }

    /// <summary>An ACK of <paramref name="ack"/> with SACK blocks given as segment numbers [from, to).</summary>
    private TcpRepr SackAck(SeqNum ack, params (int From, int To)[] blocks)
    {
        var r = Seg(TcpFlags.Ack, PeerNxt, ack);
        r.Options.SackCount = (byte)blocks.Length;
        for (int i = 0; i < blocks.Length; i++)
            r.Options.Sack[i] = new SackBlock(OurNxt + blocks[i].From * Mss, OurNxt + blocks[i].To * Mss);
        return r;
    }

    private void SendSegments(SocketHandle c, int n)
    {
        Assert.That(Tcp.Send(c, Bytes(n * Mss), MessageFlags.None, out int k), Is.EqualTo(Errno.Ok));
        Assert.That(k, Is.EqualTo(n * Mss));
        for (int i = 0; i < n; i++) Expect(TcpFlags.Ack, seq: OurNxt + i * Mss, length: Mss);
        ExpectNothing();
    }

    [Test]
    public void ReorderingShorterThanTheWindowRetransmitsNothing()
    {
        var c = EstablishedWithRtt(10);
        SendSegments(c, 4);
        NowUs += 10_000;
        Send(SackAck(OurNxt, (1, 2))); // segment 1 overtook segment 0
        ExpectNothing();
        Assert.That(Tcp.Peek(c)!.RackDeadline, Is.Not.EqualTo(Instant.Never), "the reordering timer waits for segment 0");
        NowUs += 1_000;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 2 * Mss)); // segment 0 arrives 1 ms late: within min_RTT/4
        Advance(5);
        ExpectNothing();
        Assert.That(Tcp.Counters.RetransmittedSegments, Is.Zero);
        Assert.That(Tcp.Counters.RackReorderingSeen, Is.EqualTo(1));
        Assert.That(Tcp.Peek(c)!.RackDeadline, Is.EqualTo(Instant.Never));
    }

    [Test]
    public void ReorderingTimerMarksTheSegmentLostAfterRttPlusReorderingWindow()
    {
        var c = EstablishedWithRtt(10);
        long sentAt = NowUs;
        SendSegments(c, 4);
        NowUs += 10_000;
        Send(SackAck(OurNxt, (1, 2)));
        ExpectNothing();
        // RFC 8985 §6.3: lost at xmit_ts + RACK.rtt (10 ms) + reo_wnd (min_RTT/4 = 2.5 ms), not before.
        Advance(2);
        ExpectNothing();
        Advance(1);
        Expect(TcpFlags.Ack, seq: OurNxt, length: Mss);
        ExpectNothing(); // segments 2 and 3 were sent after segment 1 (the one delivered): not lost
        Assert.That(Tcp.Counters.RackReorderTimeouts, Is.EqualTo(1));
        Assert.That(Tcp.Counters.RackLost, Is.EqualTo(1));
        Assert.That(Tcp.Counters.FastRetransmits, Is.EqualTo(1));
        Assert.That(Tcp.Counters.RtoTimeouts, Is.Zero);
        Assert.That(NowUs - sentAt, Is.LessThan(20_000), "repaired long before the tail loss probe or the RTO");
    }

    [Test]
    public void ThreeSegmentsSackedWithoutReorderingSeenMeanLossAtOnce()
    {
        var c = EstablishedWithRtt(10);
        SendSegments(c, 5);
        NowUs += 10_000;
        Send(SackAck(OurNxt, (1, 4))); // DupThresh segments delivered above the hole: reo_wnd is 0
        Expect(TcpFlags.Ack, seq: OurNxt, length: Mss);
        Assert.That(Tcp.Counters.FastRetransmits, Is.EqualTo(1));
    }

    [Test]
    public void LostRetransmissionIsFoundByTimeAndResent()
    {
        var c = EstablishedWithRtt(10);
        SendSegments(c, 8);
        NowUs += 10_000;
        Send(SackAck(OurNxt, (1, 8)));
        Expect(TcpFlags.Ack, seq: OurNxt, length: Mss); // segment 0 lost: retransmitted
        ExpectNothing();
        // New data goes out after the retransmission (pipe is one segment, cwnd four).
        Assert.That(Tcp.Send(c, Bytes(3 * Mss), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        for (int i = 8; i < 11; i++) Expect(TcpFlags.Ack, seq: OurNxt + i * Mss, length: Mss);
        ExpectNothing();
        NowUs += 10_000;
        // The new data arrives; the retransmission, sent before it, does not: it is lost too.
        Send(SackAck(OurNxt, (1, 11)));
        Expect(TcpFlags.Ack, seq: OurNxt, length: Mss);
        Assert.That(Tcp.Counters.LostRetransmits, Is.EqualTo(1));
        Assert.That(Tcp.Counters.RtoTimeouts, Is.Zero);
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 11 * Mss));
        Assert.That(Tcp.Peek(c)!.InRecovery, Is.False);
    }

    [Test]
    public void TailLossIsRepairedByTheProbeAndRack()
    {
        var c = EstablishedWithRtt(10);
        SendSegments(c, 10);
        NowUs += 10_000;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 7 * Mss)); // the last three were lost
        ExpectNothing();
        Advance(25); // PTO = 2·SRTT (RFC 8985 §7.2)
        Expect(TcpFlags.Ack, seq: OurNxt + 9 * Mss, length: Mss); // the probe: the last segment again
        Assert.That(Tcp.Counters.TailLossProbes, Is.EqualTo(1));
        NowUs += 10_000;
        Send(SackAck(OurNxt + 7 * Mss, (9, 10))); // the probe arrived: 7 and 8, sent before it, are lost
        Expect(TcpFlags.Ack, seq: OurNxt + 7 * Mss, length: Mss);
        Expect(TcpFlags.Ack, seq: OurNxt + 8 * Mss, length: Mss);
        ExpectNothing();
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 10 * Mss));
        Assert.That(Tcp.Counters.RtoTimeouts, Is.Zero);
        Assert.That(Tcp.Counters.FastRetransmits, Is.EqualTo(1));
        Assert.That(Tcp.Peek(c)!.SndUna, Is.EqualTo(Tcp.Peek(c)!.SndMax));
    }

    [Test]
    public void DsackOfASpuriousRetransmissionGrowsTheWindowAndUndoesTheReduction()
    {
        var c = EstablishedWithRtt(10);
        SendSegments(c, 6);
        var t = Tcp.Peek(c)!;
        int cwndBefore = t.Cwnd;
        NowUs += 10_000;
        Send(SackAck(OurNxt, (1, 6)));
        Expect(TcpFlags.Ack, seq: OurNxt, length: Mss);
        Assert.That(t.Cwnd, Is.LessThan(cwndBefore));
        NowUs += 1_000;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 6 * Mss)); // the original was only late
        Assert.That(t.InRecovery, Is.False);
        NowUs += 9_000;
        var dsack = Seg(TcpFlags.Ack, PeerNxt, OurNxt + 6 * Mss); // RFC 2883: the retransmission arrived twice
        dsack.Options.SackCount = 1;
        dsack.Options.Sack[0] = new SackBlock(OurNxt, OurNxt + Mss);
        Send(dsack);
        Assert.That(Tcp.Counters.SpuriousRetransmits, Is.EqualTo(1));
        Assert.That(Tcp.Counters.DsackUndos, Is.EqualTo(1));
        Assert.That(Tcp.Counters.RackReoWndGrowths, Is.EqualTo(1));
        Assert.That(t.RackReoWndMult, Is.EqualTo(2), "reo_wnd = 2 · min_RTT/4 (RFC 8985 §6.2 step 4)");
        Assert.That(t.Cwnd, Is.GreaterThanOrEqualTo(cwndBefore), "the reduction is undone");
        Assert.That(t.Ssthresh, Is.EqualTo(int.MaxValue));
    }

    [Test]
    public void RecoveryEndedByAnOriginalIsUndone()
    {
        UseTimestamps = true;
        var c = EstablishedWithRtt(10);
        const int TsMss = 1448; // 1460 less the timestamp option
        Assert.That(Tcp.Send(c, Bytes(6 * TsMss), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        var originals = new uint[6];
        for (int i = 0; i < 6; i++) originals[i] = Expect(TcpFlags.Ack, seq: OurNxt + i * TsMss, length: TsMss).Header.Options.TsVal;
        var t = Tcp.Peek(c)!;
        int cwndBefore = t.Cwnd;
        NowUs += 10_000;
        PeerTs += 10;
        var sack = Seg(TcpFlags.Ack, PeerNxt, OurNxt);
        sack.Options.TsEcr = originals[5];
        sack.Options.SackCount = 1;
        sack.Options.Sack[0] = new SackBlock(OurNxt + 2 * TsMss, OurNxt + 6 * TsMss);
        Send(sack); // four SACKed above two holes: both lost, both resent
        Expect(TcpFlags.Ack, seq: OurNxt, length: TsMss);
        Expect(TcpFlags.Ack, seq: OurNxt + TsMss, length: TsMss);
        Assert.That(t.InRecovery, Is.True);
        // The originals were only late: each ACK echoes the original's timestamp (RFC 7323 §4.3).
        NowUs += 1_000;
        PeerTs += 1;
        var partial = Seg(TcpFlags.Ack, PeerNxt, OurNxt + TsMss);
        partial.Options.TsEcr = originals[0];
        Send(partial);
        Assert.That(Tcp.Counters.SpuriousRecoveriesUndone, Is.Zero, "two retransmissions: the first ACK alone proves nothing");
        PeerTs += 1;
        var full = Seg(TcpFlags.Ack, PeerNxt, OurNxt + 6 * TsMss);
        full.Options.TsEcr = originals[1];
        Send(full);
        Assert.That(t.InRecovery, Is.False);
        Assert.That(Tcp.Counters.SpuriousRecoveriesUndone, Is.EqualTo(1));
        Assert.That(t.Cwnd, Is.GreaterThanOrEqualTo(cwndBefore));
    }
}

/// <summary>RACK over the simulated link: reordering is not loss; loss among reordering is still repaired fast.</summary>
public class RackSimLinkTests
{
    private static (Transfer t, bool ok) Run(double loss, double reorder, long reorderMaxMicros, long bytes, int seed)
    {
        var link = new SimLink(seed) { Loss = loss, Reorder = reorder, ReorderMaxMicros = reorderMaxMicros };
        var t = new Transfer(link, seed);
        Assert.That(t.Connect(), Is.True, "connect");
        long start = link.Now;
        bool ok = t.Run(bytes, start + 120_000_000);
        var c = link.A.Counters;
        TestContext.Out.WriteLine(
            $"loss={loss} reorder={reorder} max={reorderMaxMicros}us virtual={(link.Now - start) / 1e6:F3}s reordered={link.Reordered} " +
            $"rexmit={c.RetransmittedSegments} fastrx={c.FastRetransmits} rto={c.RtoTimeouts} rackLost={c.RackLost} timers={c.RackReorderTimeouts} " +
            $"reoGrowth={c.RackReoWndGrowths} spurious={c.SpuriousRetransmits} undos={c.DsackUndos}+{c.SpuriousRecoveriesUndone} tlp={c.TailLossProbes}");
        Assert.That(t.Mismatches, Is.Zero);
        Assert.That(link.WireErrors, Is.Zero);
        return (t, ok);
    }

    /// <summary>5% of the segments held back up to a quarter of the RTT (min_RTT/4 is RACK's first window):
    /// without loss, a retransmission is spurious; a DupThresh sender retransmits for most of them.</summary>
    [Test]
    public void ReorderingWithoutLossCausesFewSpuriousRetransmissions()
    {
        var (t, ok) = Run(0, 0.05, 0, 20_000_000, 21);
        Assert.That(ok, Is.True);
        var c = t.Link.A.Counters;
        Assert.That(t.Link.Reordered, Is.GreaterThan(500));
        Assert.That(c.RetransmittedSegments * 50, Is.LessThan(t.Link.Reordered), "at most 2% of the reordered segments resent");
        Assert.That(c.RtoTimeouts, Is.Zero);
    }

    /// <summary>Segments held back up to the whole RTT: the first window is too short, the D-SACKs of the
    /// spurious retransmissions widen it (RFC 8985 §6.2 step 4) and undo the reductions.</summary>
    [Test]
    public void LongReorderingWidensTheWindow()
    {
        var (t, ok) = Run(0, 0.05, 2000, 20_000_000, 22);
        Assert.That(ok, Is.True);
        var c = t.Link.A.Counters;
        Assert.That(c.RackReoWndGrowths, Is.GreaterThan(0));
        Assert.That(c.SpuriousRetransmits, Is.GreaterThan(0));
        Assert.That(c.RetransmittedSegments * 10, Is.LessThan(t.Link.Reordered), "most reordered segments cost nothing");
        Assert.That(c.RtoTimeouts, Is.Zero);
    }

    /// <summary>Real loss among reordering is repaired by RACK in fast recovery, not by timeouts.</summary>
    [Test]
    public void LossAmongReorderingIsRepairedWithoutTimeouts()
    {
        var (t, ok) = Run(0.02, 0.05, 0, 20_000_000, 23);
        Assert.That(ok, Is.True);
        var c = t.Link.A.Counters;
        Assert.That(c.RackLost, Is.GreaterThan(t.Link.Dropped / 2));
        Assert.That(c.RtoTimeouts * 20, Is.LessThan(c.FastRetransmits));
        Assert.That(c.RetransmittedSegments, Is.LessThan(2 * t.Link.Dropped + 50), "few spurious retransmissions on top of the losses");
    }
}

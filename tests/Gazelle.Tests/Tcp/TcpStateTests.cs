using System.Buffers.Binary;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

public class TcpStateTests : TcpFixture
{
    [Test]
    public void PassiveOpenNegotiatesOptionsAndAccepts()
    {
        ListenOn();
        UseTimestamps = true;
        Send(SynWithOptions(new SeqNum(PeerIsn), sack: true, wscale: 7));
        var sa = Expect(TcpFlags.Syn | TcpFlags.Ack, ack: new SeqNum(PeerIsn + 1), length: 0);
        Assert.That(sa.Header.Options.Mss, Is.EqualTo(1460));
        Assert.That(sa.Header.Options.SackPermitted, Is.True);
        Assert.That(sa.Header.Options.HasWindowScale, Is.True);
        Assert.That(sa.Header.Options.TsEcr, Is.EqualTo(PeerTs));
        Assert.That(Tcp.Accept(Listener, out _, out _), Is.EqualTo(Errno.EAGAIN), "not before the handshake completes");
        Send(Seg(TcpFlags.Ack, new SeqNum(PeerIsn + 1), sa.Header.Seq + 1));
        Assert.That(Tcp.GetReadiness(Listener), Is.EqualTo(Readiness.Readable));
        Assert.That(Tcp.Accept(Listener, out var c, out _), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Established));
        Assert.That(Tcp.GetReadiness(c) & Readiness.Writable, Is.EqualTo(Readiness.Writable));
        Assert.That(Tcp.Counters.PassiveOpens, Is.EqualTo(1));
    }

    [Test]
    public void ActiveOpenAndRandomisedPorts()
    {
        var s = ActiveEstablished(out ushort p1);
        Assert.That(p1, Is.InRange(TcpLayer.EphemeralLow, TcpLayer.EphemeralHigh));
        Assert.That(Tcp.GetRemoteEndpoint(s, out var r), Is.EqualTo(Errno.Ok));
        Assert.That(r.Port, Is.EqualTo(80));
        Assert.That(Tcp.Open(SocketKind.Tcp, out var s2), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Connect(s2, new Ipv4Endpoint(Remote, 80)), Is.EqualTo(Errno.EINPROGRESS));
        var syn2 = Out.Segments.Dequeue();
        Assert.That(syn2.Header.SrcPort, Is.Not.EqualTo(p1));
        Assert.That(Tcp.Connect(s2, new Ipv4Endpoint(Remote, 80)), Is.EqualTo(Errno.EALREADY));
    }

    [Test]
    public void IsnsDependOnTupleAndClock()
    {
        Assert.That(Tcp.Open(SocketKind.Tcp, out var a), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Open(SocketKind.Tcp, out var b), Is.EqualTo(Errno.Ok));
        Tcp.Connect(a, new Ipv4Endpoint(Remote, 80));
        Tcp.Connect(b, new Ipv4Endpoint(Remote, 81));
        var s1 = Out.Segments.Dequeue().Header.Seq;
        var s2 = Out.Segments.Dequeue().Header.Seq;
        Assert.That(Math.Abs(s1 - s2), Is.GreaterThan(100_000), "keyed hash spreads ISNs of different tuples");
    }

    [Test]
    public void SimultaneousOpen()
    {
        Assert.That(Tcp.Open(SocketKind.Tcp, out var s), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Bind(s, new Ipv4Endpoint(Local, LocalPort)), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Connect(s, new Ipv4Endpoint(Remote, RemotePort)), Is.EqualTo(Errno.EINPROGRESS));
        var syn = Expect(TcpFlags.Syn);
        Send(Seg(TcpFlags.Syn, new SeqNum(PeerIsn)));
        Assert.That(Tcp.GetState(s), Is.EqualTo(TcpState.SynReceived));
        Expect(TcpFlags.Syn | TcpFlags.Ack, seq: syn.Header.Seq, ack: new SeqNum(PeerIsn + 1));
        Send(Seg(TcpFlags.Syn | TcpFlags.Ack, new SeqNum(PeerIsn), syn.Header.Seq + 1));
        Assert.That(Tcp.GetState(s), Is.EqualTo(TcpState.Established));
        Expect(TcpFlags.Ack, seq: syn.Header.Seq + 1, ack: new SeqNum(PeerIsn + 1));
    }

    [Test]
    public void ClosedPortAnswersWithReset()
    {
        Send(Seg(TcpFlags.Syn, new SeqNum(5)));
        Expect(TcpFlags.Rst | TcpFlags.Ack, seq: new SeqNum(0), ack: new SeqNum(6));
        Send(Seg(TcpFlags.Ack, new SeqNum(5), new SeqNum(777)));
        Expect(TcpFlags.Rst, seq: new SeqNum(777));
        Send(Seg(TcpFlags.Rst, new SeqNum(5)));
        ExpectNothing();
        Assert.That(Tcp.Counters.NoSocket, Is.EqualTo(3));
    }

    [Test]
    public void ExactResetAbortsWithEconnreset()
    {
        var c = Established();
        Send(Seg(TcpFlags.Rst, PeerNxt));
        ExpectNothing();
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Closed));
        Assert.That(Tcp.GetReadiness(c) & Readiness.Error, Is.EqualTo(Readiness.Error));
        Assert.That(Tcp.Receive(c, new byte[10], MessageFlags.None, out _), Is.EqualTo(Errno.ECONNRESET));
        Assert.That(Tcp.Close(c), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.LiveConnections, Is.EqualTo(1), "only the listener remains");
    }

    [Test]
    public void InWindowResetGetsChallengeAck()
    {
        var c = Established();
        Send(Seg(TcpFlags.Rst, PeerNxt + 100));
        Expect(TcpFlags.Ack, seq: OurNxt, ack: PeerNxt);
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Established));
        Assert.That(Tcp.Counters.RstChallenged, Is.EqualTo(1));
        Send(Seg(TcpFlags.Rst, PeerNxt + 10_000_000));
        ExpectNothing();
        Assert.That(Tcp.Counters.RstOutOfWindow, Is.EqualTo(1));
    }

    [Test]
    public void SynOnEstablishedGetsChallengeAck()
    {
        var c = Established();
        Send(Seg(TcpFlags.Syn, PeerNxt + 5));
        Expect(TcpFlags.Ack, seq: OurNxt, ack: PeerNxt);
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Established));
        Assert.That(Tcp.Counters.SynChallenged, Is.EqualTo(1));
    }

    [Test]
    public void AckForUnsentDataIsAnsweredAndDropped()
    {
        var c = Established();
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 5000));
        Expect(TcpFlags.Ack, seq: OurNxt, ack: PeerNxt);
        Assert.That(Tcp.Counters.AckTooNew, Is.EqualTo(1));
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Established));
    }

    [Test]
    public void DelayedAckAfter40ms()
    {
        var c = Established();
        SendData(100);
        ExpectNothing();
        Advance(30);
        ExpectNothing();
        Advance(15);
        Expect(TcpFlags.Ack, ack: PeerNxt);
        var buf = new byte[200];
        Assert.That(Tcp.Receive(c, buf, MessageFlags.None, out int n), Is.EqualTo(Errno.Ok));
        Assert.That(n, Is.EqualTo(100));
        Assert.That(buf[1], Is.EqualTo(unchecked((byte)(PeerIsn + 2))));
        Assert.That(Tcp.Receive(c, buf, MessageFlags.None, out _), Is.EqualTo(Errno.EAGAIN));
    }

    [Test]
    public void FirstSegmentsAreAckedAtOnceInQuickAckMode()
    {
        Tcp.QuickAcks = 2;
        var c = Established();
        SendData(100);
        Expect(TcpFlags.Ack, ack: PeerNxt);
        SendData(100);
        Expect(TcpFlags.Ack, ack: PeerNxt);
        SendData(100); // quick ACKs used up: delayed from here on
        ExpectNothing();
        Advance(45);
        Expect(TcpFlags.Ack, ack: PeerNxt);
        Assert.That(Tcp.Receive(c, new byte[400], MessageFlags.None, out int n), Is.EqualTo(Errno.Ok));
        Assert.That(n, Is.EqualTo(300));
    }

    [Test]
    public void AQuickAckWaitsALittleAndRidesOnAReplySentMeanwhile()
    {
        Tcp.QuickAcks = 4;
        Tcp.AckSoonEnabled = true;
        var c = Established();
        SendData(100); // a request
        ExpectNothing();
        Tcp.Poll(Now); // the end of the poll that received it
        ExpectNothing();
        Assert.That(Tcp.Send(c, Bytes(300), MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.EqualTo(300));
        Expect(TcpFlags.Ack, seq: OurNxt, ack: PeerNxt, length: 300); // the reply carries the ACK
        OurNxt += 300;
        Advance(1);
        ExpectNothing(); // nothing left owed
        SendData(100); // a request nobody answers
        Tcp.Poll(Now);
        ExpectNothing();
        NowUs += TcpLayer.AckSoonMicros - 1;
        Tcp.Poll(Now);
        ExpectNothing();
        NowUs += 1;
        Tcp.Poll(Now); // its wait is over: the ACK goes alone
        Expect(TcpFlags.Ack, ack: PeerNxt, length: 0);
        Assert.That(Tcp.Counters.AcksSentLate, Is.EqualTo(1));
        Assert.That(Tcp.Receive(c, new byte[400], MessageFlags.None, out int n), Is.EqualTo(Errno.Ok));
        Assert.That(n, Is.EqualTo(200));
    }

    [Test]
    public void TheAckOfAFinIntoCloseWaitRidesOnTheProgramsFin()
    {
        Tcp.AckSoonEnabled = true;
        var c = Established();
        Send(Seg(TcpFlags.Fin | TcpFlags.Ack, PeerNxt, OurNxt));
        PeerNxt += 1;
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.CloseWait));
        ExpectNothing();
        Assert.That(Tcp.Close(c), Is.EqualTo(Errno.Ok));
        Expect(TcpFlags.Fin | TcpFlags.Ack, seq: OurNxt, ack: PeerNxt); // one segment: our FIN and the ACK of theirs
        ExpectNothing();
        OurNxt += 1;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt));
        Advance(1);
        ExpectNothing();
    }

    [Test]
    public void EverySecondFullSegmentIsAckedAtOnce()
    {
        Established();
        SendData(1460);
        ExpectNothing();
        SendData(1460);
        Expect(TcpFlags.Ack, ack: PeerNxt);
    }

    [Test]
    public void OutOfOrderDataIsSackedAndReassembled()
    {
        var c = Established(timestamps: true);
        var first = PeerNxt;
        PeerNxt += 1000;
        SendData(1000); // second block first
        var dup = Expect(TcpFlags.Ack, ack: first);
        Assert.That(dup.Header.Options.SackCount, Is.EqualTo(1));
        Assert.That(dup.Header.Options.Sack[0], Is.EqualTo(new SackBlock(first + 1000, first + 2000)));
        Assert.That(Tcp.Available(c, out int avail), Is.EqualTo(Errno.Ok));
        Assert.That(avail, Is.Zero);
        var end = PeerNxt;
        PeerNxt = first;
        SendData(1000);
        var full = Expect(TcpFlags.Ack, ack: end);
        Assert.That(full.Header.Options.SackCount, Is.Zero);
        var buf = new byte[4000];
        Tcp.Receive(c, buf, MessageFlags.None, out int n);
        Assert.That(n, Is.EqualTo(2000));
        for (int i = 0; i < 2000; i++) Assert.That(buf[i], Is.EqualTo((byte)(first.Value + (uint)i)));
    }

    [Test]
    public void TimeWaitLastsWhatTheConfigSaysAndIsCountedByState()
    {
        Tcp = new TcpLayer(new Gazelle.Stack.StackConfig { Address = Local, Netmask = new Ipv4Address(255, 255, 255, 0), MaxTcpConnections = 16, TimeWaitMicros = 1_000_000 }, Out);
        Tcp.QuickAcks = 0;
        var c = Established();
        Assert.That(Tcp.Close(c), Is.EqualTo(Errno.Ok));
        Expect(TcpFlags.Fin | TcpFlags.Ack, seq: OurNxt, ack: PeerNxt);
        OurNxt += 1;
        Send(Seg(TcpFlags.Fin | TcpFlags.Ack, PeerNxt, OurNxt));
        PeerNxt += 1;
        Expect(TcpFlags.Ack, ack: PeerNxt);
        Span<int> states = stackalloc int[(int)TcpState.Closing + 1];
        Tcp.CountByState(states);
        Assert.That(states[(int)TcpState.TimeWait], Is.EqualTo(1));
        Assert.That(states[(int)TcpState.Listen], Is.EqualTo(1));
        Advance(900);
        Assert.That(Tcp.LiveConnections, Is.EqualTo(2), "still in TIME_WAIT before 1 s");
        Advance(200);
        Tcp.CountByState(states);
        Assert.That(Tcp.LiveConnections, Is.EqualTo(1), "gone after the configured 2MSL");
        Assert.That(states[(int)TcpState.TimeWait], Is.Zero);
        Assert.That(Tcp.FlowTableCount, Is.Zero);
        Tcp.Close(Listener);
    }

    [Test]
    public void ActiveCloseGoesThroughTimeWaitAndFreesEverything()
    {
        var c = Established();
        Assert.That(Tcp.Shutdown(c, ShutdownHow.Write), Is.EqualTo(Errno.Ok));
        Expect(TcpFlags.Fin | TcpFlags.Ack, seq: OurNxt, ack: PeerNxt);
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.FinWait1));
        Assert.That(Tcp.Send(c, new byte[1], MessageFlags.None, out _), Is.EqualTo(Errno.EPIPE));
        OurNxt += 1;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt));
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.FinWait2));
        SendData(10); // half-close: we still receive
        Send(Seg(TcpFlags.Fin | TcpFlags.Ack, PeerNxt, OurNxt));
        PeerNxt += 1;
        Expect(TcpFlags.Ack, ack: PeerNxt);
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.TimeWait));
        var buf = new byte[100];
        Assert.That(Tcp.Receive(c, buf, MessageFlags.None, out int n), Is.EqualTo(Errno.Ok));
        Assert.That(n, Is.EqualTo(10));
        Assert.That(Tcp.Receive(c, buf, MessageFlags.None, out n), Is.EqualTo(Errno.Ok));
        Assert.That(n, Is.Zero, "EOF");
        Assert.That(Tcp.Close(c), Is.EqualTo(Errno.Ok));
        // A retransmitted FIN in TIME-WAIT is acknowledged again.
        Send(Seg(TcpFlags.Fin | TcpFlags.Ack, PeerNxt - 1, OurNxt));
        Expect(TcpFlags.Ack, ack: PeerNxt);
        Advance(59_000);
        Assert.That(Tcp.LiveConnections, Is.EqualTo(2));
        Advance(2_000);
        Assert.That(Tcp.LiveConnections, Is.EqualTo(1));
        Tcp.Close(Listener);
        Assert.That(Tcp.LiveConnections, Is.Zero);
        Assert.That(Tcp.FlowTableCount, Is.Zero);
    }

    [Test]
    public void PassiveCloseThroughCloseWaitAndLastAck()
    {
        var c = Established();
        Send(Seg(TcpFlags.Fin | TcpFlags.Ack, PeerNxt, OurNxt));
        PeerNxt += 1;
        Expect(TcpFlags.Ack, ack: PeerNxt);
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.CloseWait));
        Assert.That(Tcp.GetReadiness(c) & Readiness.ReadHangUp, Is.EqualTo(Readiness.ReadHangUp));
        Assert.That(Tcp.Send(c, Bytes(5), MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        Expect(TcpFlags.Ack, seq: OurNxt, length: 5);
        OurNxt += 5;
        Tcp.Close(c);
        Expect(TcpFlags.Fin | TcpFlags.Ack, seq: OurNxt);
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.LastAck));
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 1));
        Assert.That(Tcp.LiveConnections, Is.EqualTo(1));
    }

    [Test]
    public void SimultaneousCloseGoesThroughClosing()
    {
        var c = Established();
        Tcp.Shutdown(c, ShutdownHow.Write);
        Expect(TcpFlags.Fin | TcpFlags.Ack, seq: OurNxt);
        Send(Seg(TcpFlags.Fin | TcpFlags.Ack, PeerNxt, OurNxt)); // their FIN crosses ours
        PeerNxt += 1;
        Expect(TcpFlags.Ack, ack: PeerNxt);
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Closing));
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 1));
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.TimeWait));
    }

    [Test]
    public void RetransmissionBacksOffAndTimesOut()
    {
        Tcp.SackEnabled = false; // no tail loss probe: the RTO alone
        var c = Established(sack: false);
        Tcp.Send(c, Bytes(100), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, seq: OurNxt, length: 100);
        Advance(150);
        ExpectNothing();
        Advance(100);
        Expect(TcpFlags.Ack, seq: OurNxt, length: 100); // first RTO ~200 ms
        Advance(300);
        ExpectNothing();
        Advance(200);
        Expect(TcpFlags.Ack, seq: OurNxt, length: 100); // doubled: ~400 ms
        int retransmits = 2;
        for (int i = 0; i < 2000 && Tcp.GetState(c) == TcpState.Established; i++)
        {
            Advance(1000);
            while (Out.Segments.Count > 0) { Out.Segments.Dequeue(); retransmits++; }
        }
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Closed));
        Assert.That(retransmits, Is.EqualTo(TcpLayer.MaxRetries));
        Assert.That(Tcp.TakeError(c), Is.EqualTo(Errno.ETIMEDOUT));
        Assert.That(Tcp.Counters.RtoTimeouts, Is.EqualTo(TcpLayer.MaxRetries));
    }

    [Test]
    public void SynRetriesThenEtimedout()
    {
        Assert.That(Tcp.Open(SocketKind.Tcp, out var s), Is.EqualTo(Errno.Ok));
        Tcp.Connect(s, new Ipv4Endpoint(Remote, 80));
        Expect(TcpFlags.Syn);
        Advance(1000);
        Expect(TcpFlags.Syn);
        Advance(2000);
        Expect(TcpFlags.Syn);
        Advance(200_000);
        Assert.That(Out.Segments.Count, Is.EqualTo(TcpLayer.SynRetries - 2));
        Assert.That(Tcp.GetState(s), Is.EqualTo(TcpState.Closed));
        Assert.That(Tcp.TakeError(s), Is.EqualTo(Errno.ETIMEDOUT));
    }

    [Test]
    public void PawsDropsOldTimestamp()
    {
        var c = Established(timestamps: true);
        PeerTs = 50; // older than the 100 we saw
        SendData(10);
        Expect(TcpFlags.Ack, ack: PeerNxt - 10);
        Assert.That(Tcp.Counters.PawsRejected, Is.EqualTo(1));
        Tcp.Available(c, out int a);
        Assert.That(a, Is.Zero);
    }

    [TestCase(1u, 0)]      // reordered by 1 ms: a disordered duplicate ACK, accepted
    [TestCase(5000u, 1)]   // older than an RTO: PAWS still drops it
    public void ReorderedDuplicateAckPassesPaws(uint olderBy, int rejected)
    {
        var c = Established(timestamps: true);
        const int Mss = 1448; // 1460 less the timestamp option
        Tcp.Send(c, Bytes(8 * Mss), MessageFlags.None, out _);
        for (int i = 0; i < 8; i++) Expect(TcpFlags.Ack, seq: OurNxt + i * Mss, length: Mss);
        // Segment 1 is lost; the peer's duplicate ACKs for segments 2 and 3 arrive in the wrong order
        // (a reordering path), so the second carries an older TSval than TS.Recent.
        PeerTs = 10_000;
        var later = Seg(TcpFlags.Ack, PeerNxt, OurNxt);
        later.Options.SackCount = 1;
        later.Options.Sack[0] = new SackBlock(OurNxt + 2 * Mss, OurNxt + 4 * Mss);
        Send(later);
        // With this script's zero RTT, RACK (RFC 8985) finds the hole lost at once and resends it; what
        // matters here is how the reordered ACK that follows is taken.
        Out.Segments.Clear();
        PeerTs = 10_000 - olderBy;
        var earlier = Seg(TcpFlags.Ack, PeerNxt, OurNxt);
        earlier.Options.SackCount = 1;
        earlier.Options.Sack[0] = new SackBlock(OurNxt + 2 * Mss, OurNxt + 3 * Mss);
        Send(earlier);
        Assert.That(Tcp.Counters.PawsRejected, Is.EqualTo(rejected));
        Assert.That(Tcp.Counters.DuplicateAcks, Is.EqualTo(2 - rejected));
        if (rejected == 0) ExpectNothing(); // not answered: nothing was wrong with it
        else Expect(TcpFlags.Ack, seq: OurNxt + 8 * Mss);
    }

    [Test]
    public void ZeroWindowIsProbed()
    {
        var c = Established();
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt, window: 0));
        Tcp.Send(c, Bytes(100), MessageFlags.None, out _);
        ExpectNothing();
        Advance(250);
        Expect(TcpFlags.Ack, seq: OurNxt - 1, length: 0);
        Assert.That(Tcp.Counters.WindowProbes, Is.EqualTo(1));
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt, window: 1000));
        Expect(TcpFlags.Ack, seq: OurNxt, length: 100);
    }

    [Test]
    public void KeepaliveProbesThenTimesOut()
    {
        var c = Established();
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(v, 10);
        Assert.That(Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_KEEPIDLE, v), Is.EqualTo(Errno.Ok));
        BinaryPrimitives.WriteInt32LittleEndian(v, 2);
        Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_KEEPINTVL, v);
        BinaryPrimitives.WriteInt32LittleEndian(v, 3);
        Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_KEEPCNT, v);
        BinaryPrimitives.WriteInt32LittleEndian(v, 1);
        Tcp.SetOption(c, TcpLayer.SOL_SOCKET, TcpLayer.SO_KEEPALIVE, v);
        Advance(9_900);
        ExpectNothing();
        Advance(200);
        Expect(TcpFlags.Ack, seq: OurNxt - 1, length: 0);
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt)); // the peer answers: idle restarts
        Advance(9_000);
        ExpectNothing();
        Advance(1_100);
        Expect(TcpFlags.Ack, seq: OurNxt - 1);
        Advance(2_000); Expect(TcpFlags.Ack, seq: OurNxt - 1);
        Advance(2_000); Expect(TcpFlags.Ack, seq: OurNxt - 1);
        Advance(2_000);
        Expect(TcpFlags.Rst | TcpFlags.Ack);
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Closed));
        Assert.That(Tcp.TakeError(c), Is.EqualTo(Errno.ETIMEDOUT));
    }

    [Test]
    public void LingerZeroCloseSendsReset()
    {
        var c = Established();
        Span<byte> l = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(l, 1);
        BinaryPrimitives.WriteInt32LittleEndian(l[4..], 0);
        Assert.That(Tcp.SetOption(c, TcpLayer.SOL_SOCKET, TcpLayer.SO_LINGER, l), Is.EqualTo(Errno.Ok));
        Span<byte> back = stackalloc byte[8];
        Tcp.GetOption(c, TcpLayer.SOL_SOCKET, TcpLayer.SO_LINGER, back, out int len);
        Assert.That(len, Is.EqualTo(8));
        Assert.That(back.SequenceEqual(l), Is.True);
        Tcp.Close(c);
        Expect(TcpFlags.Rst | TcpFlags.Ack, seq: OurNxt);
        Assert.That(Tcp.LiveConnections, Is.EqualTo(1));
    }

    [Test]
    public void LingerTimeoutResetsAnUnacknowledgedClose()
    {
        var c = Established();
        Span<byte> l = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(l, 1);
        BinaryPrimitives.WriteInt32LittleEndian(l[4..], 2);
        Tcp.SetOption(c, TcpLayer.SOL_SOCKET, TcpLayer.SO_LINGER, l);
        Tcp.Send(c, Bytes(100), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, length: 100);
        Tcp.Close(c);
        Advance(1_900);
        Assert.That(Tcp.LiveConnections, Is.EqualTo(2), "still flushing in the background");
        Out.Segments.Clear();
        Advance(200);
        Expect(TcpFlags.Rst | TcpFlags.Ack);
        Assert.That(Tcp.Counters.LingerTimeouts, Is.EqualTo(1));
        Assert.That(Tcp.LiveConnections, Is.EqualTo(1));
    }

    [Test]
    public void WritableOnlyWithRoomForHalfTheQueue()
    {
        var c = Established();
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt, window: 0)); // nothing leaves
        var big = new byte[300_000];
        Tcp.Send(c, big, MessageFlags.None, out int sent);
        Assert.That(sent, Is.EqualTo(Tcp.Peek(c)!.SndBufSize));
        Assert.That(Tcp.GetReadiness(c) & Readiness.Writable, Is.EqualTo(Readiness.None));
        Assert.That(Tcp.Send(c, big, MessageFlags.None, out _), Is.EqualTo(Errno.EAGAIN));
        Out.Segments.Clear();
    }

    [Test]
    public void CloseWithUnreadDataSendsReset()
    {
        var c = Established();
        SendData(10);
        Tcp.Close(c);
        Expect(TcpFlags.Rst | TcpFlags.Ack);
        Assert.That(Tcp.Counters.UserAborts, Is.EqualTo(1));
    }

    [Test]
    public void SynCookiesWhenSynQueueIsFull()
    {
        ListenOn(backlog: 1);
        UseTimestamps = true;
        Send(SynWithOptions(new SeqNum(PeerIsn)));
        Expect(TcpFlags.Syn | TcpFlags.Ack);
        // A second client (another port): the SYN queue is full, so a stateless cookie answers.
        var syn = SynWithOptions(new SeqNum(9000), sack: true, wscale: 5);
        syn.SrcPort = 40001;
        Send(syn);
        var cookie = Expect(TcpFlags.Syn | TcpFlags.Ack, ack: new SeqNum(9001));
        Assert.That(Tcp.Counters.SynCookiesSent, Is.EqualTo(1));
        Assert.That(Tcp.LiveConnections, Is.EqualTo(2), "no state for the cookie");
        var ack = Seg(TcpFlags.Ack, new SeqNum(9001), cookie.Header.Seq + 1);
        ack.SrcPort = 40001;
        ack.Options.TsEcr = cookie.Header.Options.TsVal;
        Send(ack);
        Assert.That(Tcp.Counters.SynCookiesAccepted, Is.EqualTo(1));
        Assert.That(Tcp.Accept(Listener, out var c, out var remote), Is.EqualTo(Errno.Ok));
        Assert.That(remote.Port, Is.EqualTo(40001));
        Span<byte> info = stackalloc byte[TcpLayer.TcpInfoSize];
        Tcp.GetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_INFO, info, out _);
        Assert.That(info[5], Is.EqualTo(7), "timestamps, SACK and window scale recovered from the cookie");
        Assert.That(info[6] & 0xF, Is.EqualTo(5), "peer's window scale");
        // A forged cookie is refused.
        var bad = Seg(TcpFlags.Ack, new SeqNum(9001), cookie.Header.Seq + 77);
        bad.SrcPort = 40002;
        Send(bad);
        Expect(TcpFlags.Rst);
        Assert.That(Tcp.Counters.SynCookiesFailed, Is.EqualTo(1));
    }

    [Test]
    public void TimeWaitIsReusedByNewerSyn()
    {
        var c = Established(timestamps: true);
        Tcp.Close(c);
        var fin = Expect(TcpFlags.Fin | TcpFlags.Ack);
        PeerTs += 10;
        Send(Seg(TcpFlags.Fin | TcpFlags.Ack, PeerNxt, OurNxt + 1));
        Expect(TcpFlags.Ack);
        Assert.That(Tcp.Counters.TimeWaitReused, Is.Zero);
        PeerTs += 10;
        Send(SynWithOptions(PeerNxt + 100000));
        var sa = Expect(TcpFlags.Syn | TcpFlags.Ack, ack: PeerNxt + 100001);
        Assert.That(Tcp.Counters.TimeWaitReused, Is.EqualTo(1));
        Assert.That(sa.Header.Seq - fin.Header.Seq, Is.GreaterThan(65536), "new ISN above the old incarnation");
    }

    [Test]
    public void IcmpPortUnreachableRefusesConnect()
    {
        Assert.That(Tcp.Open(SocketKind.Tcp, out var s), Is.EqualTo(Errno.Ok));
        Tcp.Connect(s, new Ipv4Endpoint(Remote, 80));
        var syn = Expect(TcpFlags.Syn);
        Tcp.OnDestinationUnreachable(Local, Remote, syn.Header.SrcPort, 80, syn.Header.Seq + 5000, 3, 0, Now);
        Assert.That(Tcp.GetState(s), Is.EqualTo(TcpState.SynSent), "sequence number not in flight: ignored");
        Tcp.OnDestinationUnreachable(Local, Remote, syn.Header.SrcPort, 80, syn.Header.Seq, 1, 0, Now);
        Assert.That(Tcp.GetState(s), Is.EqualTo(TcpState.SynSent), "host unreachable is soft");
        Tcp.OnDestinationUnreachable(Local, Remote, syn.Header.SrcPort, 80, syn.Header.Seq, 3, 0, Now);
        Assert.That(Tcp.GetState(s), Is.EqualTo(TcpState.Closed));
        Assert.That(Tcp.TakeError(s), Is.EqualTo(Errno.ECONNREFUSED));
    }

    [Test]
    public void IcmpFragmentationNeededLowersMss()
    {
        var c = Established();
        Tcp.Send(c, Bytes(2920), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, length: 1460);
        Expect(TcpFlags.Ack, length: 1460);
        Tcp.OnDestinationUnreachable(Local, Remote, LocalPort, RemotePort, OurNxt, 4, 1000, Now);
        Assert.That(Tcp.Counters.PmtuUpdates, Is.EqualTo(1));
        Expect(TcpFlags.Ack, seq: OurNxt, length: 960);
        Span<byte> v = stackalloc byte[4];
        Tcp.GetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_MAXSEG, v, out _);
        Assert.That(BinaryPrimitives.ReadInt32LittleEndian(v), Is.EqualTo(960));
    }

    [Test]
    public void TcpInfoHasLinuxLayout()
    {
        var c = Established(timestamps: true, sack: true, wscale: 7);
        Span<byte> info = stackalloc byte[TcpLayer.TcpInfoSize];
        Assert.That(Tcp.GetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_INFO, info, out int len), Is.EqualTo(Errno.Ok));
        Assert.That(len, Is.EqualTo(TcpLayer.TcpInfoSize));
        Assert.That(info[0], Is.EqualTo(1), "TCP_ESTABLISHED");
        Assert.That(info[5], Is.EqualTo(7));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(info[8..]), Is.InRange(200_000u, 1_000_000u), "rto us");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(info[16..]), Is.EqualTo(1448u), "snd_mss");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(info[80..]), Is.EqualTo(10u), "snd_cwnd IW10");
        Span<byte> cc = stackalloc byte[16];
        Tcp.GetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_CONGESTION, cc, out _);
        Assert.That(cc[..5].SequenceEqual("cubic"u8), Is.True);
        Assert.That(Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_CONGESTION, "reno"u8), Is.EqualTo(Errno.Ok));
        Tcp.GetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_CONGESTION, cc, out _);
        Assert.That(cc[..4].SequenceEqual("reno"u8), Is.True);
        Assert.That(Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_CONGESTION, "bbr9"u8), Is.EqualTo(Errno.ENOENT));
        Span<byte> v = stackalloc byte[4];
        Tcp.GetOption(c, TcpLayer.SOL_SOCKET, TcpLayer.SO_TYPE, v, out _);
        Assert.That(BinaryPrimitives.ReadInt32LittleEndian(v), Is.EqualTo(1));
    }

    [Test]
    public void NagleHoldsSmallSegmentsUnlessNoDelay()
    {
        var c = Established();
        Tcp.Send(c, Bytes(10), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, length: 10);
        Tcp.Send(c, Bytes(10), MessageFlags.None, out _);
        ExpectNothing();
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 10));
        Expect(TcpFlags.Ack, seq: OurNxt + 10, length: 10);
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(v, 1);
        Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, v);
        Tcp.Send(c, Bytes(10), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, seq: OurNxt + 20, length: 10);
    }

    [Test]
    public void CorkAndMsgMoreHoldPartialSegments()
    {
        var c = Established();
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(v, 1);
        Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, v);
        Tcp.Send(c, Bytes(100), MessageFlags.More, out _);
        ExpectNothing();
        Tcp.Send(c, Bytes(100), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, seq: OurNxt, length: 200);
        Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_CORK, v);
        Tcp.Send(c, Bytes(100), MessageFlags.None, out _);
        ExpectNothing(); // corked, and a send without MSG_MORE does not uncork
        Tcp.Send(c, Bytes(1400), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, seq: OurNxt + 200, length: 1460); // a full segment goes
        BinaryPrimitives.WriteInt32LittleEndian(v, 0);
        Tcp.SetOption(c, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_CORK, v);
        Expect(TcpFlags.Ack, seq: OurNxt + 1660, length: 40);
    }

    [Test]
    public void ThreeDuplicateAcksTriggerNewRenoFastRetransmit()
    {
        Tcp.SackEnabled = false;
        var c = Established(sack: false);
        Tcp.Send(c, Bytes(5 * 1460), MessageFlags.None, out _);
        for (int i = 0; i < 5; i++) Expect(TcpFlags.Ack, seq: OurNxt + i * 1460, length: 1460);
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 1460));
        for (int i = 0; i < 2; i++) Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 1460));
        ExpectNothing();
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 1460));
        Expect(TcpFlags.Ack, seq: OurNxt + 1460, length: 1460);
        Assert.That(Tcp.Counters.FastRetransmits, Is.EqualTo(1));
        // Partial ACK: the next hole goes at once (RFC 6582).
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 2 * 1460));
        Expect(TcpFlags.Ack, seq: OurNxt + 2 * 1460, length: 1460);
    }

    [Test]
    public void WindowScaleIsApplied()
    {
        var c = Established(wscale: 2);
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt, window: 1000)); // 4000 bytes
        Tcp.Send(c, Bytes(6000), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, length: 1460);
        Expect(TcpFlags.Ack, length: 1460);
        ExpectNothing(); // 1080 usable bytes: sender SWS avoidance waits for more
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt + 2920, window: 1000));
        Expect(TcpFlags.Ack, seq: OurNxt + 2920, length: 1460);
        Expect(TcpFlags.Ack, seq: OurNxt + 4380, length: 1460);
    }

    [Test]
    public void TailLossProbeResendsTheLastSegment()
    {
        var c = Established();
        Tcp.Send(c, Bytes(100), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, seq: OurNxt, length: 100);
        Advance(60);
        Expect(TcpFlags.Ack, seq: OurNxt, length: 100);
        Assert.That(Tcp.Counters.TailLossProbes, Is.EqualTo(1));
        Assert.That(Tcp.Counters.RtoTimeouts, Is.Zero);
    }

    [Test]
    public void TailLossProbeResendsTheLastSentSegmentNotUnsentData()
    {
        // RFC 8985 §7.3: with new data held back by the peer's window, the probe is the most recently sent
        // segment. The end of the send buffer (never sent) would open a hole below it.
        var c = Established();
        Tcp.Send(c, Bytes(3000), MessageFlags.None, out _);
        Expect(TcpFlags.Ack, seq: OurNxt, length: 1460);
        Expect(TcpFlags.Ack, seq: OurNxt + 1460, length: 1460);
        ExpectNothing(); // Nagle holds the last 80 bytes
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt, window: 2920)); // the window closes on what is in flight
        ExpectNothing();
        Advance(60);
        Expect(TcpFlags.Ack, seq: OurNxt + 1460, length: 1460);
        Assert.That(Tcp.Counters.TailLossProbes, Is.EqualTo(1));
    }

    [Test]
    public void BindConflictsAndReuseAddr()
    {
        ListenOn();
        Assert.That(Tcp.Open(SocketKind.Tcp, out var s), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Bind(s, new Ipv4Endpoint(Local, LocalPort)), Is.EqualTo(Errno.EADDRINUSE));
        Assert.That(Tcp.Bind(s, new Ipv4Endpoint(new Ipv4Address(1, 2, 3, 4), 99)), Is.EqualTo(Errno.EADDRNOTAVAIL));
        Assert.That(Tcp.Bind(s, new Ipv4Endpoint(Local, 0)), Is.EqualTo(Errno.Ok));
        Tcp.GetLocalEndpoint(s, out var ep);
        Assert.That(ep.Port, Is.InRange(TcpLayer.EphemeralLow, TcpLayer.EphemeralHigh));
        Assert.That(Tcp.Close(s), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Close(s), Is.EqualTo(Errno.EBADF));
    }

    [Test]
    public void BadSegmentsAreCountedNotThrown()
    {
        ListenOn();
        Send(Seg(TcpFlags.Syn | TcpFlags.Fin, new SeqNum(1)));
        var z = Seg(TcpFlags.Syn, new SeqNum(1));
        z.SrcPort = 0;
        Send(z);
        ExpectNothing();
        Assert.That(Tcp.Counters.BadSegments, Is.EqualTo(2));
    }
}

using Gazelle.Sockets;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>
/// A full connection pool recycles its oldest TIME_WAIT connection (TimeWaitQueue): in the order the waits
/// started, a restarted wait counting from its restart, never one the application still holds; and a SYN
/// that arrives while the pool is full of TIME_WAITs gets a real SYN queue entry, not a SYN cookie.
/// The fixture's pool holds 16 connections: the listener and 15 more.
/// </summary>
public sealed class TimeWaitRecyclingTests : TcpFixture
{
    private TcpRepr From(ushort port, TcpFlags flags, SeqNum seq, SeqNum ack = default)
    {
        var r = Seg(flags, seq, ack);
        r.SrcPort = port;
        return r;
    }

    /// <summary>A passive connection from <paramref name="port"/>, accepted; returns it and our ISS + 1.</summary>
    private SocketHandle Open(ushort port, out SeqNum ourNxt)
    {
        var syn = SynWithOptions(new SeqNum(PeerIsn));
        syn.SrcPort = port;
        Send(syn);
        var sa = Expect(TcpFlags.Syn | TcpFlags.Ack, ack: new SeqNum(PeerIsn + 1));
        ourNxt = sa.Header.Seq + 1;
        Send(From(port, TcpFlags.Ack, new SeqNum(PeerIsn + 1), ourNxt));
        Assert.That(Tcp.Accept(Listener, out var c, out var remote), Is.EqualTo(Errno.Ok));
        Assert.That(remote.Port, Is.EqualTo(port));
        return c;
    }

    /// <summary>The peer's FIN after ours was sent: our side goes FIN_WAIT_1 → TIME_WAIT.</summary>
    private void PeerFinishes(SocketHandle c, ushort port, SeqNum ourNxt)
    {
        var fin = Expect(TcpFlags.Fin | TcpFlags.Ack, seq: ourNxt);
        Send(From(port, TcpFlags.Fin | TcpFlags.Ack, new SeqNum(PeerIsn + 1), fin.Header.Seq + 1));
        Expect(TcpFlags.Ack, ack: new SeqNum(PeerIsn + 2));
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.TimeWait));
    }

    /// <summary>Our side closes first and ends in TIME_WAIT; <paramref name="gapMs"/> passes afterwards.</summary>
    private SeqNum ClosedTimeWait(ushort port, long gapMs = 1)
    {
        var c = Open(port, out var ourNxt);
        Tcp.Close(c);
        PeerFinishes(c, port, ourNxt);
        Advance(gapMs);
        return ourNxt;
    }

    /// <summary>True if a connection still answers for <paramref name="port"/>: a segment for a tuple with no
    /// connection reaches the listener, which resets it.</summary>
    private bool Present(ushort port, SeqNum ourNxt)
    {
        Send(From(port, TcpFlags.Ack, new SeqNum(PeerIsn + 2), ourNxt + 1));
        if (Out.Segments.Count == 0) return true;
        Expect(TcpFlags.Rst);
        return false;
    }

    /// <summary>TIME_WAITs that came and went (expired): the queue's ring wraps and is compacted on the way.</summary>
    private void Churn(int rounds)
    {
        for (int i = 0; i < rounds; i++)
        {
            for (ushort p = 0; p < 10; p++) ClosedTimeWait((ushort)(30000 + p));
            Advance(61_000); // past the 60 s TIME_WAIT
            Assert.That(Tcp.LiveConnections, Is.EqualTo(1), "only the listener is left");
        }
        Assert.That(Tcp.TimeWaitQueueCount, Is.LessThanOrEqualTo(2 * Tcp.PoolCapacity), "the queue stays bounded");
    }

    [Test]
    public void FullPoolRecyclesTheOldestTimeWaitForARealSynQueueEntry()
    {
        ListenOn(backlog: 32);
        Churn(8);
        var nxt = new SeqNum[15];
        for (int i = 0; i < 15; i++) nxt[i] = ClosedTimeWait((ushort)(41000 + i));
        Assert.That(Tcp.LiveConnections, Is.EqualTo(Tcp.PoolCapacity), "the pool is full");

        // A new client: the oldest TIME_WAIT (41000) makes room, and the SYN gets state, not a cookie.
        var syn = SynWithOptions(new SeqNum(PeerIsn), sack: true, wscale: 7);
        syn.SrcPort = 42000;
        Send(syn);
        var sa = Expect(TcpFlags.Syn | TcpFlags.Ack, ack: new SeqNum(PeerIsn + 1));
        Assert.That(Tcp.Counters.SynCookiesSent, Is.Zero, "a SYN queue entry, not a cookie");
        Assert.That(Tcp.Counters.TimeWaitRecycled, Is.EqualTo(1));
        Assert.That(sa.Header.Options.HasWindowScale && sa.Header.Options.SackPermitted, Is.True, "full options of a stateful SYN-ACK");
        Assert.That(Present(41000, nxt[0]), Is.False, "the oldest TIME_WAIT was recycled");
        Assert.That(Present(41001, nxt[1]), Is.True, "the next one is still there");
        Send(From(42000, TcpFlags.Ack, new SeqNum(PeerIsn + 1), sa.Header.Seq + 1));
        Assert.That(Tcp.Accept(Listener, out var c, out _), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Established));

        // The next one recycles 41001, then 41002.
        Tcp.Close(c);
        Expect(TcpFlags.Fin | TcpFlags.Ack);
        for (int i = 1; i <= 2; i++)
        {
            var s = SynWithOptions(new SeqNum(PeerIsn));
            s.SrcPort = (ushort)(42000 + i);
            Send(s);
            Expect(TcpFlags.Syn | TcpFlags.Ack);
            Assert.That(Present((ushort)(41000 + i), nxt[i]), Is.False, $"TIME_WAIT {41000 + i} recycled in turn");
            Assert.That(Present((ushort)(41001 + i), nxt[i + 1]), Is.True);
        }
    }

    [Test]
    public void ClosedTimeWaitsAreParkedOutOfTheTimerWalkAndStillExpireOnTime()
    {
        ListenOn(backlog: 32);
        // One the application still holds (shutdown, no close) keeps its timers walked until it is closed.
        var held = Open(40999, out var heldNxt);
        Assert.That(Tcp.Shutdown(held, ShutdownHow.Write), Is.EqualTo(Errno.Ok));
        PeerFinishes(held, 40999, heldNxt);
        var nxt = new SeqNum[10];
        for (int i = 0; i < 10; i++) nxt[i] = ClosedTimeWait((ushort)(41000 + i), gapMs: 1000);
        Assert.That(Tcp.LiveConnections, Is.EqualTo(12));
        Assert.That(Tcp.TimedConnections, Is.EqualTo(2), "the listener and the held one; the closed TIME_WAITs are parked");

        // 41000's wait restarts 10 s after it began (a retransmitted FIN, RFC 9293 §3.10.7.4): it now ends last,
        // at 70 s; 41001 ends at 61 s ... 41009 at 69 s (each began 1 s after the one before).
        Send(From(41000, TcpFlags.Fin | TcpFlags.Ack, new SeqNum(PeerIsn + 1), nxt[0] + 1));
        Expect(TcpFlags.Ack, ack: new SeqNum(PeerIsn + 2));
        Assert.That(Tcp.TimedConnections, Is.EqualTo(2), "still parked after the restart");

        Advance(50_500); // 60.5 s
        Assert.That(Present(41001, nxt[1]), Is.True, "41001's wait is not over");
        Assert.That(Present(41000, nxt[0]), Is.True, "41000's wait restarted");
        Advance(1_000); // 61.5 s
        Assert.That(Present(41001, nxt[1]), Is.False, "41001's 2MSL is over");
        Assert.That(Present(41002, nxt[2]), Is.True);
        Advance(8_000); // 69.5 s
        Assert.That(Tcp.LiveConnections, Is.EqualTo(3), "the listener, the held one and 41000");
        Assert.That(Tcp.GetState(held), Is.EqualTo(TcpState.Closed), "the held one's wait ended at 60 s, walked by the timers");
        Advance(1_000); // 70.5 s
        Assert.That(Tcp.LiveConnections, Is.EqualTo(2));
        Assert.That(Present(41000, nxt[0]), Is.False);
        Assert.That(Tcp.Close(held), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.LiveConnections, Is.EqualTo(1));
        Assert.That(Tcp.TimedConnections, Is.EqualTo(1));
    }

    [Test]
    public void ATimeWaitClosedByTheApplicationIsParkedAndExpiresFromItsStart()
    {
        ListenOn(backlog: 32);
        var held = Open(40999, out var heldNxt);
        Assert.That(Tcp.Shutdown(held, ShutdownHow.Write), Is.EqualTo(Errno.Ok));
        PeerFinishes(held, 40999, heldNxt);
        Assert.That(Tcp.TimedConnections, Is.EqualTo(2), "held: its timers are walked");
        Advance(30_000);
        Assert.That(Tcp.Close(held), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.TimedConnections, Is.EqualTo(1), "closed: parked");
        Assert.That(Tcp.LiveConnections, Is.EqualTo(2));
        Advance(29_000);
        Assert.That(Present(40999, heldNxt), Is.True, "59 s into its wait");
        Advance(2_000);
        Assert.That(Tcp.LiveConnections, Is.EqualTo(1), "60 s after the wait began, not after the close");
        Assert.That(Present(40999, heldNxt), Is.False);
    }

    [Test]
    public void RestartedTimeWaitCountsFromItsRestart()
    {
        ListenOn(backlog: 32);
        var nxt = new SeqNum[15];
        for (int i = 0; i < 15; i++) nxt[i] = ClosedTimeWait((ushort)(41000 + i));
        // The peer retransmits its FIN to the oldest: RFC 9293 §3.10.7.4 restarts its 2MSL wait, so it is
        // now the youngest.
        Send(From(41000, TcpFlags.Fin | TcpFlags.Ack, new SeqNum(PeerIsn + 1), nxt[0] + 1));
        Expect(TcpFlags.Ack, ack: new SeqNum(PeerIsn + 2));
        var syn = SynWithOptions(new SeqNum(PeerIsn));
        syn.SrcPort = 42000;
        Send(syn);
        Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.That(Present(41001, nxt[1]), Is.False, "the oldest wait was 41001's");
        Assert.That(Present(41000, nxt[0]), Is.True, "41000's wait restarted");
    }

    [Test]
    public void TimeWaitHeldByTheApplicationIsRecycledOnlyAfterClose()
    {
        ListenOn(backlog: 32);
        // The first connection reaches TIME_WAIT while the application still holds it (shutdown, no close).
        var held = Open(40999, out var heldNxt);
        Assert.That(Tcp.Shutdown(held, ShutdownHow.Write), Is.EqualTo(Errno.Ok));
        PeerFinishes(held, 40999, heldNxt);
        Advance(1);
        for (int i = 0; i < 14; i++) ClosedTimeWait((ushort)(41000 + i));
        Assert.That(Tcp.LiveConnections, Is.EqualTo(Tcp.PoolCapacity));
        // 14 new clients take the 14 closed TIME_WAITs (into the SYN queue); the held one stays.
        for (int i = 0; i < 14; i++)
        {
            var s = SynWithOptions(new SeqNum(PeerIsn));
            s.SrcPort = (ushort)(42000 + i);
            Send(s);
            Expect(TcpFlags.Syn | TcpFlags.Ack);
        }
        Assert.That(Tcp.Counters.TimeWaitRecycled, Is.EqualTo(14));
        Assert.That(Tcp.GetState(held), Is.EqualTo(TcpState.TimeWait), "held by the application: not recycled");
        // Nothing left to recycle: a stateless cookie answers.
        var extra = SynWithOptions(new SeqNum(PeerIsn));
        extra.SrcPort = 42100;
        Send(extra);
        Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.That(Tcp.Counters.SynCookiesSent, Is.EqualTo(1));
        // Closed by the application, it is the next to go.
        Tcp.Close(held);
        ExpectNothing();
        var last = SynWithOptions(new SeqNum(PeerIsn));
        last.SrcPort = 42101;
        Send(last);
        Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.That(Tcp.Counters.SynCookiesSent, Is.EqualTo(1), "a SYN queue entry this time");
        Assert.That(Tcp.Counters.TimeWaitRecycled, Is.EqualTo(15));
        Assert.That(Present(40999, heldNxt), Is.False);
    }
}

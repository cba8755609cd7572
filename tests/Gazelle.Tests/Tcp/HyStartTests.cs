using Gazelle.Stack;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>HyStart++ (RFC 9406) against a bottleneck: 100 Mbit/s, 20 ms RTT (BDP 250 KB) and a tail-drop
/// queue. Standard slow start doubles cwnd each round until the queue overflows and loses about half a
/// window at once; HyStart++ sees the round's minimum RTT rise while the queue fills and slows down first.</summary>
public class HyStartTests
{
    private const long Bytes = 20_000_000;

    private sealed record Outcome(long Drops, long DropsWhenCssEntered, long DropsWhenSlowStartEnded, long CssEntered, long Exits, long Retransmitted);

    private static Outcome Run(string cc, bool hystart, long queueBytes)
    {
        var link = new SimLink(31, (a, s) => new StackConfig
        {
            Address = a, Netmask = new Ipv4Address(255, 255, 255, 0), Secret = s, MaxTcpConnections = 8,
            TcpSendBufferBytes = 8 << 20, TcpReceiveBufferBytes = 8 << 20,
        })
        {
            BytesPerMicro = 12.5,         // 100 Mbit/s
            DelayMicros = 10_000,         // RTT 20 ms: BDP 250 KB
            QueueLimitBytes = queueBytes,
        };
        link.A.HyStartEnabled = hystart;
        var t = new Transfer(link, 31);
        Assert.That(t.Connect(cc), Is.True);
        long dropsAtCss = -1, dropsAtEnd = -1;
        var c = link.A.Counters;
        t.EachStep = () =>
        {
            if (dropsAtCss < 0 && c.HyStartCssEntered > 0) dropsAtCss = link.QueueDrops;
            if (dropsAtEnd < 0 && link.A.Peek(t.Client)!.Ssthresh != int.MaxValue) dropsAtEnd = link.QueueDrops;
        };
        Assert.That(t.Run(Bytes, link.Now + 60_000_000), Is.True);
        Assert.That(t.Mismatches, Is.Zero);
        var o = new Outcome(link.QueueDrops, dropsAtCss, dropsAtEnd, c.HyStartCssEntered, c.HyStartExits, c.RetransmittedSegments);
        TestContext.Out.WriteLine($"{cc} hystart={hystart} queue={queueBytes}: {o} in {(link.Now) / 1000} ms");
        return o;
    }

    /// <summary>A 4-BDP queue: the round's minimum RTT rises rounds before the queue overflows. (With a queue of
    /// one BDP the overflow comes in the first round with a standing queue, before a rise can be measured;
    /// there HyStart++ changes nothing, as RFC 9406 §4.2's per-round minimum implies.)</summary>
    [TestCase("cubic", 1_000_000)]
    [TestCase("reno", 1_000_000)]
    public void SlowStartEndsBeforeTheQueueOverflows(string cc, long queueBytes)
    {
        var without = Run(cc, hystart: false, queueBytes);
        var with = Run(cc, hystart: true, queueBytes);
        Assert.That(without.CssEntered, Is.Zero);
        Assert.That(without.DropsWhenSlowStartEnded, Is.GreaterThan(0), "standard slow start ends with a loss");
        Assert.That(with.CssEntered, Is.GreaterThan(0));
        Assert.That(with.DropsWhenCssEntered, Is.Zero, "HyStart++ left standard slow start before any loss");
        Assert.That(with.Drops, Is.LessThan(without.Drops / 2), "fewer losses");
    }

    /// <summary>ACKs fed straight to the algorithm by a cwnd-limited sender: each ACK acknowledges one
    /// 1000-byte segment, and the sender fills the window again (SND.MAX = SND.UNA + cwnd). A round is what
    /// was in flight when its first ACK came (RFC 9406 §4.2: it ends with the ACK of that SND.NXT).</summary>
    private sealed class Rounds
    {
        public readonly Tcb T = new(0, new RingPool(0));
        public readonly TcpCounters C;
        public Rounds()
        {
            C = T.Counters;
            T.Reset(1 << 20, 1 << 20);
            T.SndMss = 1000;
            T.Cwnd = 10_000;
            T.SndMax = T.SndUna + T.Cwnd;
            T.HyStart.Reset(true);
        }

        private void Ack(long rttMicros)
        {
            T.SndUna += 1000;
            T.Cwnd += T.HyStart.OnSlowStartAck(T, 1000, rttMicros, C);
            T.SndMax = T.SndUna + T.Cwnd;
        }

        /// <summary>One round of ACKs, all with this RTT (its last ACK, the one that ends it, is left to the next).</summary>
        public void Round(long rttMicros)
        {
            var end = T.SndMax;
            Ack(rttMicros);
            while (T.SndUna + 1000 < end && T.Ssthresh == int.MaxValue) Ack(rttMicros);
        }
    }

    [Test]
    public void CssAfterAnRttRiseThenCongestionAvoidanceAfterFiveRounds()
    {
        var r = new Rounds();
        r.Round(20_000);
        r.Round(20_000);
        int before = r.T.Cwnd;
        r.Round(22_000); // +2 ms: below max(4 ms, 20/8 ms)
        Assert.That(r.T.HyStart.InCss, Is.False);
        Assert.That(r.T.Cwnd - before, Is.GreaterThanOrEqualTo(before - 1000), "slow start: about doubles per round");
        r.Round(26_000); // +4 ms over the last round's minimum
        Assert.That(r.T.HyStart.InCss, Is.True);
        Assert.That(r.C.HyStartCssEntered, Is.EqualTo(1));
        before = r.T.Cwnd;
        r.Round(26_000);
        Assert.That(r.T.Cwnd - before, Is.LessThan(before / 3), "CSS grows by a quarter of slow start");
        for (int i = 0; i < HyStart.CssRounds && r.T.Ssthresh == int.MaxValue; i++) r.Round(26_000);
        Assert.That(r.C.HyStartExits, Is.EqualTo(1));
        Assert.That(r.T.Ssthresh, Is.EqualTo(r.T.Cwnd), "congestion avoidance from the current window");
        Assert.That(r.T.HyStart.Active, Is.False);
    }

    [Test]
    public void CssGoesBackToSlowStartWhenTheRttFallsBelowItsBaseline()
    {
        var r = new Rounds();
        r.Round(20_000);
        r.Round(20_000);
        r.Round(30_000);
        Assert.That(r.T.HyStart.InCss, Is.True);
        r.Round(25_000); // below the CSS baseline (30 ms): the rise was jitter
        Assert.That(r.T.HyStart.InCss, Is.False);
        Assert.That(r.C.HyStartCssSpurious, Is.EqualTo(1));
        Assert.That(r.T.Ssthresh, Is.EqualTo(int.MaxValue));
    }
}

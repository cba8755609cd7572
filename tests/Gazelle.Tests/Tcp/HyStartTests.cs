using Gazelle.Stack;
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
}

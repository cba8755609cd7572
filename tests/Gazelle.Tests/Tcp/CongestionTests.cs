using Gazelle.Stack;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>Congestion control against a real bottleneck: windows far above the BDP and a short tail-drop queue,
/// so every loss is a queue overflow the algorithm itself caused.</summary>
public class CongestionTests
{
    [TestCase("cubic")]
    [TestCase("reno")]
    public void FillsABottleneckWithAShortQueue(string cc)
    {
        var link = new SimLink(11, (a, s) => new StackConfig
        {
            Address = a, Netmask = new Ipv4Address(255, 255, 255, 0), Secret = s, MaxTcpConnections = 8,
            TcpSendBufferBytes = 4 << 20, TcpReceiveBufferBytes = 4 << 20,
        })
        {
            BytesPerMicro = 125,          // 1 Gbit/s
            DelayMicros = 1000,           // BDP = 250 KB
            QueueLimitBytes = 125_000,    // half a BDP of buffering
        };
        var t = new Transfer(link, 11);
        Assert.That(t.Connect(cc), Is.True);
        long start = link.Now;
        const long bytes = 100_000_000;
        Assert.That(t.Run(bytes, start + 10_000_000), Is.True);
        double seconds = (link.Now - start) / 1e6;
        double utilisation = bytes / seconds / 125e6;
        var c = link.A.Counters;
        TestContext.Out.WriteLine($"{cc}: {seconds:F3}s utilisation={utilisation:P1} qdrops={link.QueueDrops} fastrx={c.FastRetransmits} rto={c.RtoTimeouts} undone={c.SpuriousRecoveriesUndone}");
        Assert.That(t.Mismatches, Is.Zero);
        Assert.That(link.WireErrors, Is.Zero);
        Assert.That(link.QueueDrops, Is.GreaterThan(0), "the algorithm probed past the bottleneck");
        Assert.That(c.RtoTimeouts, Is.LessThanOrEqualTo(c.FastRetransmits / 10 + 1));
        Assert.That(utilisation, Is.GreaterThan(0.75), "the window stays near the path's capacity");
    }
}

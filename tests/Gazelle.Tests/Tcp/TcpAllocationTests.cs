using System.Buffers.Binary;
using Gazelle.Transport.Tcp;

namespace Gazelle.Tests.Tcp;

/// <summary>The per-segment path allocates nothing on the GC heap once warmed up (DESIGN/STYLE item 5).</summary>
public class TcpAllocationTests
{
    [Test]
    public void BulkTransferAllocatesNothingPerSegment()
    {
        var link = new SimLink(3) { Loss = 0.01, Reorder = 0.01, Duplicate = 0.005 };
        var t = new Transfer(link, 3);
        Assert.That(t.Connect(), Is.True);
        Assert.That(t.Run(20_000_000, link.Now + 60_000_000), Is.True, "warm-up");
        long segmentsBefore = link.Delivered;
        long before = GC.GetAllocatedBytesForCurrentThread();
        bool ok = t.Run(120_000_000, link.Now + 600_000_000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        long segments = link.Delivered - segmentsBefore;
        Assert.That(ok, Is.True);
        Assert.That(t.Mismatches, Is.Zero);
        Assert.That(segments, Is.GreaterThanOrEqualTo(100_000));
        Assert.That(link.A.Counters.RetransmittedSegments, Is.GreaterThan(0), "recovery paths were exercised");
        Assert.That(allocated, Is.Zero, $"{allocated} bytes over {segments} segments");
    }

    [Test]
    public void RequestResponseAllocatesNothing()
    {
        var link = new SimLink(4);
        var t = new Transfer(link, 4);
        Assert.That(t.Connect(), Is.True);
        Span<byte> one = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(one, 1);
        link.A.SetOption(t.Client, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one);
        link.B.SetOption(t.Server, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one);
        for (int i = 0; i < 1000; i++) Assert.That(t.Exchange(64, 1_000_000), Is.True);
        long before = GC.GetAllocatedBytesForCurrentThread();
        int done = 0;
        for (int i = 0; i < 10_000; i++) if (t.Exchange(64, 1_000_000)) done++;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(done, Is.EqualTo(10_000));
        Assert.That(t.Mismatches, Is.Zero);
        Assert.That(allocated, Is.Zero);
    }
}

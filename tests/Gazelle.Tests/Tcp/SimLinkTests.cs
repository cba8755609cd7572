using Gazelle.Devices.Capture;
using Gazelle.Transport.Tcp;

namespace Gazelle.Tests.Tcp;

public class SimLinkTests
{
    private static (Transfer t, bool ok) Run(double loss, double reorder, double dup, long bytes, long virtualBoundMicros, string cc = "cubic", int seed = 7, bool sack = true,
        bool headerPrediction = true)
    {
        var link = new SimLink(seed) { Loss = loss, Reorder = reorder, Duplicate = dup };
        link.A.SackEnabled = sack;
        link.A.HeaderPrediction = link.B.HeaderPrediction = headerPrediction;
        // GAZELLE_TCP_PCAP=<dir> captures the first frames of each run for Wireshark/tshark.
        var dir = Environment.GetEnvironmentVariable("GAZELLE_TCP_PCAP");
        if (!string.IsNullOrEmpty(dir))
            link.Capture = PcapWriter.Create(Path.Combine(dir, $"{TestContext.CurrentContext.Test.Name.Replace('"', '_')}.pcap"), snapLength: 128);
        var t = new Transfer(link, seed);
        Assert.That(t.Connect(cc), Is.True, "connect");
        long start = link.Now;
        bool ok = t.Run(bytes, start + virtualBoundMicros);
        var c = link.A.Counters;
        TestContext.Out.WriteLine(
            $"loss={loss} cc={cc} virtual={(link.Now - start) / 1e6:F3}s recv={t.Received} rto={c.RtoTimeouts} fastrx={c.FastRetransmits} " +
            $"rexmit={c.RetransmittedSegments} dropped={link.Dropped} qdrop={link.QueueDrops} dup={link.Duplicated} reord={link.Reordered} " +
            $"ooo={link.B.Counters.OutOfOrderQueued} oooDrop={link.B.Counters.OutOfOrderDropped}");
        link.Capture?.Dispose();
        Assert.That(link.WireErrors, Is.Zero, "every emitted header parses and checksums");
        return (t, ok);
    }

    [Test]
    public void SmallTransferNoLoss()
    {
        var (t, ok) = Run(0, 0, 0, 1_000_000, 10_000_000);
        Assert.That(ok, Is.True);
        Assert.That(t.Mismatches, Is.Zero);
    }

    /// <summary>Header prediction is an optimisation only: with loss, reordering and duplication (so the
    /// fast path is entered and left again and again), both ends emit exactly the same frames at the same
    /// virtual times with it on and off.</summary>
    [TestCase(0.0, "cubic", true)]
    [TestCase(0.02, "cubic", true)]
    [TestCase(0.02, "reno", false)]
    public void HeaderPredictionChangesNothingOnTheWire(double loss, string cc, bool sack)
    {
        var (on, okOn) = Run(loss, loss, loss / 2, 3_000_000, 120_000_000, cc, seed: 11, sack: sack, headerPrediction: true);
        var (off, okOff) = Run(loss, loss, loss / 2, 3_000_000, 120_000_000, cc, seed: 11, sack: sack, headerPrediction: false);
        Assert.That((okOn, okOff), Is.EqualTo((true, true)));
        long predicted = on.Link.A.Counters.HeaderPredicted + on.Link.B.Counters.HeaderPredicted;
        Assert.That(predicted, Is.GreaterThan(on.Link.B.Counters.SegmentsIn / 2), "most segments take the fast path");
        Assert.That(off.Link.A.Counters.HeaderPredicted + off.Link.B.Counters.HeaderPredicted, Is.Zero);
        Assert.That(on.Link.Delivered, Is.EqualTo(off.Link.Delivered));
        Assert.That(on.Link.TraceHash, Is.EqualTo(off.Link.TraceHash), "same frames at the same times");
    }

    [Test]
    public void SmallTransferLossy()
    {
        var (t, ok) = Run(0.05, 0.05, 0.02, 2_000_000, 120_000_000);
        Assert.That(ok, Is.True);
        Assert.That(t.Mismatches, Is.Zero);
    }

    // 1 Gbit/s, 1 ms one-way delay, 256 KiB windows: the loss-free floor is 0.8 s of virtual time for 100 MB.
    // The bounds hold only while losses are repaired by fast recovery: each RTO costs >= 200 ms of idle time.
    [TestCase(0.00, "cubic", 1.5)]
    [TestCase(0.01, "cubic", 40.0)]
    [TestCase(0.05, "cubic", 150.0)]
    [TestCase(0.01, "reno", 40.0)]
    public void Bulk100MB(double loss, string cc, double boundSeconds)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (t, ok) = Run(loss, loss > 0 ? 0.02 : 0, loss > 0 ? 0.01 : 0, 100_000_000, (long)(boundSeconds * 1e6), cc);
        TestContext.Out.WriteLine($"wall={sw.ElapsedMilliseconds}ms");
        Assert.That(ok, Is.True, "100 MB within the virtual-time bound");
        Assert.That(t.Received, Is.EqualTo(100_000_000));
        Assert.That(t.Mismatches, Is.Zero);
        var c = t.Link.A.Counters;
        if (loss > 0)
        {
            Assert.That(c.FastRetransmits, Is.GreaterThan(0));
            Assert.That(c.RtoTimeouts * 10, Is.LessThan(c.FastRetransmits), "recovery is mostly fast, not by timeout");
        }
        else Assert.That(c.RetransmittedSegments, Is.Zero);
        Assert.That(t.Link.B.Counters.OutOfOrderDropped, Is.LessThan(c.FastRetransmits + 1));
    }

    [Test]
    public void NewRenoWithoutSack()
    {
        var (t, ok) = Run(0.01, 0.0, 0.0, 20_000_000, 120_000_000, "reno", sack: false);
        Assert.That(ok, Is.True);
        Assert.That(t.Mismatches, Is.Zero);
        var c = t.Link.A.Counters;
        Assert.That(c.FastRetransmits, Is.GreaterThan(c.RtoTimeouts), "NewReno partial-ACK recovery should do most of the work");
    }
}

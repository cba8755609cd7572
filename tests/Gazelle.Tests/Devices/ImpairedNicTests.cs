using System.Buffers.Binary;
using Gazelle.Buffers;
using Gazelle.Devices.Impairment;
using Gazelle.Devices.InMemory;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Devices;

public class ImpairedNicTests
{
    private static readonly MacAddress Local = MacAddress.Parse("02:00:00:00:00:01");
    private static readonly MacAddress Remote = MacAddress.Parse("02:00:00:00:00:02");
    private const int FrameLength = 14 + 64;

    private UserVeth _veth = null!;
    private readonly PacketBuffer[] _buf = new PacketBuffer[64];
    private readonly PacketBuffer[] _one = new PacketBuffer[1];

    [SetUp]
    public void SetUp() => _veth = new UserVeth(new UserVethOptions { MacAddress = Local, RingSize = 1024, TxPoolSize = 2048, RxPoolSize = 2048 });

    [TearDown]
    public void TearDown()
    {
        Assert.That(_veth.TxPool.InUse, Is.Zero, "tx pool leak");
        Assert.That(_veth.RxPool.InUse, Is.Zero, "rx pool leak");
        _veth.Dispose();
    }

    private static void Fill(Span<byte> frame, int seq)
    {
        Remote.Write(frame);
        Local.Write(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], 0x88B5);
        BinaryPrimitives.WriteInt32BigEndian(frame[14..], seq);
        for (int i = 18; i < FrameLength; i++) frame[i] = Pattern(seq, i);
    }

    // Depends on every byte of seq, so any single flipped bit in the frame past the MACs shows.
    private static byte Pattern(int seq, int i) => (byte)(seq + (seq >> 8) + (seq >> 16) + (seq >> 24) + i);

    private static bool Intact(ReadOnlySpan<byte> frame)
    {
        if (frame.Length != FrameLength) return false;
        int seq = BinaryPrimitives.ReadInt32BigEndian(frame[14..]);
        for (int i = 18; i < FrameLength; i++) if (frame[i] != Pattern(seq, i)) return false;
        return MacAddress.Read(frame) == Remote && MacAddress.Read(frame[6..]) == Local;
    }

    /// <summary>What the far side of the wire saw, frame by frame.</summary>
    private sealed class Outcome
    {
        public readonly List<int> Seqs = [];
        public int Corrupted;
        public int OutOfOrder;
    }

    /// <summary>Sends <paramref name="count"/> numbered frames through the impaired TX path, advancing virtual time
    /// 10 µs per frame, and collects what reaches the wire.</summary>
    private Outcome RunTx(ImpairedNic nic, int count)
    {
        var o = new Outcome();
        Span<byte> f = stackalloc byte[FrameLength];
        long t = 0;
        int maxSeen = -1;
        void Drain()
        {
            int n;
            while ((n = _veth.DrainTransmitted(_buf)) > 0)
            {
                for (int i = 0; i < n; i++)
                {
                    var d = _buf[i].Data;
                    if (!Intact(d)) o.Corrupted++;
                    int seq = BinaryPrimitives.ReadInt32BigEndian(d[14..]);
                    o.Seqs.Add(seq);
                    if (seq < maxSeen) o.OutOfOrder++;
                    maxSeen = Math.Max(maxSeen, seq);
                    _buf[i].Release();
                }
            }
        }
        for (int s = 0; s < count; s++)
        {
            t += 10;
            nic.AdvanceTo(new Instant(t));
            Fill(f, s);
            _one[0] = TestFrames.Rent(nic.TxPool, f);
            Assert.That(nic.Transmit(0, _one), Is.EqualTo(1));
            Drain();
        }
        nic.AdvanceTo(new Instant(t + 10_000_000));
        Drain();
        Assert.That(nic.HeldCount, Is.Zero);
        return o;
    }

    // Binomial bounds: n = 20000, p = 0.1 → sd ≈ 42; 6 sd ≈ 255 keeps a fixed-seed test far from flaky
    // while a rate off by 2 percentage points (400 frames) fails.
    private const int N = 20_000;
    private const int Tolerance = 255;

    [Test]
    public void DropRateMatchesWithinStatisticalBounds()
    {
        using var nic = new ImpairedNic(_veth, 7, new ImpairmentProfile { DropRate = 0.1 }, ImpairmentProfile.None);
        var o = RunTx(nic, N);
        Assert.That(N - o.Seqs.Count, Is.InRange(N / 10 - Tolerance, N / 10 + Tolerance));
        Assert.That(nic.TxCounters.Dropped, Is.EqualTo(N - o.Seqs.Count));
        Assert.That(o.Corrupted + o.OutOfOrder, Is.Zero);
    }

    [Test]
    public void DuplicateRateMatchesAndCopiesAreIdentical()
    {
        using var nic = new ImpairedNic(_veth, 8, new ImpairmentProfile { DuplicateRate = 0.1 }, ImpairmentProfile.None);
        var o = RunTx(nic, N);
        int extra = o.Seqs.Count - N;
        Assert.That(extra, Is.InRange(N / 10 - Tolerance, N / 10 + Tolerance));
        Assert.That(nic.TxCounters.Duplicated, Is.EqualTo(extra));
        Assert.That(o.Corrupted, Is.Zero, "duplicates are byte-identical copies");
        Assert.That(o.Seqs.Distinct().Count(), Is.EqualTo(N), "nothing lost");
    }

    [Test]
    public void CorruptRateMatchesAndFlipsExactlyOneBitPastTheEthernetHeader()
    {
        using var nic = new ImpairedNic(_veth, 9, new ImpairmentProfile { CorruptRate = 0.1 }, ImpairmentProfile.None);
        var o = RunTx(nic, N);
        Assert.That(o.Seqs.Count, Is.EqualTo(N));
        Assert.That(nic.TxCounters.Corrupted, Is.InRange(N / 10 - Tolerance, N / 10 + Tolerance));
        Assert.That(o.Corrupted, Is.EqualTo(nic.TxCounters.Corrupted), "one flipped bit per corrupted frame, all visible");
    }

    [Test]
    public void ReorderedFramesAreOvertakenByLaterOnes()
    {
        var profile = new ImpairmentProfile { ReorderRate = 0.1, ReorderDelay = new TimeSpanMicros(35) };
        using var nic = new ImpairedNic(_veth, 10, profile, ImpairmentProfile.None);
        var o = RunTx(nic, N);
        Assert.That(o.Seqs.Count, Is.EqualTo(N));
        // A held frame (35 µs) is overtaken by the next frame sent 10 µs later unless the next three were all held
        // too (p = 0.001), so nearly every reordered frame arrives after a higher number.
        long reordered = nic.TxCounters.Reordered;
        Assert.That(reordered, Is.InRange(N / 10 - Tolerance, N / 10 + Tolerance));
        Assert.That(o.OutOfOrder, Is.InRange(reordered * 99 / 100, reordered));
        Assert.That(o.Seqs.Order(), Is.EqualTo(Enumerable.Range(0, N)));
    }

    [Test]
    public void LatencyHoldsFramesUntilTheirInstant()
    {
        using var nic = new ImpairedNic(_veth, 11, new ImpairmentProfile { Latency = new TimeSpanMicros(500) }, ImpairmentProfile.None);
        Span<byte> f = stackalloc byte[FrameLength];
        Fill(f, 1);
        nic.AdvanceTo(new Instant(1000));
        _one[0] = TestFrames.Rent(nic.TxPool, f);
        nic.Transmit(0, _one);
        Assert.That(nic.NextDeadline, Is.EqualTo(new Instant(1500)));
        nic.AdvanceTo(new Instant(1499));
        Assert.That(_veth.PendingTransmit, Is.Zero);
        nic.AdvanceTo(new Instant(1500));
        Assert.That(_veth.PendingTransmit, Is.EqualTo(1));
        Assert.That(nic.NextDeadline, Is.EqualTo(Instant.Never));
        Assert.That(_veth.DrainTransmitted(_buf), Is.EqualTo(1));
        _buf[0].Release();
    }

    [Test]
    public void SameSeedReproducesTheSameSequenceAndAnotherSeedDoesNot()
    {
        var profile = new ImpairmentProfile
        {
            DropRate = 0.05, DuplicateRate = 0.05, CorruptRate = 0.05, ReorderRate = 0.05,
            ReorderDelay = new TimeSpanMicros(45), Jitter = new TimeSpanMicros(15),
        };
        List<int> Run(ulong seed)
        {
            using var nic = new ImpairedNic(_veth, seed, profile, ImpairmentProfile.None);
            var o = RunTx(nic, 3000);
            o.Seqs.Add(-o.Corrupted);
            return o.Seqs;
        }
        var first = Run(42);
        var again = Run(42);
        var other = Run(43);
        Assert.That(again, Is.EqualTo(first));
        Assert.That(other, Is.Not.EqualTo(first));
    }

    [Test]
    public void ReceiveDirectionIsImpairedIndependently()
    {
        using var nic = new ImpairedNic(_veth, 12, ImpairmentProfile.None,
            new ImpairmentProfile { DropRate = 0.2, DuplicateRate = 0.1, Latency = new TimeSpanMicros(20) });
        Span<byte> f = stackalloc byte[FrameLength];
        int received = 0;
        long t = 0;
        for (int s = 0; s < N; s++)
        {
            Fill(f, s);
            Assert.That(_veth.DeliverFromWire(f), Is.True);
            t += 10;
            nic.AdvanceTo(new Instant(t));
            received += DrainRx(nic);
        }
        nic.AdvanceTo(new Instant(t + 1000));
        received += DrainRx(nic);
        // Expected: N * 0.8 * 1.1 = 17600; sd of the combined count ≈ 60.
        Assert.That(received, Is.InRange(17_600 - 360, 17_600 + 360));
        Assert.That(received, Is.EqualTo(N - nic.RxCounters.Dropped + nic.RxCounters.Duplicated));
        Assert.That(nic.TxCounters.Frames, Is.Zero);
    }

    private int DrainRx(ImpairedNic nic)
    {
        int total = 0, n;
        while ((n = nic.Receive(0, _buf)) > 0)
        {
            for (int i = 0; i < n; i++)
            {
                Assert.That(_buf[i].Owner, Is.SameAs(_veth.RxPool), "duplicates come from the same pool");
                _buf[i].Release();
            }
            total += n;
        }
        return total;
    }

    [Test]
    public void DisposeReleasesHeldFrames()
    {
        var nic = new ImpairedNic(_veth, 13, new ImpairmentProfile { Latency = new TimeSpanMicros(1000) }, ImpairmentProfile.None);
        Span<byte> f = stackalloc byte[FrameLength];
        for (int s = 0; s < 10; s++)
        {
            Fill(f, s);
            _one[0] = TestFrames.Rent(nic.TxPool, f);
            nic.Transmit(0, _one);
        }
        Assert.That(_veth.TxPool.InUse, Is.EqualTo(10));
        nic.Dispose();
        Assert.That(_veth.TxPool.InUse, Is.Zero);
    }

    [Test]
    public void FramesRefusedByTheDeviceGoBackToTheCallerUncorrupted()
    {
        using var small = new UserVeth(new UserVethOptions { MacAddress = Local, RingSize = 2 });
        using var nic = new ImpairedNic(small, 15, new ImpairmentProfile { CorruptRate = 1 }, ImpairmentProfile.None);
        Span<byte> f = stackalloc byte[FrameLength];
        var frames = new PacketBuffer[4];
        for (int s = 0; s < frames.Length; s++)
        {
            Fill(f, s);
            frames[s] = TestFrames.Rent(small.TxPool, f);
        }
        Assert.That(nic.Transmit(0, frames), Is.EqualTo(2));
        Assert.That(nic.TxCounters.Corrupted, Is.EqualTo(2));
        Assert.That(Intact(frames[2].Data), Is.True, "refused frame restored");
        Assert.That(Intact(frames[3].Data), Is.True, "never looked at");
        frames[2].Release();
        frames[3].Release();
        int n = small.DrainTransmitted(_buf);
        Assert.That(n, Is.EqualTo(2));
        for (int i = 0; i < n; i++)
        {
            Assert.That(Intact(_buf[i].Data), Is.False, "accepted frames were corrupted");
            _buf[i].Release();
        }
    }

    [Test]
    public void RejectsRatesOutsideZeroToOne()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new ImpairedNic(_veth, 1, new ImpairmentProfile { DropRate = 1.5 }, ImpairmentProfile.None));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new ImpairedNic(_veth, 1, ImpairmentProfile.None, new ImpairmentProfile { Latency = new TimeSpanMicros(-1) }));
    }

    [Test]
    public void SteadyStateImpairmentAllocatesNothing()
    {
        var profile = new ImpairmentProfile { DropRate = 0.1, DuplicateRate = 0.1, CorruptRate = 0.1, ReorderRate = 0.1, ReorderDelay = new TimeSpanMicros(30) };
        using var nic = new ImpairedNic(_veth, 14, profile, profile);
        long t = 0;
        void Round(int s)
        {
            Span<byte> f = stackalloc byte[FrameLength];
            Fill(f, s);
            t += 10;
            nic.AdvanceTo(new Instant(t));
            var b = nic.TxPool.Rent()!;
            f.CopyTo(b.Append(f.Length));
            _one[0] = b;
            nic.Transmit(0, _one);
            int n;
            while ((n = _veth.DrainTransmitted(_buf)) > 0)
            {
                for (int i = 0; i < n; i++)
                {
                    _veth.DeliverFromWire(_buf[i].Data); // loop back to exercise the RX impairments too
                    _buf[i].Release();
                }
            }
            while ((n = nic.Receive(0, _buf)) > 0) for (int i = 0; i < n; i++) _buf[i].Release();
        }
        for (int i = 0; i < 2000; i++) Round(i);
        Assert.That(AllocationProbe.LeastAllocated(() => { for (int i = 0; i < 20_000; i++) Round(i); }, out _), Is.Zero);
        nic.AdvanceTo(new Instant(t + 1_000_000));
        int m;
        while ((m = _veth.DrainTransmitted(_buf)) > 0) for (int i = 0; i < m; i++) _buf[i].Release();
        while ((m = nic.Receive(0, _buf)) > 0) for (int i = 0; i < m; i++) _buf[i].Release();
    }
}

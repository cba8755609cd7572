using Gazelle.Buffers;
using Gazelle.Devices.InMemory;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Devices;

public class UserVbridgeTests
{
    private static readonly MacAddress MacA = MacAddress.Parse("02:00:00:00:00:0a");
    private static readonly MacAddress MacB = MacAddress.Parse("02:00:00:00:00:0b");
    private static readonly MacAddress MacC = MacAddress.Parse("02:00:00:00:00:0c");

    private UserVeth _a = null!, _b = null!, _c = null!;
    private UserVbridge _bridge = null!;
    private readonly PacketBuffer[] _rx = new PacketBuffer[64];

    [SetUp]
    public void SetUp()
    {
        _a = new UserVeth(new UserVethOptions { MacAddress = MacA, Name = "a", QueueCount = 2 });
        _b = new UserVeth(new UserVethOptions { MacAddress = MacB, Name = "b" });
        _c = new UserVeth(new UserVethOptions { MacAddress = MacC, Name = "c", RingSize = 8 });
        _bridge = new UserVbridge();
        _bridge.AddPort(_a);
        _bridge.AddPort(_b);
        _bridge.AddPort(_c);
    }

    [TearDown]
    public void TearDown()
    {
        // Leak check: drain what the test left on the rings, then every pool must be back to zero in use.
        foreach (var v in new[] { _a, _b, _c })
        {
            for (int q = 0; q < v.QueueCount; q++) ReleaseAll(v, q);
            Span<PacketBuffer> tx = new PacketBuffer[16];
            int n;
            while ((n = v.DrainTransmitted(tx)) > 0) for (int i = 0; i < n; i++) tx[i].Release();
            Assert.That(v.TxPool.InUse, Is.Zero, $"{v.Name} tx pool leak");
            Assert.That(v.RxPool.InUse, Is.Zero, $"{v.Name} rx pool leak");
        }
        _a.Dispose();
        _b.Dispose();
        _c.Dispose();
    }

    private void ReleaseAll(UserVeth v, int q)
    {
        int n;
        while ((n = v.Receive(q, _rx)) > 0) for (int i = 0; i < n; i++) _rx[i].Release();
    }

    private int ReceiveAll(UserVeth v)
    {
        int total = 0;
        for (int q = 0; q < v.QueueCount; q++)
        {
            int n;
            while ((n = v.Receive(q, _rx)) > 0)
            {
                total += n;
                for (int i = 0; i < n; i++) _rx[i].Release();
            }
        }
        return total;
    }

    private static void Send(UserVeth from, MacAddress to, int payload = 46, byte tag = 0, int queue = 0)
    {
        Span<byte> f = stackalloc byte[1600];
        int n = TestFrames.WriteRaw(f, to, from.MacAddress, 0x88B5, payload, tag);
        var b = TestFrames.Rent(from.TxPool, f[..n]);
        Assert.That(from.Transmit(queue, new[] { b }), Is.EqualTo(1));
    }

    [Test]
    public void FrameCrossesTheBridgeByteForByteIntoTheReceiversOwnPool()
    {
        Send(_a, MacB, payload: 100, tag: 42);
        Assert.That(_bridge.Pump(), Is.EqualTo(1));
        Assert.That(_a.TxPool.InUse, Is.Zero, "the sender's buffer went back to the sender's pool");
        int n = _b.Receive(0, _rx);
        Assert.That(n, Is.EqualTo(1));
        var got = _rx[0];
        Assert.Multiple(() =>
        {
            Assert.That(got.Owner, Is.SameAs(_b.RxPool));
            Assert.That(got.Length, Is.EqualTo(14 + 100));
            Assert.That(MacAddress.Read(got.Data), Is.EqualTo(MacB));
            Assert.That(MacAddress.Read(got.Data[6..]), Is.EqualTo(MacA));
            Assert.That(got.Data[14], Is.EqualTo(42));
            Assert.That(got.Data[14 + 99], Is.EqualTo((byte)(42 + 99)));
        });
        got.Release();
    }

    [Test]
    public void UnknownDestinationFloodsThenLearnedDestinationsGoUnicastOnly()
    {
        Send(_a, MacB);
        _bridge.Pump();
        Assert.Multiple(() =>
        {
            Assert.That(ReceiveAll(_b), Is.EqualTo(1), "flooded to b");
            Assert.That(ReceiveAll(_c), Is.EqualTo(1), "flooded to c");
            Assert.That(ReceiveAll(_a), Is.Zero, "never back to the sender");
            Assert.That(_bridge.Counters.Flooded, Is.EqualTo(1));
            Assert.That(_bridge.TryLookup(MacA, Instant.Zero, out int pa) && pa == 0, Is.True, "a learned on port 0");
            Assert.That(_bridge.TryLookup(MacB, Instant.Zero, out _), Is.False, "b not yet seen");
        });

        Send(_b, MacA); // a is known: unicast
        _bridge.Pump();
        Assert.Multiple(() =>
        {
            Assert.That(ReceiveAll(_a), Is.EqualTo(1));
            Assert.That(ReceiveAll(_c), Is.Zero, "c must not see a unicast to a learned MAC");
            Assert.That(_bridge.Counters.Unicast, Is.EqualTo(1));
        });

        Send(_a, MacB); // now b is known too
        _bridge.Pump();
        Assert.Multiple(() =>
        {
            Assert.That(ReceiveAll(_b), Is.EqualTo(1));
            Assert.That(ReceiveAll(_c), Is.Zero);
            Assert.That(_bridge.Counters.Unicast, Is.EqualTo(2));
            Assert.That(_bridge.Counters.Flooded, Is.EqualTo(1));
            Assert.That(_bridge.LearnedCount, Is.EqualTo(2));
        });
    }

    [Test]
    public void BroadcastAndMulticastAlwaysFlood()
    {
        Send(_b, MacA);
        Send(_a, MacB); // both learned
        _bridge.Pump();
        ReceiveAll(_a); ReceiveAll(_b); ReceiveAll(_c);

        Send(_a, MacAddress.Broadcast);
        Send(_a, MacAddress.Parse("01:00:5e:00:00:01"));
        _bridge.Pump();
        Assert.Multiple(() =>
        {
            Assert.That(ReceiveAll(_b), Is.EqualTo(2));
            Assert.That(ReceiveAll(_c), Is.EqualTo(2));
            Assert.That(ReceiveAll(_a), Is.Zero);
        });
    }

    [Test]
    public void MacThatMovesIsRelearnedAndAgedEntriesFloodAgain()
    {
        var bridge = new UserVbridge(agingTime: TimeSpanMicros.FromSeconds(1));
        using var x = new UserVeth(new UserVethOptions { MacAddress = MacA });
        using var y = new UserVeth(new UserVethOptions { MacAddress = MacB });
        using var z = new UserVeth(new UserVethOptions { MacAddress = MacC });
        bridge.AddPort(x); bridge.AddPort(y); bridge.AddPort(z);

        Send(x, MacAddress.Broadcast);
        bridge.Pump(Instant.Zero);
        Assert.That(bridge.TryLookup(MacA, Instant.Zero, out int p0) ? p0 : -1, Is.EqualTo(0));
        Assert.That(bridge.TryLookup(MacA, Instant.FromMilliseconds(1001), out _), Is.False, "aged after 1 s");

        Send(y, MacA); // y sends to a: still learned at t=0.5 s → unicast to x
        bridge.Pump(Instant.FromMilliseconds(500));
        Assert.That(ReceiveAll(z), Is.EqualTo(1), "z saw x's broadcast only");
        Assert.That(ReceiveAll(x), Is.EqualTo(1));

        Send(y, MacA); // at t=2 s a's entry is stale: flood
        bridge.Pump(Instant.FromMilliseconds(2000));
        Assert.That(ReceiveAll(z), Is.EqualTo(1));
        Assert.That(ReceiveAll(x), Is.EqualTo(1));
        ReceiveAll(y);

        // a's MAC now shows up behind z (a host moved): learned on port 2.
        Span<byte> f = stackalloc byte[64];
        int n = TestFrames.WriteRaw(f, MacAddress.Broadcast, MacA, 0x88B5, 46);
        z.Transmit(0, new[] { TestFrames.Rent(z.TxPool, f[..n]) });
        bridge.Pump(Instant.FromMilliseconds(2100));
        Assert.That(bridge.TryLookup(MacA, Instant.FromMilliseconds(2100), out int p2) ? p2 : -1, Is.EqualTo(2));
        Assert.That(bridge.Counters.Moves, Is.EqualTo(1));
        ReceiveAll(x); ReceiveAll(y); ReceiveAll(z);
        foreach (var v in new[] { x, y, z }) Assert.That(v.RxPool.InUse + v.TxPool.InUse, Is.Zero);
    }

    [Test]
    public void FullMacTableStopsLearningAndFloods()
    {
        var bridge = new UserVbridge(macTableCapacity: 2);
        using var x = new UserVeth(new UserVethOptions { MacAddress = MacA });
        using var y = new UserVeth(new UserVethOptions { MacAddress = MacB });
        bridge.AddPort(x); bridge.AddPort(y);
        Span<byte> f = stackalloc byte[64];
        for (int i = 0; i < 5; i++)
        {
            int n = TestFrames.WriteRaw(f, MacAddress.Broadcast, new MacAddress(0x0200_0000_1000UL + (ulong)i), 0x88B5, 46);
            x.Transmit(0, new[] { TestFrames.Rent(x.TxPool, f[..n]) });
        }
        bridge.Pump();
        Assert.That(bridge.LearnedCount, Is.EqualTo(2));
        Assert.That(bridge.Counters.LearnTableFull, Is.EqualTo(3));
        // A reply to an unlearned source is flooded (to x, the only other port), a reply to a learned one unicast.
        int m = TestFrames.WriteRaw(f, new MacAddress(0x0200_0000_1004UL), MacB, 0x88B5, 46);
        y.Transmit(0, new[] { TestFrames.Rent(y.TxPool, f[..m]) });
        m = TestFrames.WriteRaw(f, new MacAddress(0x0200_0000_1000UL), MacB, 0x88B5, 46);
        y.Transmit(0, new[] { TestFrames.Rent(y.TxPool, f[..m]) });
        bridge.Pump();
        Assert.That(bridge.Counters.Unicast, Is.EqualTo(1));
        Assert.That(bridge.Counters.Flooded, Is.EqualTo(5 + 1));
        Assert.That(bridge.Counters.LearnTableFull, Is.EqualTo(3 + 2), "y's MAC did not fit either, on both frames");
        Assert.That(ReceiveAll(x), Is.EqualTo(2));
        Assert.That(ReceiveAll(y), Is.EqualTo(5));
    }

    [Test]
    public void FullRxRingDropsAndCounts()
    {
        // c's rings hold 8 frames; flood 12 broadcasts without c polling.
        for (int i = 0; i < 12; i++) Send(_a, MacAddress.Broadcast, tag: (byte)i);
        _bridge.Pump();
        Assert.Multiple(() =>
        {
            Assert.That(_c.Counters.DropRxRingFull, Is.EqualTo(4));
            Assert.That(_bridge.Counters.DeliveryRefused, Is.EqualTo(4));
            Assert.That(ReceiveAll(_c), Is.EqualTo(8));
            Assert.That(ReceiveAll(_b), Is.EqualTo(12));
        });
    }

    [Test]
    public void FullTxRingPushesBackWithoutTakingTheFrame()
    {
        Span<byte> f = stackalloc byte[64];
        int n = TestFrames.WriteRaw(f, MacA, MacC, 0x88B5, 46);
        var frames = new PacketBuffer[10];
        for (int i = 0; i < frames.Length; i++) frames[i] = TestFrames.Rent(_c.TxPool, f[..n]);
        int taken = _c.Transmit(0, frames);
        Assert.That(taken, Is.EqualTo(8));
        Assert.That(_c.Counters.TxRingFull, Is.EqualTo(1));
        for (int i = taken; i < frames.Length; i++) frames[i].Release(); // still ours
        _bridge.Pump();
        Assert.That(ReceiveAll(_a), Is.EqualTo(8));
    }

    [Test]
    public void OversizeAndRuntFramesAreDroppedAndCounted()
    {
        Span<byte> big = stackalloc byte[1600];
        Assert.That(_b.DeliverFromWire(big[..(14 + 4 + 1500 + 1)]), Is.False);
        Assert.That(_b.DeliverFromWire(big[..13]), Is.False);
        Assert.That(_b.DeliverFromWire(big[..(14 + 1500)]), Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(_b.Counters.DropRxOversize, Is.EqualTo(1));
            Assert.That(_b.Counters.DropRxRunt, Is.EqualTo(1));
        });

        int n = TestFrames.WriteRaw(big, MacB, MacA, 0x88B5, 1500 + 4 + 1);
        var b = TestFrames.Rent(_a.TxPool, big[..n]);
        Assert.That(_a.Transmit(0, new[] { b }), Is.EqualTo(1), "taken (and dropped)");
        Assert.That(_a.Counters.DropTxOversize, Is.EqualTo(1));
        Assert.That(_a.TxPool.InUse, Is.Zero);
    }

    [Test]
    public void ExhaustedRxPoolDropsAndCounts()
    {
        using var small = new UserVeth(new UserVethOptions { MacAddress = MacC, RxPoolSize = 4, RingSize = 16 });
        Span<byte> f = stackalloc byte[64];
        int n = TestFrames.WriteRaw(f, MacC, MacA, 0x88B5, 46);
        int accepted = 0;
        for (int i = 0; i < 6; i++) if (small.DeliverFromWire(f[..n])) accepted++;
        Assert.That(accepted, Is.EqualTo(4));
        Assert.That(small.Counters.DropRxNoBuffer, Is.EqualTo(2));
        Assert.That(small.RxPool.InUse, Is.EqualTo(4));
        ReleaseAll(small, 0);
        Assert.That(small.RxPool.InUse, Is.Zero);
    }

    [Test]
    public void SteadyStateForwardingAllocatesNothing()
    {
        var one = new PacketBuffer[1];
        void Round(int k)
        {
            Span<byte> frame = stackalloc byte[128];
            int len = TestFrames.WriteIpv4(frame, MacB, MacA, new Ipv4Address(10, 0, 0, 1), new Ipv4Address(10, 0, 0, 2), 17, (ushort)(1000 + k), 53, 18);
            var b = _a.TxPool.Rent()!;
            frame[..len].CopyTo(b.Append(len));
            one[0] = b;
            _a.Transmit(k & 1, one);
            _bridge.Pump();
            ReceiveAll(_b);
        }
        for (int i = 0; i < 1000; i++) Round(i); // warm-up: learning, JIT, tiering
        long allocated = AllocationProbe.LeastAllocated(() => { for (int i = 0; i < 10_000; i++) Round(i); }, out int rounds);
        Assert.That(allocated, Is.Zero, "bytes allocated over 10k forwarded frames");
        Assert.That(_b.Counters.RxFrames, Is.EqualTo(1000 + rounds * 10_000));
    }
}

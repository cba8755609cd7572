using Gazelle.Buffers;
using Gazelle.Devices;
using Gazelle.Devices.Dpdk;

namespace Gazelle.Tests.Dpdk;

/// <summary>
/// net_ring0 (from --vdev in the fixture's dpdk_args) pairs each TX queue with the RX queue of the
/// same number through an rte_ring: what is transmitted comes back, the very same mbufs.
/// </summary>
[NonParallelizable]
public sealed unsafe class DpdkRingLoopTests
{
    private DpdkPort _port = null!;

    private static readonly DpdkPortOptions Options = new()
    {
        Queues = 2,
        RxDescriptors = 256,
        TxDescriptors = 256,
        MbufsPerQueue = 1023,
        MbufCacheSize = 32,
        BurstSize = 32,
    };

    [OneTimeSetUp]
    public void Open() => _port = DpdkPort.Open(DpdkFixture.Eal, "net_ring0", Options);

    [OneTimeTearDown]
    public void Close()
    {
        _port.Dispose();
        Assert.That(_port.ClosedCleanly, Is.True, "a queue pool still had buffers out when the port closed");
    }

    [TearDown]
    public void NoLeaks()
    {
        for (int q = 0; q < _port.QueueCount; q++)
        {
            Assert.That(_port.Pool(q).InUse, Is.Zero, $"queue {q} pool leaked wrappers");
            Assert.That(_port.Pool(q).MempoolInUse, Is.Zero, $"queue {q} mempool leaked mbufs");
        }
    }

    private static void Fill(PacketBuffer b, int length, byte seed)
    {
        var d = b.Append(length);
        for (int i = 0; i < d.Length; i++) d[i] = (byte)(seed + i * 7);
    }

    private static bool Matches(PacketBuffer b, int length, byte seed)
    {
        if (b.Length != length) return false;
        var d = b.Data;
        for (int i = 0; i < d.Length; i++)
        {
            if (d[i] != (byte)(seed + i * 7)) return false;
        }
        return true;
    }

    [Test]
    public void Port_DescribesTheDeviceAndOnlyEnablesOfferedOffloads()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_port.Name, Is.EqualTo("net_ring0"));
            Assert.That(_port.DriverName, Does.Contain("ring"));
            Assert.That(_port.QueueCount, Is.EqualTo(2));
            Assert.That(_port.Mtu, Is.EqualTo(1500));
            Assert.That(_port.Offloads & ~_port.DeviceOffloads, Is.EqualTo(NicOffloads.None), "an offload the device does not offer was enabled");
            Assert.That(_port.DeviceOffloads, Is.EqualTo(NicOffloads.None), "net_ring offers no offloads");
            Assert.That(_port.RssEnabled, Is.False);
            Assert.That(_port.GetLink().Up, Is.True);
            Assert.That(_port.TxPool, Is.SameAs(_port.Pool(0)));
        });
        var e = Assert.Throws<DpdkException>(() => _port.GetRedirectionTable());
        Assert.That(e!.Error, Is.EqualTo(DpdkError.Unsupported));
    }

    [Test]
    public void TransmittedFrames_ComeBackOnTheSameQueue_InTheSameMbufs()
    {
        _port.ResetStats();
        for (int queue = 0; queue < 2; queue++)
        {
            var pool = _port.Pool(queue);
            var tx = new PacketBuffer[20];
            var handles = new nint[tx.Length];
            for (int i = 0; i < tx.Length; i++)
            {
                tx[i] = pool.Rent()!;
                Assert.That(tx[i], Is.Not.Null);
                Assert.That(tx[i].Headroom, Is.EqualTo(DpdkFixture.Eal.MbufHeadroom));
                Fill(tx[i], 60 + i * 50, (byte)(i + queue * 100));
                handles[i] = tx[i].NativeHandle;
            }
            Assert.That(_port.Transmit(queue, tx), Is.EqualTo(tx.Length));
            Assert.That(pool.InUse, Is.Zero, "transmitted wrappers go back to the pool; the device owns the mbufs");

            var rx = new PacketBuffer[64];
            int n = _port.Receive(queue, rx);
            Assert.That(n, Is.EqualTo(tx.Length));
            for (int i = 0; i < n; i++)
            {
                Assert.That(Matches(rx[i], 60 + i * 50, (byte)(i + queue * 100)), Is.True, $"frame {i} on queue {queue}");
                Assert.That(rx[i].NativeHandle, Is.EqualTo(handles[i]), "zero copy: the same mbuf comes back");
                Assert.That(rx[i].Queue, Is.EqualTo(queue));
                rx[i].Release();
            }
            Assert.That(_port.Receive(1 - queue, rx), Is.Zero, "the other queue's ring stays empty");
        }
        var stats = _port.GetStats();
        Assert.That(stats.TxPackets, Is.EqualTo(40UL));
        Assert.That(stats.RxPackets, Is.EqualTo(40UL));
    }

    [Test]
    public void ForeignBuffers_AreCopiedIntoMbufs_AndReleased()
    {
        using var foreign = new NativePacketPool(8);
        var tx = new PacketBuffer[3];
        for (int i = 0; i < tx.Length; i++)
        {
            tx[i] = foreign.Rent()!;
            Fill(tx[i], 100 + i, (byte)i);
        }
        long before = _port.Counters(0).TxCopiedForeign;
        Assert.That(_port.Transmit(0, tx), Is.EqualTo(3));
        Assert.That(foreign.InUse, Is.Zero, "the device took the frames: the foreign buffers were released");
        Assert.That(_port.Counters(0).TxCopiedForeign - before, Is.EqualTo(3));
        var rx = new PacketBuffer[8];
        Assert.That(_port.Receive(0, rx), Is.EqualTo(3));
        for (int i = 0; i < 3; i++)
        {
            Assert.That(Matches(rx[i], 100 + i, (byte)i), Is.True);
            Assert.That(rx[i].Owner, Is.SameAs(_port.Pool(0)));
            rx[i].Release();
        }
    }

    [Test]
    public void HeadersPrependedInHeadroom_AreWhatGoesOnTheWire()
    {
        var b = _port.Pool(0).Rent()!;
        Fill(b, 40, 9);
        var hdr = b.Prepend(14);
        hdr.Fill(0xAB);
        Assert.That(_port.Transmit(0, [b]), Is.EqualTo(1));
        var rx = new PacketBuffer[4];
        Assert.That(_port.Receive(0, rx), Is.EqualTo(1));
        Assert.That(rx[0].Length, Is.EqualTo(54));
        Assert.That(rx[0].Headroom, Is.EqualTo(DpdkFixture.Eal.MbufHeadroom - 14));
        Assert.That(rx[0].Data[..14].ToArray(), Is.All.EqualTo((byte)0xAB));
        rx[0].TrimFront(14);
        Assert.That(Matches(rx[0], 40, 9), Is.True);
        rx[0].Release();
    }

    [Test]
    public void SteadyStateBursts_AllocateNothing()
    {
        var pool = _port.Pool(1);
        var tx = new PacketBuffer[32];
        var rx = new PacketBuffer[32];
        long received = 0;

        void Burst()
        {
            for (int i = 0; i < tx.Length; i++)
            {
                tx[i] = pool.Rent()!;
                tx[i].Append(64).Fill((byte)i);
            }
            int sent = _port.Transmit(1, tx);
            int n = _port.Receive(1, rx);
            received += n;
            for (int i = 0; i < n; i++) rx[i].Release();
            for (int i = sent; i < tx.Length; i++) tx[i].Release();
        }

        for (int i = 0; i < 200; i++) Burst(); // warm-up: JIT, tiering, native caches
        long delta = AllocationProbe.LeastAllocated(() => { for (int i = 0; i < 2000; i++) Burst(); }, out int rounds);

        Assert.That(received, Is.EqualTo((200L + 2000L * rounds) * 32), "every frame came back");
        Assert.That(delta, Is.Zero, "bytes allocated on the GC heap by 2000 bursts of 32 frames");
    }

    [Test]
    public void BulkRentAndReturn_AllocateNothing_AndRefuseDuplicates()
    {
        var pool = _port.Pool(1);
        var tx = new PacketBuffer[32];
        var rx = new PacketBuffer[32];
        long received = 0, shortRents = 0;

        void Burst()
        {
            if (pool.RentBulk(tx) != 32) shortRents++; // (no Assert here: constraints allocate)
            for (int i = 0; i < tx.Length; i++) tx[i].Append(64).Fill((byte)i);
            int sent = _port.Transmit(1, tx);
            int n = _port.Receive(1, rx);
            received += n;
            pool.ReturnBulk(rx.AsSpan(0, n));
            if (sent < tx.Length) pool.ReturnBulk(tx.AsSpan(sent));
        }

        for (int i = 0; i < 200; i++) Burst();
        long delta = AllocationProbe.LeastAllocated(() => { for (int i = 0; i < 2000; i++) Burst(); }, out int rounds);
        Assert.That(shortRents, Is.Zero);
        Assert.That(received, Is.EqualTo((200L + 2000L * rounds) * 32));
        Assert.That(delta, Is.Zero, "bytes allocated on the GC heap by 2000 bulk bursts");

        // All or nothing: asking for more than the pool holds rents none.
        var tooMany = new PacketBuffer[pool.FreeWrappers + 1];
        Assert.That(pool.RentBulk(tooMany.AsSpan(0, Math.Min(tooMany.Length, DpdkPacketPool.MaxBulk))), Is.EqualTo(Math.Min(tooMany.Length, DpdkPacketPool.MaxBulk)));
        pool.ReturnBulk(tooMany.AsSpan(0, Math.Min(tooMany.Length, DpdkPacketPool.MaxBulk)));

        // A buffer listed twice: the first is taken back, the duplicate is refused, nothing leaks.
        Assert.That(pool.RentBulk(tx.AsSpan(0, 2)), Is.EqualTo(2));
        var twice = new[] { tx[0], tx[1], tx[0] };
        Assert.Throws<InvalidOperationException>(() => pool.ReturnBulk(twice));
        Assert.That(pool.InUse, Is.Zero);
        Assert.That(pool.MempoolInUse, Is.Zero);
    }

    [Test]
    public void BulkRent_IsAllOrNothing()
    {
        using var small = DpdkPacketPool.Create(DpdkFixture.Eal, $"gz_bulk_{Environment.ProcessId}", 40, 2048 + 128, cacheSize: 0);
        var buffers = new PacketBuffer[32];
        Assert.That(small.RentBulk(buffers), Is.EqualTo(32));
        var more = new PacketBuffer[16];
        Assert.That(small.RentBulk(more), Is.Zero, "only 8 left");
        Assert.That(small.InUse, Is.EqualTo(32));
        Assert.That(small.MempoolInUse, Is.EqualTo(32));
        small.ReturnBulk(buffers);
        Assert.That(small.InUse, Is.Zero);
        Assert.That(small.MempoolInUse, Is.Zero);
    }

    [Test]
    public void ReadyBuffers_AreAllocatedInBulk_AndUnsentOnesAreKeptAsRented()
    {
        using var pool = DpdkPacketPool.Create(DpdkFixture.Eal, $"gz_ready_{Environment.ProcessId}", 256, 2048 + 128, cacheSize: 0,
            readyCapacity: 64);
        Assert.That(pool.ReadyCapacity, Is.EqualTo(64));
        var a = pool.Rent()!;
        Assert.That(pool.MempoolInUse, Is.EqualTo(32), "one native call allocated half the ready capacity");
        Assert.That((pool.InUse, pool.ReadyBuffers), Is.EqualTo((1, 31)), "only the rented one counts as in use");

        // A frame the device refused: kept allocated (same mbuf, no free), handed out again empty at the headroom.
        a.Append(100).Fill(0xAB);
        a.Prepend(14);
        nint mbuf = a.NativeHandle;
        pool.ReturnUnsent([a]);
        Assert.That((pool.InUse, pool.ReadyBuffers, pool.MempoolInUse), Is.EqualTo((0, 32, 32)));
        var again = pool.Rent()!;
        Assert.That(again.NativeHandle, Is.EqualTo(mbuf), "the kept buffer is the next one rented");
        Assert.That((again.Length, again.Headroom), Is.EqualTo((0, DpdkFixture.Eal.MbufHeadroom)));
        Assert.Throws<InvalidOperationException>(() => pool.ReturnUnsent([again, again]), "a buffer returned twice");
        Assert.That(pool.InUse, Is.Zero, "the first of the pair was taken back");

        // Beyond the capacity, unsent buffers are freed; renting drains the ready ones before allocating again.
        var held = new PacketBuffer[96];
        for (int i = 0; i < held.Length; i++) held[i] = pool.Rent()!;
        Assert.That(pool.ReadyBuffers, Is.Zero);
        Assert.That(pool.MempoolInUse, Is.EqualTo(96));
        pool.ReturnUnsent(held);
        Assert.That((pool.InUse, pool.ReadyBuffers, pool.MempoolInUse), Is.EqualTo((0, 64, 64)));
        pool.TrimReady();
        Assert.That((pool.ReadyBuffers, pool.MempoolInUse, pool.FreeWrappers), Is.EqualTo((0, 0, 256)));

        // A pool that cannot give half the capacity at once still rents one by one to the last mbuf.
        using var small = DpdkPacketPool.Create(DpdkFixture.Eal, $"gz_ready_s_{Environment.ProcessId}", 40, 2048 + 128, cacheSize: 0,
            readyCapacity: 64);
        Assert.That(small.ReadyCapacity, Is.EqualTo(10), "at most a quarter of the pool is kept ready");
        var all = new List<PacketBuffer>();
        while (small.Rent() is { } b) all.Add(b);
        Assert.That(all, Has.Count.EqualTo(40));
        small.ReturnUnsent(all.ToArray());
        Assert.That(small.ReadyBuffers, Is.EqualTo(10));
        Assert.That(small.TryFree(), Is.True, "freeing the mempool frees the ready buffers first");
    }

    [Test]
    public void ReceiveStopsWhenThePoolHasNoWrapperLeft_WithoutLosingFrames()
    {
        var pool = _port.Pool(0);
        var held = new List<PacketBuffer>();
        while (pool.FreeWrappers > 4) held.Add(pool.Rent()!);
        // Send 10 frames from queue 0's pool... it has 4 wrappers left: borrow mbufs from queue 1's pool.
        var other = _port.Pool(1);
        var tx = new PacketBuffer[10];
        for (int i = 0; i < tx.Length; i++)
        {
            tx[i] = other.Rent()!;
            tx[i].Append(60).Fill((byte)i);
        }
        Assert.That(_port.Transmit(0, tx), Is.EqualTo(10));
        var rx = new PacketBuffer[16];
        long shortage = _port.Counters(0).RxWrapperShortage;
        Assert.That(_port.Receive(0, rx), Is.EqualTo(4));
        Assert.That(_port.Receive(0, rx.AsSpan(4)), Is.Zero);
        Assert.That(_port.Counters(0).RxWrapperShortage, Is.GreaterThan(shortage));
        foreach (var b in held) b.Release();
        for (int i = 0; i < 4; i++) rx[i].Release();
        int n = _port.Receive(0, rx);
        Assert.That(n, Is.EqualTo(6), "the rest waited in the ring");
        for (int i = 0; i < n; i++) rx[i].Release();
    }

    [Test]
    public void MultiSegmentFrames_AreLinearisedOrDropped_AndCounted()
    {
        var pool = _port.Pool(0);
        var mp = pool.Mempool;
        var before = Snapshot(_port.Counters(0));

        // 1) In place: 1000 + 1000 bytes, the first segment has 1048 bytes of tailroom.
        nint a = Segment(mp, 1000, 1, 0), b = Segment(mp, 1000, 2, 0);
        Assert.That(DpdkNative.gz_dpdk_mbuf_chain(a, b), Is.Zero);
        // 2) Copied: first segment's data moved up (adj) so its tailroom is 148 < 1000.
        nint c = Segment(mp, 1900, 3, 1000), d = Segment(mp, 1000, 4, 0);
        Assert.That(DpdkNative.gz_dpdk_mbuf_chain(c, d), Is.Zero);
        // 3) Dropped: 2000 + 1000 bytes cannot fit one 2048-byte mbuf.
        nint e = Segment(mp, 2000, 5, 0), f = Segment(mp, 1000, 6, 0);
        Assert.That(DpdkNative.gz_dpdk_mbuf_chain(e, f), Is.Zero);

        nint* chains = stackalloc nint[3] { a, c, e };
        Assert.That(DpdkNative.gz_dpdk_tx_burst(_port.PortId, 0, chains, 3), Is.EqualTo(3));

        var rx = new PacketBuffer[8];
        int n = _port.Receive(0, rx);
        var after = Snapshot(_port.Counters(0));
        Assert.That(n, Is.EqualTo(2));
        Assert.That(after.InPlace - before.InPlace, Is.EqualTo(1));
        Assert.That(after.Copied - before.Copied, Is.EqualTo(1));
        Assert.That(after.Dropped - before.Dropped, Is.EqualTo(1));
        AssertSegments(rx[0], (1000, 1), (1000, 2));
        AssertSegments(rx[1], (900, 3), (1000, 4));
        Assert.That(DpdkNative.gz_dpdk_mbuf_nb_segs(rx[0].NativeHandle), Is.EqualTo(1));
        Assert.That(DpdkNative.gz_dpdk_mbuf_nb_segs(rx[1].NativeHandle), Is.EqualTo(1));
        rx[0].Release();
        rx[1].Release();
    }

    private static (long InPlace, long Copied, long Dropped) Snapshot(DpdkQueueCounters c) =>
        (c.RxLinearizedInPlace, c.RxLinearizedCopied, c.RxMultiSegmentDropped);

    /// <summary>An mbuf with <paramref name="length"/> bytes of <paramref name="value"/>, then <paramref name="adj"/> bytes cut from the front.</summary>
    private static nint Segment(nint mempool, int length, byte value, int adj)
    {
        nint m = DpdkNative.gz_dpdk_pktmbuf_alloc(mempool);
        Assert.That(m, Is.Not.Zero);
        byte* p = DpdkNative.gz_dpdk_mbuf_append(m, (ushort)length);
        Assert.That(p != null, Is.True);
        new Span<byte>(p, length).Fill(value);
        if (adj > 0) Assert.That(DpdkNative.gz_dpdk_mbuf_adj(m, (ushort)adj) != null, Is.True);
        return m;
    }

    private static void AssertSegments(PacketBuffer b, params (int Length, byte Value)[] parts)
    {
        int total = 0;
        foreach (var p in parts) total += p.Length;
        Assert.That(b.Length, Is.EqualTo(total));
        int at = 0;
        foreach (var (length, value) in parts)
        {
            Assert.That(b.Data.Slice(at, length).IndexOfAnyExcept(value), Is.EqualTo(-1), $"bytes {at}..{at + length} should be {value}");
            at += length;
        }
    }
}

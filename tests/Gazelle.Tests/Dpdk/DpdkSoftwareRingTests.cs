using Gazelle.Devices.Dpdk;

namespace Gazelle.Tests.Dpdk;

/// <summary>The glue's rte_ring bursts, as the seed's per-queue software queue (many producers, one consumer) would use them.</summary>
public sealed unsafe class DpdkSoftwareRingTests
{
    private const uint RingFlagSingleConsumer = 0x0002; // RING_F_SC_DEQ

    [Test]
    public void MbufHandles_GoThroughAMultiProducerSingleConsumerRing_InOrder()
    {
        using var pool = DpdkPacketPool.Create(DpdkFixture.Eal, $"gz_swq_{Environment.ProcessId}", 63, 2048 + 128, cacheSize: 0);
        nint ring = DpdkNative.rte_ring_create($"gz_swq_{Environment.ProcessId}", 16, -1, RingFlagSingleConsumer);
        Assert.That(ring, Is.Not.Zero, "rte_ring_create failed: rte_errno " + DpdkNative.gz_dpdk_errno());
        try
        {
            nint* mbufs = stackalloc nint[20];
            Assert.That(DpdkNative.gz_dpdk_pktmbuf_alloc_bulk(pool.Mempool, mbufs, 20), Is.Zero);
            uint free;
            // A ring of 16 slots holds 15 objects (one slot tells full from empty).
            Assert.That(DpdkNative.gz_dpdk_ring_enqueue_burst(ring, mbufs, 20, &free), Is.EqualTo(15u));
            Assert.That(free, Is.Zero);
            Assert.That(DpdkNative.gz_dpdk_ring_count(ring), Is.EqualTo(15u));

            nint* got = stackalloc nint[20];
            uint available;
            Assert.That(DpdkNative.gz_dpdk_ring_dequeue_burst(ring, got, 20, &available), Is.EqualTo(15u));
            Assert.That(available, Is.Zero);
            for (int i = 0; i < 15; i++) Assert.That(got[i], Is.EqualTo(mbufs[i]), $"slot {i}");
            Assert.That(DpdkNative.gz_dpdk_ring_free_count(ring), Is.EqualTo(15u));
            DpdkNative.gz_dpdk_pktmbuf_free_bulk(mbufs, 20);
            Assert.That(pool.MempoolInUse, Is.Zero);
        }
        finally
        {
            DpdkNative.rte_ring_free(ring);
        }
    }
}

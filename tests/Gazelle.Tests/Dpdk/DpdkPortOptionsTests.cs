using Gazelle.Buffers;
using Gazelle.Devices.Dpdk;

namespace Gazelle.Tests.Dpdk;

/// <summary>Port set-up rules on a hot-plugged net_ring (16 queue pairs, no offloads, MTU up to 65535).</summary>
[NonParallelizable]
public sealed class DpdkPortOptionsTests
{
    private const string Device = "net_ring7";

    // A closed port is released by DPDK: each test probes the device afresh and removes it.
    [SetUp]
    public void Probe() => DpdkFixture.Eal.ProbeDevice(Device);

    [TearDown]
    public void Remove() => Assert.That(DpdkFixture.Eal.RemoveDevice(Device), Is.True);

    [Test]
    public void MoreQueuesThanTheDeviceHas_IsUnsupported()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkFixture.Eal, Device, new DpdkPortOptions { Queues = 17 }));
        Assert.That(e!.Error, Is.EqualTo(DpdkError.Unsupported));
        Assert.That(e.Message, Does.Contain("17 queues").And.Contain("16"));
    }

    [Test]
    public void MtuOutsideTheDeviceRange_IsUnsupported()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkFixture.Eal, Device, new DpdkPortOptions { Mtu = 40 }));
        Assert.That(e!.Error, Is.EqualTo(DpdkError.Unsupported));
        Assert.That(e.Message, Does.Contain("MTU 40"));
    }

    [Test]
    public void ActAsLcore_MakesEveryThreadThatDrivesThePortThatLcore()
    {
        var eal = DpdkFixture.Eal;
        foreach (int actAs in new[] { -1, eal.MainLcore })
        {
            using var port = DpdkPort.Open(eal, Device, new DpdkPortOptions
            {
                RxDescriptors = 64, TxDescriptors = 64, MbufsPerQueue = 255, MbufCacheSize = 16, ActAsLcore = actAs,
            });
            uint before = 0, after = 0;
            int echoed = 0;
            // A thread EAL did not start, as a preloaded program's threads are.
            var t = new Thread(() =>
            {
                before = eal.CurrentLcoreId;
                var b = port.Pool(0).Rent()!;
                b.Append(60).Fill(0x11);
                port.Transmit(0, [b]);
                var rx = new PacketBuffer[4];
                echoed = port.Receive(0, rx);
                for (int i = 0; i < echoed; i++) rx[i].Release();
                after = eal.CurrentLcoreId;
            });
            t.Start();
            t.Join();
            Assert.Multiple(() =>
            {
                Assert.That(before, Is.EqualTo(uint.MaxValue));
                Assert.That(echoed, Is.EqualTo(1));
                Assert.That(after, Is.EqualTo(actAs < 0 ? uint.MaxValue : (uint)actAs), $"ActAsLcore {actAs}");
            });
            port.Dispose();
            Assert.That(DpdkFixture.Eal.RemoveDevice(Device), Is.True);
            DpdkFixture.Eal.ProbeDevice(Device);
        }
    }

    [Test]
    public void JumboMtu_CarriesA9000ByteFrameInOneMbuf_AndMtuChangesAreChecked()
    {
        using var port = DpdkPort.Open(DpdkFixture.Eal, Device, new DpdkPortOptions
        {
            Mtu = 9000,
            RxDescriptors = 64,
            TxDescriptors = 64,
            MbufsPerQueue = 255,
            MbufCacheSize = 0,
        });
        Assert.That(port.Mtu, Is.EqualTo(9000));
        var pool = port.Pool(0);
        Assert.That(pool.DataRoom - pool.Headroom, Is.GreaterThanOrEqualTo(9000 + 14));

        var b = pool.Rent()!;
        b.Append(9014).Fill(0x5A);
        Assert.That(port.Transmit(0, [b]), Is.EqualTo(1));
        var rx = new PacketBuffer[4];
        Assert.That(port.Receive(0, rx), Is.EqualTo(1));
        Assert.That(rx[0].Length, Is.EqualTo(9014));
        Assert.That(rx[0].Data.IndexOfAnyExcept((byte)0x5A), Is.EqualTo(-1));
        Assert.That(DpdkNative.gz_dpdk_mbuf_nb_segs(rx[0].NativeHandle), Is.EqualTo(1));
        rx[0].Release();

        // net_ring has no MTU operation after start: asked, not assumed.
        var unsupported = Assert.Throws<DpdkException>(() => port.SetMtu(1500));
        Assert.That(unsupported!.Error, Is.EqualTo(DpdkError.Unsupported));
        Assert.That(port.Mtu, Is.EqualTo(9000));
        var tooBig = Assert.Throws<DpdkException>(() => port.SetMtu(16000));
        Assert.That(tooBig!.Message, Does.Contain("does not fit"));
        Assert.That(pool.InUse, Is.Zero);
    }
}

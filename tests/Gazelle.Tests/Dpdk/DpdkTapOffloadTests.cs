using Gazelle.Devices;
using Gazelle.Devices.Dpdk;

namespace Gazelle.Tests.Dpdk;

/// <summary>
/// net_tap offers checksum and TSO offloads (done in software by the PMD), unlike net_ring and
/// net_af_packet: the port enables what the device offers and the options allow, nothing else.
/// </summary>
[NonParallelizable]
public sealed class DpdkTapOffloadTests
{
    private static readonly string Device = $"net_tapgz{Environment.ProcessId}";
    private static readonly string Iface = $"gzt{Environment.ProcessId}";

    private static readonly DpdkPortOptions Small = new()
    {
        RxDescriptors = 128,
        TxDescriptors = 128,
        MbufsPerQueue = 511,
        MbufCacheSize = 0,
    };

    [SetUp]
    public void Probe() => DpdkFixture.Eal.ProbeDevice($"{Device},iface={Iface}");

    [TearDown]
    public void Remove()
    {
        DpdkFixture.Eal.RemoveDevice(Device);
        Assert.That(Directory.Exists($"/sys/class/net/{Iface}"), Is.False, "tap interface left behind");
    }

    [Test]
    public void OfferedOffloads_AreEnabledWhenAllowed()
    {
        using var port = DpdkPort.Open(DpdkFixture.Eal, Device, Small);
        const NicOffloads checksums = NicOffloads.Ipv4ChecksumRx | NicOffloads.TcpUdpChecksumRx | NicOffloads.Ipv4ChecksumTx | NicOffloads.TcpUdpChecksumTx;
        Assert.That(port.DeviceOffloads & checksums, Is.EqualTo(checksums), "net_tap offers IPv4/TCP/UDP checksums both ways");
        Assert.That(port.Offloads, Is.EqualTo(port.DeviceOffloads & ~NicOffloads.RssHash), "one queue: no RSS hash asked for");
    }

    [Test]
    public void OfferedOffloads_StayOffWhenNotAllowed()
    {
        using var port = DpdkPort.Open(DpdkFixture.Eal, Device, Small with { AllowedOffloads = NicOffloads.Ipv4ChecksumRx });
        Assert.That(port.DeviceOffloads, Is.Not.EqualTo(NicOffloads.Ipv4ChecksumRx));
        Assert.That(port.Offloads, Is.EqualTo(NicOffloads.Ipv4ChecksumRx));
    }

    [Test]
    public void RssWithoutARedirectionTable_IsReportedAsUnsupported()
    {
        using var port = DpdkPort.Open(DpdkFixture.Eal, Device, Small with { Queues = 2 });
        Assert.That(port.QueueCount, Is.EqualTo(2));
        Assert.That(port.RetaSize, Is.Zero);
        var e = Assert.Throws<DpdkException>(() => port.SetRedirectionTable([0, 1]));
        Assert.That(e!.Error, Is.EqualTo(DpdkError.Unsupported));
        Assert.That(e.Message, Does.Contain("redirection table"));
    }

    [Test]
    public void RssKeyOfTheWrongSize_IsRefused()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkFixture.Eal, Device, Small with { Queues = 2, RssKey = new byte[10] }));
        Assert.That(e!.Error, Is.EqualTo(DpdkError.Unsupported));
        Assert.That(e.Message, Does.Contain("RSS key of 10 bytes").And.Contain("40"));
    }
}

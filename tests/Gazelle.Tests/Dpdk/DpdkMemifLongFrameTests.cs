using Gazelle.Devices;
using Gazelle.Devices.Dpdk;

namespace Gazelle.Tests.Dpdk;

/// <summary>
/// An MTU above what net_memif's dev_info reports (max_rx_pktlen 1518): the driver carries long frames as
/// descriptor chains (DpdkPort.CarriesLongFrames), so the port runs MTU 9000 in the stack. One port with
/// no peer: the properties are the device's answer and the port's set-up; frames crossing at that MTU
/// between two processes are tests/integration/e2e_long_mtu_over_memif.sh (two memif ports connected in
/// one process crash the test host inside EAL's interrupt thread now and then, DpdkMemifTests included).
/// </summary>
[NonParallelizable]
public sealed class DpdkMemifLongFrameTests
{
    private const int Mtu = 9000;
    private string Socket => $"/tmp/gz-memif-long-{Environment.ProcessId}-{_n}.sock";
    // A closed port is released by DPDK: each test probes a device of its own.
    private string Device => $"net_memifgzlong{_n}";
    private int _n;

    [SetUp]
    public void Probe()
    {
        _n++;
        DpdkFixture.Eal.ProbeDevice($"{Device},role=server,id=0,socket={Socket}");
    }

    [TearDown]
    public void Remove()
    {
        DpdkFixture.Eal.RemoveDevice(Device);
        File.Delete(Socket);
    }

    private static DpdkPortOptions Options(int mtu) =>
        new() { RxDescriptors = 256, TxDescriptors = 256, MbufsPerQueue = 511, MbufCacheSize = 0, Mtu = mtu };

    [Test]
    public void TheDeviceReportsStandardFrames_ThePortRunsTheLongMtuInTheStack()
    {
        var port = DpdkPort.Open(DpdkFixture.Eal, Device, Options(Mtu));
        try
        {
            Assert.That(port.DriverName, Is.EqualTo("net_memif"));
            Assert.That(port.MaxMtu, Is.EqualTo(1500), "max_rx_pktlen 1518 less header and CRC");
            Assert.That(port.CarriesLongFrames, Is.True);
            Assert.That(port.Mtu, Is.EqualTo(Mtu));
            Assert.That(port.LongFrameMtu, Is.True);
            Assert.That(port.Offloads & NicOffloads.RxChecksumUnnecessary, Is.EqualTo(NicOffloads.RxChecksumUnnecessary), "frames only cross memory");
            Assert.That(port.Pool(0).DataRoom - port.Pool(0).Headroom, Is.GreaterThanOrEqualTo(DpdkPort.FrameBytes(Mtu)), "a whole frame fits one mbuf");
        }
        finally
        {
            port.Dispose();
        }
    }

    [Test]
    public void WithinTheDevicesRangeTheMtuIsEthdevs()
    {
        var port = DpdkPort.Open(DpdkFixture.Eal, Device, Options(1400));
        try
        {
            Assert.That((port.Mtu, port.LongFrameMtu), Is.EqualTo((1400, false)));
        }
        finally
        {
            port.Dispose();
        }
    }

    [Test]
    public void AnMtuBeyondOneMbufIsRefused()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkFixture.Eal, Device, Options(DpdkPort.MaxLongFrameMtu + 1)));
        Assert.That(e!.Error, Is.EqualTo(DpdkError.Unsupported));
        Assert.That(e.Message, Does.Contain("outside the device's range"));
    }
}

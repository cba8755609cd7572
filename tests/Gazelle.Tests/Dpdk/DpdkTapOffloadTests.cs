using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Gazelle.Devices;
using Gazelle.Devices.Dpdk;
using Gazelle.Wire;

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

    private const int SolSocket = 1, SoBindToDevice = 25; // <asm-generic/socket.h>

    // RTE_MBUF_F_TX_* (rte_mbuf_core.h, DPDK 22.11)
    private const ulong TxIpv4 = 1UL << 55;
    private const ulong TxIpChecksum = 1UL << 54;
    private const ulong TxUdpChecksum = 3UL << 52;

    [Test]
    public void TxChecksumOffload_MakesTheKernelAcceptAFrameSentWithBlankChecksums()
    {
        using var port = DpdkPort.Open(DpdkFixture.Eal, Device, Small);
        Assert.That(port.Offloads & (NicOffloads.Ipv4ChecksumTx | NicOffloads.TcpUdpChecksumTx),
            Is.EqualTo(NicOffloads.Ipv4ChecksumTx | NicOffloads.TcpUdpChecksumTx));
        var kernelIp = new Ipv4Address(198, 51, 100, 1);   // RFC 5737 TEST-NET-2, on the tap in the root namespace
        var dpdkIp = new Ipv4Address(198, 51, 100, 2);
        Run("ip", "addr", "add", $"{kernelIp}/24", "dev", Iface);
        Run("ip", "link", "set", Iface, "up");
        var kernelMac = MacAddress.Parse(File.ReadAllText($"/sys/class/net/{Iface}/address").Trim());
        ushort udpPort = (ushort)(40000 + Environment.ProcessId % 20000);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(kernelIp.ToString()), udpPort));
        socket.ReceiveTimeout = 30_000;

        // Without the offload request the blank IPv4 checksum makes the kernel drop the frame...
        Send(port, "no offload asked", kernelMac, dpdkIp, kernelIp, udpPort, offload: false);
        // ...with it, the device (here the tap PMD, in software) fills both checksums.
        Send(port, "offload asked", kernelMac, dpdkIp, kernelIp, udpPort, offload: true);

        var buffer = new byte[256];
        int n = socket.Receive(buffer);
        Assert.That(Encoding.ASCII.GetString(buffer, 0, n), Is.EqualTo("offload asked"));
        Assert.That(port.Pool(0).InUse, Is.Zero);
    }

    [Test]
    public void RxChecksumOffload_ReportsTheKernelsDatagramAsGood()
    {
        using var port = DpdkPort.Open(DpdkFixture.Eal, Device, Small);
        Assert.That(port.Offloads & (NicOffloads.Ipv4ChecksumRx | NicOffloads.TcpUdpChecksumRx),
            Is.EqualTo(NicOffloads.Ipv4ChecksumRx | NicOffloads.TcpUdpChecksumRx));
        var kernelIp = new Ipv4Address(198, 51, 100, 1);
        var dpdkIp = new Ipv4Address(198, 51, 100, 2);
        Run("ip", "addr", "add", $"{kernelIp}/24", "dev", Iface);
        Run("ip", "link", "set", Iface, "up");
        Run("ip", "neigh", "replace", dpdkIp.ToString(), "lladdr", port.MacAddress.ToString(), "dev", Iface, "nud", "permanent");
        ushort udpPort = (ushort)(40000 + Environment.ProcessId % 20000);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        // Out of this test's tap whatever the routing table says: another test run on the machine may
        // have a tap with the same /24 (its route can come first).
        socket.SetRawSocketOption(SolSocket, SoBindToDevice, Encoding.ASCII.GetBytes(Iface + "\0"));
        socket.Bind(new IPEndPoint(IPAddress.Parse(kernelIp.ToString()), 0));
        socket.SendTo(Encoding.ASCII.GetBytes("from the kernel"), new IPEndPoint(IPAddress.Parse(dpdkIp.ToString()), udpPort));

        var rx = new Gazelle.Buffers.PacketBuffer[16];
        var sw = Stopwatch.StartNew();
        DpdkRxChecksum verdict = DpdkRxChecksum.Unknown;
        bool found = false;
        while (!found && sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            int n = port.Receive(0, rx);
            for (int i = 0; i < n; i++)
            {
                var f = rx[i].Data;
                if (!found && f.Length >= 42 && BinaryPrimitives.ReadUInt16BigEndian(f[12..]) == 0x0800 && f[14 + 9] == 17
                    && BinaryPrimitives.ReadUInt16BigEndian(f[(14 + 20 + 2)..]) == udpPort)
                {
                    found = true;
                    verdict = DpdkPort.RxChecksum(rx[i]);
                }
                rx[i].Release();
            }
            if (n == 0) Thread.Yield();
        }
        Assert.That(found, Is.True, "the kernel's datagram did not arrive");
        Assert.That(verdict, Is.EqualTo(DpdkRxChecksum.IpGood | DpdkRxChecksum.L4Good));
    }

    private static void Send(DpdkPort port, string text, MacAddress dstMac, Ipv4Address src, Ipv4Address dst, ushort dstPort, bool offload)
    {
        var payload = Encoding.ASCII.GetBytes(text);
        var b = port.Pool(0).Rent()!;
        var f = b.Append(14 + 20 + 8 + payload.Length);
        dstMac.Write(f);
        port.MacAddress.Write(f[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x0800);
        var ip = f[14..];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 8 + payload.Length));
        ip[8] = 64;
        ip[9] = 17;
        src.Write(ip[12..]);
        dst.Write(ip[16..]);            // header checksum left 0: wrong unless offloaded
        var udp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, 9);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], dstPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(8 + payload.Length));
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], 0x1234); // wrong unless offloaded
        payload.CopyTo(udp[8..]);
        if (offload) DpdkPort.RequestTxOffload(b, TxIpv4 | TxIpChecksum | TxUdpChecksum, 14, 20, 8, 0);
        Assert.That(port.Transmit(0, [b]), Is.EqualTo(1));
    }

    private static void Run(params string[] args)
    {
        var psi = new ProcessStartInfo(args[0]) { RedirectStandardError = true };
        foreach (var a in args.AsSpan(1)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.That(p.ExitCode, Is.Zero, $"{string.Join(' ', args)}: {err}");
    }
}

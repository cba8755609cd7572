using System.Diagnostics;
using System.Text;
using Gazelle.Buffers;
using Gazelle.Devices.Dpdk;
using Gazelle.Wire;

namespace Gazelle.Tests.Dpdk;

/// <summary>
/// net_af_packet on one end of a veth pair whose other end lives in a network namespace with an
/// IP address: the namespace's kernel is the peer. DPDK's end has no IP in the kernel; the test
/// speaks ARP and ICMP for it with hand-built frames. The device is hot-plugged (EAL is already
/// up) and removed, and the namespace and veth are deleted, even when a step fails.
/// </summary>
[NonParallelizable]
public sealed class DpdkAfPacketTests
{
    private static readonly int Pid = Environment.ProcessId;
    private static readonly string Ns = $"gz-t-{Pid}";
    private static readonly string HostIf = $"gzd{Pid}a";
    private static readonly string NsIf = $"gzd{Pid}b";
    private static readonly string Vdev = $"net_af_packetgz{Pid}";
    private static readonly Ipv4Address NsIp = new(192, 0, 2, 1);     // RFC 5737 TEST-NET-1
    private static readonly Ipv4Address DpdkIp = new(192, 0, 2, 2);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60); // a bound for a loaded machine: a passing run ends at the first answer

    private DpdkPort? _port;
    private MacAddress _nsMac;
    private readonly List<byte[]> _seen = [];
    private int _arpRequestsAnswered;
    private int _echoRequestsAnswered;

    [OneTimeSetUp]
    public void CreateNamespaceAndPort()
    {
        DeleteNamespaceAndVeth();
        try
        {
            Run("ip", "netns", "add", Ns);
            Run("ip", "link", "add", HostIf, "type", "veth", "peer", "name", NsIf, "netns", Ns);
            // Quiet links: no IPv6 router solicitations or MLD reports in the captures.
            File.WriteAllText($"/proc/sys/net/ipv6/conf/{HostIf}/disable_ipv6", "1");
            Run("ip", "netns", "exec", Ns, "sysctl", "-qw", $"net.ipv6.conf.{NsIf}.disable_ipv6=1");
            Run("ip", "link", "set", HostIf, "up");
            Run("ip", "-n", Ns, "link", "set", "lo", "up");
            Run("ip", "-n", Ns, "addr", "add", $"{NsIp}/24", "dev", NsIf);
            Run("ip", "-n", Ns, "link", "set", NsIf, "up");
            _nsMac = ReadNsMac();

            DpdkFixture.Eal.ProbeDevice($"{Vdev},iface={HostIf}");
            _port = DpdkPort.Open(DpdkFixture.Eal, Vdev, new DpdkPortOptions
            {
                RxDescriptors = 256,
                TxDescriptors = 256,
                MbufsPerQueue = 1023,
                MbufCacheSize = 32,
            });
        }
        catch
        {
            TearDownNamespaceAndPort();
            throw;
        }
    }

    [OneTimeTearDown]
    public void TearDownNamespaceAndPort()
    {
        try
        {
            if (_port != null)
            {
                _port.Dispose();
                Assert.That(_port.ClosedCleanly, Is.True, "af_packet port pool still had buffers out");
            }
        }
        finally
        {
            _port = null;
            DpdkFixture.Eal.RemoveDevice(Vdev);
            DeleteNamespaceAndVeth();
        }
        Assert.That(Run("ip", "netns", "list").Output, Does.Not.Contain(Ns), "namespace left behind");
        Assert.That(Directory.Exists($"/sys/class/net/{HostIf}"), Is.False, "veth left behind");
    }

    [SetUp]
    public void ForgetNeighbours()
    {
        _seen.Clear();
        Run("ip", "-n", Ns, "neigh", "flush", "dev", NsIf);
    }

    [TearDown]
    public void NoLeaks() => Assert.That(_port!.Pool(0).InUse, Is.Zero, "received or rented buffers not released");

    [Test]
    public void Port_IsTheVethEnd()
    {
        var hostMac = MacAddress.Parse(File.ReadAllText($"/sys/class/net/{HostIf}/address").Trim());
        Assert.Multiple(() =>
        {
            Assert.That(_port!.MacAddress, Is.EqualTo(hostMac));
            Assert.That(_port.DriverName, Does.Contain("af_packet"));
            Assert.That(_port.GetLink().Up, Is.True);
            Assert.That(_port.Offloads & ~_port.DeviceOffloads, Is.EqualTo(Gazelle.Devices.NicOffloads.None));
        });
    }

    [Test]
    public void ArpRequest_FromDpdk_IsAnsweredByTheKernel()
    {
        Send(TestFrames.ArpFrameLength, f => TestFrames.Arp(f, 1, _port!.MacAddress, DpdkIp, MacAddress.Zero, NsIp));
        MacAddress answeredBy = default;
        bool got = Pump(f =>
        {
            if (!TestFrames.TryArp(f, out var op, out var mac, out var sender, out var target) || op != 2) return false;
            if (sender != NsIp || target != DpdkIp) return false;
            answeredBy = mac;
            return true;
        });
        Assert.That(got, Is.True, "no ARP reply from the namespace; saw: " + Describe());
        Assert.That(answeredBy, Is.EqualTo(_nsMac));
    }

    [Test]
    public void IcmpEcho_FromDpdk_IsAnsweredByTheKernel()
    {
        var payload = Encoding.ASCII.GetBytes("gazelle dpdk echo 0123456789");
        Send(TestFrames.IcmpEchoLength(payload.Length),
            f => TestFrames.IcmpEcho(f, 8, _port!.MacAddress, _nsMac, DpdkIp, NsIp, 0x4747, 1, payload));
        // The kernel resolves our address before replying: Pump answers its ARP request.
        bool got = Pump(f => TestFrames.TryIcmpEcho(f, out var type, out var src, out var dst, out var id, out var seq, out var p)
            && type == 0 && src == NsIp && dst == DpdkIp && id == 0x4747 && seq == 1 && p.SequenceEqual(payload));
        Assert.That(got, Is.True, "no echo reply from the namespace; saw: " + Describe());
    }

    [Test]
    public void KernelPing_FromTheNamespace_IsReceivedAndAnsweredThroughDpdk()
    {
        using var ping = StartInNamespace("ping", "-c", "1", "-W", "30", DpdkIp.ToString());
        bool exited = Pump(until: null, done: () => ping.HasExited);
        Assert.That(exited, Is.True, "ping did not finish; saw: " + Describe());
        Assert.Multiple(() =>
        {
            Assert.That(_arpRequestsAnswered, Is.GreaterThanOrEqualTo(1), "the kernel's ARP request never reached DPDK");
            Assert.That(_echoRequestsAnswered, Is.EqualTo(1), "the kernel's echo request never reached DPDK");
            Assert.That(ping.ExitCode, Is.Zero, "ping got no reply: " + ping.StandardOutput.ReadToEnd());
        });
    }

    [Test]
    public void KernelArping_FromTheNamespace_IsReceivedAndAnsweredThroughDpdk()
    {
        using var arping = StartInNamespace("arping", "-c", "1", "-w", "30", "-i", NsIf, DpdkIp.ToString());
        bool exited = Pump(until: null, done: () => arping.HasExited);
        Assert.That(exited, Is.True, "arping did not finish; saw: " + Describe());
        Assert.That(_arpRequestsAnswered, Is.GreaterThanOrEqualTo(1), "arping's request never reached DPDK");
        Assert.That(arping.ExitCode, Is.Zero, "arping got no reply: " + arping.StandardOutput.ReadToEnd());
    }

    // ------------------------------------------------------------------ helpers

    private delegate void Build(Span<byte> frame);

    private void Send(int length, Build build)
    {
        var b = _port!.Pool(0).Rent();
        Assert.That(b, Is.Not.Null, "pool empty");
        build(b!.Append(length));
        if (_port.Transmit(0, [b]) != 1)
        {
            b.Release();
            Assert.Fail("the device did not take the frame");
        }
    }

    /// <summary>
    /// Receives until <paramref name="until"/> matches a frame or <paramref name="done"/> holds, for at
    /// most <see cref="Timeout"/>, answering ARP requests and ICMP echo requests for <see cref="DpdkIp"/>.
    /// </summary>
    private bool Pump(Func<byte[], bool>? until, Func<bool>? done = null)
    {
        var rx = new PacketBuffer[32];
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < Timeout)
        {
            int n = _port!.Receive(0, rx);
            bool matched = false;
            for (int i = 0; i < n; i++)
            {
                var f = rx[i].Data.ToArray();
                rx[i].Release();
                _seen.Add(f);
                Answer(f);
                matched |= until?.Invoke(f) == true;
            }
            if (matched || done?.Invoke() == true) return true;
            if (n == 0) Thread.Yield();
        }
        return false;
    }

    private void Answer(byte[] f)
    {
        var me = _port!.MacAddress;
        if (TestFrames.TryArp(f, out var op, out var mac, out var sender, out var target) && op == 1 && target == DpdkIp)
        {
            Send(TestFrames.ArpFrameLength, r => TestFrames.Arp(r, 2, me, DpdkIp, mac, sender));
            _arpRequestsAnswered++;
        }
        else if (TestFrames.TryIcmpEcho(f, out var type, out var src, out var dst, out var id, out var seq, out var payload)
            && type == 8 && dst == DpdkIp)
        {
            var data = payload.ToArray();
            var peer = MacAddress.Read(f.AsSpan(6));
            Send(TestFrames.IcmpEchoLength(data.Length), r => TestFrames.IcmpEcho(r, 0, me, peer, DpdkIp, src, id, seq, data));
            _echoRequestsAnswered++;
        }
    }

    private string Describe()
    {
        var sb = new StringBuilder().Append(_seen.Count).Append(" frames");
        foreach (var f in _seen) sb.Append(" [0x").Append(TestFrames.EtherType(f).ToString("x4")).Append(' ').Append(f.Length).Append(" B]");
        return sb.ToString();
    }

    private MacAddress ReadNsMac()
    {
        var text = Run("ip", "-n", Ns, "-o", "link", "show", "dev", NsIf).Output;
        int at = text.IndexOf("link/ether ", StringComparison.Ordinal);
        Assert.That(at, Is.GreaterThanOrEqualTo(0), "no MAC in: " + text);
        return MacAddress.Parse(text.Substring(at + "link/ether ".Length, 17));
    }

    private static Process StartInNamespace(string program, params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["netns", "exec", Ns, program, .. args]) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private static void DeleteNamespaceAndVeth()
    {
        Run(check: false, "ip", "link", "del", HostIf);
        Run(check: false, "ip", "netns", "del", Ns);
    }

    private static (int Code, string Output) Run(params string[] args) => Run(check: true, args);

    private static (int Code, string Output) Run(bool check, params string[] args)
    {
        var psi = new ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args.AsSpan(1)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (check && p.ExitCode != 0) Assert.Fail($"'{string.Join(' ', args)}' failed ({p.ExitCode}): {err.Result}");
        return (p.ExitCode, output);
    }
}

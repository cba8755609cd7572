using Gazelle.Config;
using Gazelle.Wire;

namespace Gazelle.Tests.Configuration;

public class GazelleConfigParserTests
{
    private const string File = "lstack.conf";

    // The lstack.conf example of Gazelle's documentation, with use_ltran=0 (ltran is not supported).
    private const string GazelleSample = """
        dpdk_args=["--socket-mem", "2048,0,0,0", "--huge-dir", "/mnt/hugepages-lstack", "--proc-type", "primary", "--legacy-mem", "--map-perfect"]

        use_ltran=0
        kni_switch=0

        low_power_mode=0

        num_cpus="2,22"
        num_wakeup="3,23"

        host_addr="192.168.1.10"
        mask_addr="255.255.255.0"
        gateway_addr="192.168.1.1"
        devices="aa:bb:cc:dd:ee:ff"

        send_connect_number=4
        read_connect_number=4
        rpc_number=4
        nic_read_num=128
        tcp_conn_count=1500
        mbuf_count_per_conn=170
        """;

    private static GazelleConfig ParseOk(string text)
    {
        var r = GazelleConfigParser.Parse(text, File);
        Assert.That(r.Errors, Is.Empty, r.ErrorText);
        return r.Config!;
    }

    [Test]
    public void GazellesDocumentedSampleLoads()
    {
        var c = ParseOk(GazelleSample);
        Assert.Multiple(() =>
        {
            Assert.That(c.DpdkArgs, Is.EqualTo(new[] { "--socket-mem", "2048,0,0,0", "--huge-dir", "/mnt/hugepages-lstack", "--proc-type", "primary", "--legacy-mem", "--map-perfect" }));
            Assert.That(c.NumCpus, Is.EqualTo(new[] { 2, 22 }));
            Assert.That(c.NumWakeup, Is.EqualTo(new[] { 3, 23 }));
            Assert.That(c.StackCount, Is.EqualTo(2));
            Assert.That(c.HostAddr, Is.EqualTo(new Ipv4Address(192, 168, 1, 10)));
            Assert.That(c.MaskAddr, Is.EqualTo(new Ipv4Address(255, 255, 255, 0)));
            Assert.That(c.GatewayAddr, Is.EqualTo(new Ipv4Address(192, 168, 1, 1)));
            Assert.That(c.Devices, Is.EqualTo(MacAddress.Parse("aa:bb:cc:dd:ee:ff")));
            Assert.That(c.TcpConnCount, Is.EqualTo(1500));
            Assert.That(c.EffectiveMbufPoolSize, Is.EqualTo(1500L * 170));
            Assert.That(c.NicReadNum, Is.EqualTo(128));
            Assert.That(c.Backend, Is.EqualTo(DeviceBackend.Dpdk));
            Assert.That(c.Source, Is.EqualTo(File));
        });
        var s = c.ToStackConfig();
        Assert.That((s.Address, s.Netmask, s.Gateway, s.MaxTcpConnections), Is.EqualTo((c.HostAddr, c.MaskAddr, c.GatewayAddr, 1500)));
    }

    [Test]
    public void LibconfigSyntaxVariantsAreAccepted()
    {
        var c = ParseOk("""
            # shell comment
            // C++ comment
            /* C comment
               over lines */
            backend : "inmemory";        // colon separator, semicolon terminator
            host_addr = "10.0." "0.2",   # adjacent strings concatenate
            mask_addr="255.255.0.0"
            tcp_conn_count = 0x400L;
            mbuf_pool_size = 65536
            udp_enable = FALSE
            listen_shadow = true
            num_cpus = [0, 1, 3]
            dpdk_args = ( "--no-huge", "--no-pci", "--vdev=net_memif0,role=server" )
            log_level = "debug"
            nic_vlan_mode = -1
            memif_socket = "/tmp/a\"b\\c.sock"
            """);
        Assert.Multiple(() =>
        {
            Assert.That(c.Backend, Is.EqualTo(DeviceBackend.InMemory));
            Assert.That(c.HostAddr, Is.EqualTo(new Ipv4Address(10, 0, 0, 2)));
            Assert.That(c.MaskAddr, Is.EqualTo(new Ipv4Address(255, 255, 0, 0)));
            Assert.That(c.Devices, Is.Null, "devices optional outside the dpdk backend");
            Assert.That(c.TcpConnCount, Is.EqualTo(1024));
            Assert.That(c.EffectiveMbufPoolSize, Is.EqualTo(65536));
            Assert.That(c.UdpEnable, Is.False);
            Assert.That(c.ToStackConfig().MaxUdpSockets, Is.Zero);
            Assert.That(c.ListenShadow, Is.True);
            Assert.That(c.NumCpus, Is.EqualTo(new[] { 0, 1, 3 }));
            Assert.That(c.DpdkArgs, Has.Count.EqualTo(3));
            Assert.That(c.LogLevel, Is.EqualTo(LogLevel.Debug));
            Assert.That(c.MemifSocket, Is.EqualTo("/tmp/a\"b\\c.sock"));
        });
    }

    [Test]
    public void TimeWaitIsConfigurableWithinBounds()
    {
        const string head = "backend=\"inmemory\"\nhost_addr=\"10.0.0.2\"\nmask_addr=\"255.0.0.0\"\n";
        Assert.That(ParseOk(head).ToStackConfig().TimeWaitMicros, Is.EqualTo(60_000_000));
        Assert.That(ParseOk(head + "tcp_time_wait_ms = 1000\n").ToStackConfig().TimeWaitMicros, Is.EqualTo(1_000_000));
        var r = GazelleConfigParser.Parse(head + "tcp_time_wait_ms = 10\n", "t.conf");
        Assert.That(r.IsOk, Is.False);
        Assert.That(r.Errors[0].ToString(), Does.Contain("tcp_time_wait_ms"));
    }

    [Test]
    public void MtuIsTheDevicesByDefaultAndConfigurableWithinBounds()
    {
        const string head = "backend=\"inmemory\"\nhost_addr=\"10.0.0.2\"\nmask_addr=\"255.0.0.0\"\n";
        Assert.That(ParseOk(head).Mtu, Is.Zero);
        Assert.That(ParseOk(head + "mtu = 9000\n").Mtu, Is.EqualTo(9000));
        Assert.That(ParseOk(head + "mtu = 65000\n").Mtu, Is.EqualTo(65000));
        foreach (var bad in new[] { "mtu = 40\n", "mtu = 65001\n", "mtu = -1\n" })
        {
            var r = GazelleConfigParser.Parse(head + bad, "t.conf");
            Assert.That(r.IsOk, Is.False, bad);
            Assert.That(r.Errors[0].ToString(), Does.Contain("mtu"), bad);
        }
    }

    [Test]
    public void CpuRangesExpand()
    {
        var c = ParseOk("backend=\"inmemory\"\nhost_addr=\"10.0.0.2\"\nmask_addr=\"255.0.0.0\"\nnum_cpus=\"0-2, 5\"\n");
        Assert.That(c.NumCpus, Is.EqualTo(new[] { 0, 1, 2, 5 }));
    }

    [Test]
    public void EveryDocumentedKeyIsKnownAndEveryKnownKeyIsDocumented()
    {
        var doc = System.IO.File.ReadAllText(Path.Combine(RepoRoot(), "docs", "configuration.md"));
        foreach (var key in GazelleConfigParser.KnownKeys)
            Assert.That(doc, Does.Contain($"`{key}`"), $"docs/configuration.md does not describe {key}");
    }

    [Test]
    public void ExamplesInTheDocumentationLoad()
    {
        var doc = System.IO.File.ReadAllText(Path.Combine(RepoRoot(), "docs", "configuration.md"));
        var examples = doc[doc.IndexOf("## Example", StringComparison.Ordinal)..].Split("```")
            .Where((_, i) => i % 2 == 1).ToList();
        Assert.That(examples, Has.Count.EqualTo(2));
        foreach (var e in examples) ParseOk(e);
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir is not null && !System.IO.File.Exists(Path.Combine(dir.FullName, "Directory.Build.props"))) dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException("repository root");
    }

    private const string Base = "backend=\"inmemory\"\nhost_addr=\"10.1.2.3\"\nmask_addr=\"255.255.255.0\"\n";

    // Each bad file and the exact "file:line: key:" its first error must start with, plus a fragment of the reason.
    private static readonly object[][] BadFiles =
    [
        ["missing closing quote", "backend=\"inmemory\"\nhost_addr=\"10.1.2.3\nmask_addr=\"255.255.255.0\"\n", "lstack.conf:2: host_addr:", "missing closing quote"],
        ["bad IP", Base + "gateway_addr=\"10.1.2.300\"\n", "lstack.conf:4: gateway_addr:", "not an IPv4 address"],
        ["IP with three parts", "backend=\"inmemory\"\n\nhost_addr=\"10.1.2\"\nmask_addr=\"255.255.255.0\"\n", "lstack.conf:3: host_addr:", "not an IPv4 address"],
        ["unknown key", Base + "\n# comment\nhots_addr=\"10.1.2.4\"\n", "lstack.conf:6: hots_addr:", "unknown key"],
        ["duplicate key", Base + "tcp_conn_count=10\ntcp_conn_count=20\n", "lstack.conf:5: tcp_conn_count:", "duplicate key (first set on line 4)"],
        ["wrong type: string for integer", Base + "tcp_conn_count=\"1500\"\n", "lstack.conf:4: tcp_conn_count:", "expected an integer, found a string"],
        ["wrong type: string for list", Base + "dpdk_args=\"--no-huge\"\n", "lstack.conf:4: dpdk_args:", "expected a list of strings, found a string"],
        ["wrong type: integer for address", Base + "gateway_addr=10\n", "lstack.conf:4: gateway_addr:", "expected an IPv4 address string, found an integer"],
        ["wrong type: list element", Base + "dpdk_args=[\"-l\", 2]\n", "lstack.conf:4: dpdk_args:", "list elements must all have the same type"],
        ["wrong type: number list of args", Base + "dpdk_args=[1, 2]\n", "lstack.conf:4: dpdk_args:", "expected a list of strings, found an integer at element 0"],
        ["bare word", Base + "log_level=debug\n", "lstack.conf:4: log_level:", "strings need double quotes"],
        ["bad enum", Base + "log_level=\"verbose\"\n", "lstack.conf:4: log_level:", "not one of"],
        ["bad backend", "backend=\"xdp\"\n", "lstack.conf:1: backend:", "\"xdp\" is not one of"],
        ["out of range", Base + "nic_vlan_mode=4096\n", "lstack.conf:4: nic_vlan_mode:", "out of range [-1, 4095]"],
        ["not a power of two", Base + "nic_rxqueue_size=1000\n", "lstack.conf:4: nic_rxqueue_size:", "not a power of two"],
        ["boolean out of 0/1", Base + "udp_enable=2\n", "lstack.conf:4: udp_enable:", "not a boolean"],
        ["ltran refused", Base + "use_ltran=1\n", "lstack.conf:4: use_ltran:", "ltran is not supported"],
        ["bad MAC", Base + "devices=\"aa:bb:cc:dd:ee\"\n", "lstack.conf:4: devices:", "not a MAC address"],
        ["multicast MAC", Base + "devices=\"01:00:5e:00:00:01\"\n", "lstack.conf:4: devices:", "group address"],
        ["missing value", Base + "rpc_number=\n", "lstack.conf:4: rpc_number:", "missing value"],
        ["missing equals", Base + "rpc_number 4\n", "lstack.conf:4: rpc_number:", "expected '='"],
        ["unterminated list", Base + "dpdk_args=[\"a\", \"b\"\n", "lstack.conf:5: dpdk_args:", "list not closed"],
        ["bad hex", Base + "tcp_conn_count=0xZZ\n", "lstack.conf:4: tcp_conn_count:", "bad hexadecimal integer"],
        ["integer overflow", Base + "mbuf_pool_size=99999999999999999999\n", "lstack.conf:4: mbuf_pool_size:", "out of range"],
        ["float for integer", Base + "rpc_number=4.5\n", "lstack.conf:4: rpc_number:", "expected an integer, found a number"],
        ["group refused", Base + "dpdk = { a = 1 }\n", "lstack.conf:4: dpdk:", "groups"],
        ["duplicate CPU", Base + "num_cpus=\"1,2,1\"\n", "lstack.conf:4: num_cpus:", "listed twice"],
        ["bad CPU", Base + "num_cpus=\"1,x\"\n", "lstack.conf:4: num_cpus:", "\"x\" is not a CPU number"],
        ["unterminated comment", Base + "/* no end\nrpc_number=4\n", "lstack.conf:4:", "unterminated /* comment"],
        ["required key", "backend=\"inmemory\"\nmask_addr=\"255.255.255.0\"\n", "lstack.conf: host_addr:", "required key missing"],
        ["devices needed for dpdk", "host_addr=\"10.1.2.3\"\nmask_addr=\"255.255.255.0\"\n", "lstack.conf: devices:", "required with backend \"dpdk\""],
        ["non-contiguous mask", "backend=\"inmemory\"\nhost_addr=\"10.1.2.3\"\nmask_addr=\"255.0.255.0\"\n", "lstack.conf:3: mask_addr:", "not a contiguous netmask"],
        ["gateway outside subnet", Base + "gateway_addr=\"10.1.3.1\"\n", "lstack.conf:4: gateway_addr:", "not in 10.1.2.3's subnet"],
        ["host is the subnet's broadcast", "backend=\"inmemory\"\nhost_addr=\"10.1.2.255\"\nmask_addr=\"255.255.255.0\"\n", "lstack.conf:2: host_addr:", "broadcast address of its subnet"],
        ["wake-up count mismatch", Base + "num_cpus=\"1,2\"\nnum_wakeup=\"3\"\n", "lstack.conf:5: num_wakeup:", "one wake-up thread per stack"],
    ];

    [TestCaseSource(nameof(BadFiles))]
    public void BadFileIsRefusedNamingFileLineAndKey(string name, string text, string where, string reason)
    {
        var r = GazelleConfigParser.Parse(text, File);
        Assert.That(r.IsOk, Is.False, name);
        Assert.That(r.Config, Is.Null);
        Assert.That(r.Errors, Is.Not.Empty);
        string first = r.Errors[0].ToString();
        Assert.That(first, Does.StartWith(where + " "), name);
        Assert.That(first, Does.Contain(reason), name);
    }

    [Test]
    public void ErrorCarriesStructuredFileLineAndKey()
    {
        var r = GazelleConfigParser.Parse(Base + "\n\nrpc_number=\"4\"\n", "/etc/gazelle/lstack.conf");
        var e = r.Errors.Single();
        Assert.That((e.File, e.Line, e.Key), Is.EqualTo(("/etc/gazelle/lstack.conf", 6, "rpc_number")));
        Assert.That(e.ToString(), Is.EqualTo("/etc/gazelle/lstack.conf:6: rpc_number: expected an integer, found a string"));
    }

    [Test]
    public void EveryErrorIsReportedAndParsingResumesOnTheNextLine()
    {
        var r = GazelleConfigParser.Parse("""
            backend="inmemory"
            host_addr="10.1.2.3
            mask_addr="255.255.255.0"
            bogus=1
            rpc_number=-3
            """, File);
        Assert.That(r.Errors.Select(e => (e.Line, e.Key)), Is.EqualTo(new (int, string?)[]
        {
            (2, "host_addr"), (4, "bogus"), (5, "rpc_number"),
        }));
    }

    [Test]
    public void GarbageNeverThrows()
    {
        var rng = new Random(5);
        const string alphabet = "ab_=\"[](){};:,#/*\\\n 0x19-.truefalse";
        for (int i = 0; i < 3000; i++)
        {
            var chars = new char[rng.Next(0, 80)];
            for (int j = 0; j < chars.Length; j++) chars[j] = alphabet[rng.Next(alphabet.Length)];
            var r = GazelleConfigParser.Parse(new string(chars), File);
            Assert.That(r.IsOk || r.Errors.Count > 0, Is.True);
        }
    }
}

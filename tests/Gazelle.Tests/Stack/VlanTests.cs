using Gazelle.Config;
using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>IEEE 802.1Q: a stack configured with a VLAN id tags what it sends and accepts only frames tagged with
/// that id; golden bytes for what it sends.</summary>
public class VlanTests
{
    private TestNic _nic = null!;
    private NetStack _s = null!;
    private Instant _now;

    private static byte[] Hex(string s) => Convert.FromHexString(s.Replace(" ", ""));

    /// <summary>Inserts an 802.1Q tag (TPID 0x8100, <paramref name="tci"/>) after the MAC addresses.</summary>
    private static byte[] Tagged(byte[] frame, ushort tci)
    {
        var t = new byte[frame.Length + 4];
        frame.AsSpan(0, 12).CopyTo(t);
        t[12] = 0x81; t[13] = 0x00; t[14] = (byte)(tci >> 8); t[15] = (byte)tci;
        frame.AsSpan(12).CopyTo(t.AsSpan(16));
        return t;
    }

    [SetUp]
    public void SetUp()
    {
        _nic = new TestNic(MacA);
        _s = new NetStack(ConfigFor(IpA) with { VlanId = 100 }, _nic);
        _now = Instant.FromMilliseconds(5);
        _s.Poll(_now);
        // The gratuitous ARP goes out tagged with VLAN 100 (TCI 0x0064: priority 0, VID 100).
        Assert.That(Convert.ToHexString(_nic.TakeSent()!), Is.EqualTo(Convert.ToHexString(Hex(
            "ffffffffffff 02000000000a 8100 0064 0806" +
            "0001 0800 06 04 0001 02000000000a 0a000001 000000000000 0a000001"))));
    }

    [TearDown]
    public void TearDown()
    {
        _s.Shutdown();
        _nic.DrainAll();
        Assert.That(_nic.Pool.InUse, Is.Zero, "pool leaked");
        Assert.That(_s.Counters.SumOfFrameOutcomes(), Is.EqualTo(_s.Counters.Link.FramesReceived), _s.Counters.ToString());
        _nic.Dispose();
    }

    [Test]
    public void ArpRequestTaggedWithOurVlanIsAnsweredTagged()
    {
        // Tagged with priority 5 (TCI 0xA064): the priority does not matter, the id does.
        _nic.Inject(Tagged(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA, MacAddress.Broadcast), 0xA064));
        _s.Poll(_now);
        Assert.That(Convert.ToHexString(_nic.TakeSent()!), Is.EqualTo(Convert.ToHexString(Hex(
            "020000000099 02000000000a 8100 0064 0806" +
            "0001 0800 06 04 0002 02000000000a 0a000001 020000000099 0a000063"))));
        Assert.That(_s.Counters.Arp.RequestsAnswered, Is.EqualTo(1));
    }

    [Test]
    public void UntaggedAndOtherVlanFramesAreCountedDrops()
    {
        _nic.Inject(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA, MacAddress.Broadcast));
        _nic.Inject(Tagged(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA, MacAddress.Broadcast), 101));
        _nic.Inject(Tagged(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, EchoRequest(1, 1, "x"u8)), 0x0FFF & 99));
        _nic.Inject(Tagged(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, EchoRequest(1, 1, "x"u8)), 0));
        _s.Poll(_now);
        Assert.That(_nic.TakeSent(), Is.Null, "nothing answered");
        Assert.That((_s.Counters.Link.RxUntagged, _s.Counters.Link.RxOtherVlan), Is.EqualTo((1L, 3L)));
        Assert.That(_s.Counters.Arp.RequestsAnswered + _s.Counters.Icmp.EchoRequestsAnswered, Is.Zero);
    }

    [Test]
    public void PingAndUdpTravelTagged()
    {
        _nic.Inject(Tagged(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, EchoRequest(0x1234, 7, "vlan ping"u8)), 100));
        _s.Poll(_now);
        // No ARP entry for the host yet: the reply waits for resolution, whose request goes out tagged.
        Assert.That(Convert.ToHexString(_nic.TakeSent()!), Is.EqualTo(Convert.ToHexString(Hex(
            "ffffffffffff 02000000000a 8100 0064 0806" +
            "0001 0800 06 04 0001 02000000000a 0a000001 000000000000 0a000063"))));
        _nic.Inject(Tagged(Arp(ArpOperation.Reply, MacHost, IpHost, MacA, IpA, MacA), 100));
        _s.Poll(_now);
        var reply = _nic.TakeSent()!;
        Assert.That(Convert.ToHexString(reply.AsSpan(0, 18)), Is.EqualTo("020000000099" + "02000000000A" + "8100" + "0064" + "0800"));
        Assert.That(EthernetFrame.TryCreate(reply, out var eth) && eth.HasVlanTag && eth.VlanId == 100, Is.True);
        Assert.That(Ipv4Packet.TryCreate(eth.Payload, out var ip) && ip.VerifyChecksum() && ip.Destination == IpHost, Is.True);
        Assert.That(Icmpv4Packet.TryCreate(ip.Payload, out var icmp) && icmp.Type == (byte)Icmpv4Type.EchoReply && icmp.Identifier == 0x1234, Is.True);

        Assert.That(_s.Open(SocketKind.Udp, out var u), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Bind(u, new Ipv4Endpoint(IpA, 5000)), Is.EqualTo(Errno.Ok));
        Assert.That(_s.SendTo(u, "hi"u8, new Ipv4Endpoint(IpHost, 9), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        var d = _nic.TakeSent()!;
        Assert.That(d.Length, Is.EqualTo(18 + 20 + 8 + 2));
        Assert.That(Convert.ToHexString(d.AsSpan(0, 18)), Is.EqualTo("020000000099" + "02000000000A" + "8100" + "0064" + "0800"));
        Assert.That(Convert.ToHexString(d.AsSpan(18 + 20)), Is.EqualTo("1388" + "0009" + "000A" + Convert.ToHexString(d.AsSpan(18 + 26, 2)) + "6869"));
        _s.Close(u);
    }

    [Test]
    public void WithoutAVlanTaggedFramesAreCountedDrops()
    {
        using var nic = new TestNic(MacB);
        var s = new NetStack(ConfigFor(IpB), nic);
        s.Poll(_now);
        Assert.That(Convert.ToHexString(nic.TakeSent()!.AsSpan(12, 2)), Is.EqualTo("0806"), "untagged announcement");
        nic.Inject(Tagged(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpB, MacAddress.Broadcast), 100));
        s.Poll(_now);
        Assert.That(nic.TakeSent(), Is.Null);
        Assert.That(s.Counters.Link.RxVlanTagged, Is.EqualTo(1));
        s.Shutdown();
        nic.DrainAll();
    }

    [Test]
    public void InvalidVlanIdIsRefused()
    {
        using var nic = new TestNic(MacB);
        Assert.Throws<ArgumentOutOfRangeException>(() => new NetStack(ConfigFor(IpB) with { VlanId = 4095 }, nic));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NetStack(ConfigFor(IpB) with { VlanId = 0 }, nic));
    }

    [TestCase("100", 100)]
    [TestCase("4094", 4094)]
    [TestCase("-1", -1)]
    [TestCase("0", -1)]
    [TestCase("4095", -1)]
    public void NicVlanModeSetsTheStacksVlan(string value, int expected)
    {
        var r = GazelleConfigParser.Parse($"host_addr=\"10.0.0.2\"\nmask_addr=\"255.255.255.0\"\nbackend=\"inmemory\"\nnic_vlan_mode={value}\n", "lstack.conf");
        Assert.That(r.Errors, Is.Empty);
        Assert.That(r.Config!.ToStackConfig().VlanId, Is.EqualTo(expected));
    }

    /// <summary>Two stacks on VLAN 7 talk TCP through a user-vbridge (every frame on the wire tagged 7); a third,
    /// untagged stack on the same bridge hears their broadcasts and drops them, counted.</summary>
    [Test]
    public void TwoStacksOnAVlanTalkTcpAndAnUntaggedOneIsLeftOut()
    {
        using var va = new UserVeth(new UserVethOptions { MacAddress = MacA });
        using var vb = new UserVeth(new UserVethOptions { MacAddress = MacB });
        using var vc = new UserVeth(new UserVethOptions { MacAddress = MacHost });
        var bridge = new UserVbridge();
        bridge.AddPort(va); bridge.AddPort(vb); bridge.AddPort(vc);
        var a = new NetStack(ConfigFor(IpA) with { VlanId = 7 }, va);
        var b = new NetStack(ConfigFor(IpB) with { VlanId = 7 }, vb);
        var c = new NetStack(ConfigFor(IpHost), vc);
        var now = _now;
        long tagged = 0, frames = 0;
        var burst = new Gazelle.Buffers.PacketBuffer[32];
        void Step()
        {
            a.Poll(now); b.Poll(now); c.Poll(now);
            // Look at A's and B's frames on the wire before the bridge switches them.
            foreach (var v in new[] { va, vb })
            {
                int n = v.DrainTransmitted(burst);
                for (int i = 0; i < n; i++)
                {
                    frames++;
                    var f = burst[i].Data;
                    if (f[12] == 0x81 && f[13] == 0x00 && f[14] == 0x00 && f[15] == 0x07) tagged++;
                    (v == va ? vb : va).DeliverFromWire(f);
                    vc.DeliverFromWire(f);
                    burst[i].Release();
                }
            }
            bridge.Pump(now);
            now += TimeSpanMicros.FromMilliseconds(1);
        }
        Assert.That(b.Open(SocketKind.Tcp, out var l), Is.EqualTo(Errno.Ok));
        Assert.That(b.Bind(l, new Ipv4Endpoint(Ipv4Address.Any, 80)), Is.EqualTo(Errno.Ok));
        Assert.That(b.Listen(l, 4), Is.EqualTo(Errno.Ok));
        Assert.That(a.Open(SocketKind.Tcp, out var client), Is.EqualTo(Errno.Ok));
        Assert.That(a.Connect(client, new Ipv4Endpoint(IpB, 80)), Is.EqualTo(Errno.EINPROGRESS));
        SocketHandle server = SocketHandle.Invalid;
        for (int i = 0; i < 100 && !server.IsValid; i++)
        {
            Step();
            if (b.Accept(l, out var h, out _) == Errno.Ok) server = h;
        }
        Assert.That(server.IsValid, Is.True, "connected over VLAN 7");
        var data = new byte[100_000];
        new Random(7).NextBytes(data);
        var got = new byte[data.Length];
        int sent = 0, received = 0;
        for (int i = 0; i < 2000 && received < data.Length; i++)
        {
            if (sent < data.Length && a.Send(client, data.AsSpan(sent), MessageFlags.None, out int k) == Errno.Ok) sent += k;
            Step();
            if (b.Receive(server, got.AsSpan(received), MessageFlags.None, out int r) == Errno.Ok) received += r;
        }
        Assert.That(got.AsSpan(0, received).SequenceEqual(data), Is.True);
        Assert.That(received, Is.EqualTo(data.Length));
        Assert.That(tagged, Is.EqualTo(frames).And.GreaterThan(50), "every frame A and B sent is tagged with VLAN 7");
        Assert.That(c.Counters.Link.RxVlanTagged, Is.GreaterThan(0), "the untagged stack dropped the VLAN's frames");
        Assert.That(c.Counters.Arp.RequestsAnswered + c.Counters.Arp.Learned + c.Counters.Arp.IgnoredNotForUs, Is.Zero);
        a.Close(client); b.Close(server); b.Close(l);
        for (int i = 0; i < 200; i++) { Step(); now += TimeSpanMicros.FromSeconds(1); }
        Assert.That(a.Tcp.LiveConnections + b.Tcp.LiveConnections, Is.Zero);
        a.Shutdown(); b.Shutdown(); c.Shutdown();
        Step();
        c.Poll(now);
        Assert.That(a.Counters.SumOfFrameOutcomes(), Is.EqualTo(a.Counters.Link.FramesReceived));
        Assert.That(c.Counters.SumOfFrameOutcomes(), Is.EqualTo(c.Counters.Link.FramesReceived));
    }
}

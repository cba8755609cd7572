using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>A stack facing a scripted host: the test writes frames by hand and checks what comes back.</summary>
public class HostFacingTests
{
    private TestNic _nic = null!;
    private NetStack _s = null!;
    private Instant _now;

    [SetUp]
    public void SetUp()
    {
        _nic = new TestNic(MacA);
        _s = new NetStack(ConfigFor(IpA, gateway: Ipv4Address.Parse("10.0.0.254")), _nic);
        _now = Instant.FromMilliseconds(5);
        _s.Poll(_now);
        var g = _nic.TakeSent()!;
        // Gratuitous ARP: a broadcast request for our own address.
        Assert.That(EthernetFrame.TryCreate(g, out var eth) && eth.Destination.IsBroadcast && eth.EtherType == EtherType.Arp, Is.True);
        Assert.That(ArpPacket.TryCreate(eth.Payload, out var p), Is.True);
        Assert.That(ArpRepr.TryParse(p, out var arp), Is.True);
        Assert.That((arp.Operation, arp.SenderIp, arp.TargetIp, arp.SenderMac), Is.EqualTo((ArpOperation.Request, IpA, IpA, MacA)));
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

    private void TeachHost()
    {
        _nic.Inject(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA, MacAddress.Broadcast));
        _s.Poll(_now);
        var reply = _nic.TakeSent()!;
        Assert.That(EthernetFrame.TryCreate(reply, out var eth) && eth.Destination == MacHost, Is.True);
        Assert.That(ArpPacket.TryCreate(eth.Payload, out var p), Is.True);
        Assert.That(ArpRepr.TryParse(p, out var arp), Is.True);
        Assert.That(arp, Is.EqualTo(new ArpRepr(ArpOperation.Reply, MacA, IpA, MacHost, IpHost)));
        Assert.That(_s.Counters.Arp.RequestsAnswered, Is.EqualTo(1));
    }

    [Test]
    public void PingIsAnswered()
    {
        TeachHost();
        var data = new byte[57];
        new Random(3).NextBytes(data);
        _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, EchoRequest(0x1234, 7, data)));
        _s.Poll(_now);
        var frame = _nic.TakeSent();
        Assert.That(frame, Is.Not.Null);
        Assert.That(EthernetFrame.TryCreate(frame, out var eth), Is.True);
        Assert.That(eth.Destination, Is.EqualTo(MacHost));
        Assert.That(Ipv4Packet.TryCreate(eth.Payload, out var ip) && ip.VerifyChecksum(), Is.True);
        Assert.That((ip.Source, ip.Destination, ip.Protocol), Is.EqualTo((IpA, IpHost, IpProtocol.Icmp)));
        Assert.That(Icmpv4Packet.TryCreate(ip.Payload, out var icmp) && icmp.VerifyChecksum(), Is.True);
        Assert.That(Icmpv4Repr.TryParse(icmp, out var r), Is.True);
        Assert.That(r, Is.EqualTo(Icmpv4Repr.EchoReply(0x1234, 7)));
        Assert.That(icmp.Payload.ToArray(), Is.EqualTo(data));
        Assert.That(_s.Counters.Icmp.EchoRequestsAnswered, Is.EqualTo(1));
    }

    [Test]
    public void BroadcastPingIsIgnored()
    {
        _nic.Inject(Ipv4Frame(MacHost, MacAddress.Broadcast, IpHost, Ipv4Address.Parse("10.0.0.255"), IpProtocol.Icmp, EchoRequest(1, 1, default)));
        _s.Poll(_now);
        Assert.That(_nic.TakeSent(), Is.Null);
        Assert.That(_s.Counters.Icmp.BroadcastEchoIgnored, Is.EqualTo(1));
    }

    [Test]
    public void PortUnreachableIsRateLimited()
    {
        TeachHost();
        for (int i = 0; i < 80; i++)
            _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1000, 9, "x"u8)));
        for (int i = 0; i < 5; i++) _s.Poll(_now);
        Assert.That(_s.Counters.Udp.NoPort, Is.EqualTo(80));
        Assert.That(_s.Counters.Icmp.ErrorsSent, Is.EqualTo(50), "burst");
        Assert.That(_s.Counters.Icmp.ErrorsRateLimited, Is.EqualTo(30));
        var f = _nic.TakeSent()!;
        Assert.That(EthernetFrame.TryCreate(f, out var eth), Is.True);
        Assert.That(Ipv4Packet.TryCreate(eth.Payload, out var ip), Is.True);
        Assert.That(Icmpv4Packet.TryCreate(ip.Payload, out var icmp) && icmp.VerifyChecksum(), Is.True);
        Assert.That((icmp.Type, icmp.Code), Is.EqualTo(((byte)3, (byte)3)));
        Assert.That(Ipv4Packet.TryCreateQuoted(icmp.Payload, out var q) && q.Destination == IpA && ReadU16(q.Payload, 2) == 9, Is.True);
        // 10 ms later, 10 more tokens (1000/s).
        _nic.DrainAll();
        _now += TimeSpanMicros.FromMilliseconds(10);
        for (int i = 0; i < 20; i++)
            _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1000, 9, "x"u8)));
        _s.Poll(_now);
        Assert.That(_s.Counters.Icmp.ErrorsSent, Is.EqualTo(60));
    }

    [Test]
    public void OffSubnetTrafficGoesThroughTheGateway()
    {
        _s.Open(SocketKind.Udp, out var h);
        Assert.That(_s.SendTo(h, "out"u8, new Ipv4Endpoint(Ipv4Address.Parse("8.8.8.8"), 53), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        var req = _nic.TakeSent()!;
        Assert.That(EthernetFrame.TryCreate(req, out var eth), Is.True);
        Assert.That(ArpPacket.TryCreate(eth.Payload, out var p), Is.True);
        Assert.That(p.TargetIp, Is.EqualTo(Ipv4Address.Parse("10.0.0.254")));
        var gwMac = MacAddress.Parse("02:00:00:00:00:fe");
        _nic.Inject(Arp(ArpOperation.Reply, gwMac, Ipv4Address.Parse("10.0.0.254"), MacA, IpA, MacA));
        _s.Poll(_now);
        var data = _nic.TakeSent()!;
        Assert.That(EthernetFrame.TryCreate(data, out eth) && eth.Destination == gwMac, Is.True);
        Assert.That(Ipv4Packet.TryCreate(eth.Payload, out var ip) && ip.Destination == Ipv4Address.Parse("8.8.8.8"), Is.True);
        Assert.That(UdpDatagram.TryCreate(ip.Payload, out var u) && u.VerifyChecksum(ip.Source, ip.Destination), Is.True);
    }

    [Test]
    public void FragmentationNeededLowersPathMtu()
    {
        TeachHost();
        _s.Open(SocketKind.Udp, out var h);
        var to = new Ipv4Endpoint(IpHost, 4000);
        var payload = new byte[1400];
        _s.SendTo(h, payload, to, MessageFlags.None, out _);
        var sent = _nic.TakeSent()!;
        Assert.That(_s.PathMtu(IpHost), Is.EqualTo(1500));
        // Host says: fragmentation needed, next-hop MTU 1000; quotes our header + 8 bytes.
        var quoted = sent.AsSpan(14, 28).ToArray();
        var msg = new byte[8 + quoted.Length];
        quoted.CopyTo(msg, 8);
        Icmpv4Repr.Unreachable(Icmpv4UnreachableCode.FragmentationNeeded, 1000).Emit(msg);
        _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, msg));
        _s.Poll(_now);
        Assert.That(_s.PathMtu(IpHost), Is.EqualTo(1000));
        Assert.That(_s.Counters.Icmp.PathMtuUpdates, Is.EqualTo(1));
        _s.SendTo(h, payload, to, MessageFlags.None, out _);
        Assert.That(_s.Counters.Ip.FragmentsCreated, Is.EqualTo(2));
        var f1 = _nic.TakeSent()!;
        Assert.That(f1.Length - 14, Is.LessThanOrEqualTo(1000));
        // A report that does not lower the estimate is ignored (RFC 1191 §6.1).
        Icmpv4Repr.Unreachable(Icmpv4UnreachableCode.FragmentationNeeded, 1200).Emit(msg);
        _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, msg));
        _s.Poll(_now);
        Assert.That(_s.PathMtu(IpHost), Is.EqualTo(1000));
        // It ages out.
        _s.Poll(_now + TimeSpanMicros.FromSeconds(601));
        Assert.That(_s.PathMtu(IpHost), Is.EqualTo(1500));
    }

    [Test]
    public void InvalidPacketsAreCountedByReason()
    {
        TeachHost();
        var good = Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1, 2, "abc"u8));
        var badSum = (byte[])good.Clone(); badSum[14 + 8] ^= 1;
        var badUdp = (byte[])good.Clone(); badUdp[^1] ^= 1;
        _nic.Inject(good.AsSpan(0, 10));
        _nic.Inject(badSum);
        _nic.Inject(badUdp);
        _nic.Inject(Ipv4Frame(MacHost, MacA, Ipv4Address.Broadcast, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1, 2, "abc"u8)));
        _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpB, IpProtocol.Udp, Udp(IpHost, IpB, 1, 2, "abc"u8)));
        _nic.Inject(Ipv4Frame(MacHost, MacB, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1, 2, "abc"u8)));
        _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, 99, "zzzz"u8));
        _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Tcp, new byte[20]));
        _s.Poll(_now);
        var c = _s.Counters;
        Assert.That((c.Link.RxTooShort, c.Ip.BadChecksum, c.Udp.BadChecksum, c.Ip.BadSource, c.Ip.NotForUs, c.Link.RxNotForUs, c.Ip.UnknownProtocol),
            Is.EqualTo((1L, 1L, 1L, 1L, 1L, 1L, 1L)));
        Assert.That(c.Tcp.Malformed + c.Tcp.BadChecksum, Is.EqualTo(1));
    }

    [Test]
    public void TcpOutputBuildsChecksummedSegmentsFromSplitPayloads()
    {
        TeachHost();
        var tcpOut = (Gazelle.Transport.Tcp.ITcpOutput)_s;
        var repr = new TcpRepr { SrcPort = 40000, DstPort = 80, Seq = new SeqNum(100), Ack = new SeqNum(7), Flags = TcpFlags.Ack | TcpFlags.Psh, Window = 512, Options = TcpOptions.None };
        repr.Options.HasTimestamp = true;
        repr.Options.TsVal = 5;
        repr.Options.TsEcr = 6;
        var p1 = "odd"u8.ToArray();       // odd length: the second part starts mid-word
        var p2 = "-and-the-rest"u8.ToArray();
        Assert.That(tcpOut.Send(IpA, IpHost, repr, p1, p2, tos: 0x10), Is.True);
        Assert.That(_nic.Sent, Is.Empty, "batched until the stack flushes");
        _s.Poll(_now);
        var f = _nic.TakeSent()!;
        Assert.That(EthernetFrame.TryCreate(f, out var eth) && eth.Destination == MacHost, Is.True);
        Assert.That(Ipv4Packet.TryCreate(eth.Payload, out var ip), Is.True);
        Assert.That((ip.DontFragment, ip.Tos, ip.Protocol, ip.VerifyChecksum()), Is.EqualTo((true, (byte)0x10, IpProtocol.Tcp, true)));
        Assert.That(TcpHeader.TryCreate(ip.Payload, out var h), Is.True);
        Assert.That(h.VerifyChecksum(IpA, IpHost), Is.True);
        Assert.That(h.TryParse(out var back), Is.True);
        Assert.That((back.Seq, back.Ack, back.Options.TsVal, back.Options.TsEcr), Is.EqualTo((repr.Seq, repr.Ack, 5u, 6u)));
        Assert.That(System.Text.Encoding.ASCII.GetString(h.Payload), Is.EqualTo("odd-and-the-rest"));
        Assert.That(tcpOut.PathMtu(IpHost), Is.EqualTo(1500));
        // DF: a segment bigger than the path MTU is refused, not fragmented.
        Assert.That(tcpOut.Send(IpA, IpHost, repr, new byte[1500], default, 0), Is.False);
        Assert.That(_s.Counters.Ip.TxTooBig, Is.EqualTo(1));
    }

    [Test]
    public void UdpPeekTruncateShutdownAndReceiveBuffer()
    {
        TeachHost();
        _s.Open(SocketKind.Udp, out var h);
        _s.Bind(h, new Ipv4Endpoint(IpA, 5000));
        Assert.That(_s.SetOption(h, 1, 8, BitConverter.GetBytes(4096)), Is.EqualTo(Errno.Ok));
        var len = new byte[4];
        Assert.That(_s.GetOption(h, 1, 8, len, out int l), Is.EqualTo(Errno.Ok));
        Assert.That((BitConverter.ToInt32(len), l), Is.EqualTo((8192, 4)), "reported doubled, as Linux; the queue holds half");
        for (int i = 0; i < 3; i++)
            _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1000, 5000, new byte[1500])));
        _s.Poll(_now);
        Assert.That(_s.Counters.Udp.Delivered, Is.EqualTo(2), "4 KiB holds two 1500-byte datagrams");
        Assert.That(_s.Counters.Udp.ReceiveQueueFull, Is.EqualTo(1));
        Assert.That(_s.Available(h, out int avail) == Errno.Ok && avail == 1500, Is.True);
        var small = new byte[10];
        Assert.That(_s.ReceiveFrom(h, small, MessageFlags.Peek, out int n, out var from), Is.EqualTo(Errno.Ok));
        Assert.That((n, from), Is.EqualTo((10, new Ipv4Endpoint(IpHost, 1000))));
        Assert.That(_s.ReceiveFrom(h, small, MessageFlags.None, out n, out _), Is.EqualTo(Errno.Ok));
        Assert.That(_s.ReceiveFrom(h, small, MessageFlags.None, out n, out _), Is.EqualTo(Errno.Ok), "peek did not consume; truncation dropped the rest");
        Assert.That(_s.ReceiveFrom(h, small, MessageFlags.None, out _, out _), Is.EqualTo(Errno.EAGAIN));
        Assert.That(_s.Shutdown(h, ShutdownHow.Both), Is.EqualTo(Errno.ENOTCONN));
        Assert.That(_s.SendTo(h, "x"u8, new Ipv4Endpoint(Ipv4Address.Parse("10.0.0.255"), 1), MessageFlags.None, out _), Is.EqualTo(Errno.EACCES), "broadcast needs SO_BROADCAST");
        Assert.That(_s.Send(h, "x"u8, MessageFlags.None, out _), Is.EqualTo(Errno.EDESTADDRREQ));
        Assert.That(_s.SendTo(h, new byte[65508], new Ipv4Endpoint(IpHost, 1), MessageFlags.None, out _), Is.EqualTo(Errno.EMSGSIZE));
        Assert.That(_s.Listen(h, 1), Is.EqualTo(Errno.EOPNOTSUPP));
        Assert.That(_s.Bind(new SocketHandle(12345), default), Is.EqualTo(Errno.EBADF), "no such TCP socket");
        Assert.That(_s.Bind(SocketHandle.Invalid, default), Is.EqualTo(Errno.EBADF));
        _s.Close(h);
    }
}

using Gazelle.Devices;
using Gazelle.Devices.Impairment;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>
/// <see cref="NicOffloads.RxChecksumUnnecessary"/>: on a device whose frames cannot be corrupted on the way
/// (net_memif), the stack takes IPv4 packets, TCP segments and UDP datagrams without verifying their checksum; everywhere
/// else a bad checksum is a counted drop. An impairing decorator never passes the capability on.
/// </summary>
public class RxChecksumUnnecessaryTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void ASegmentWithABadChecksumIsVerifiedUnlessTheDeviceSaysItCannotBeCorrupt(bool unnecessary)
    {
        using var nic = new TestNic(MacA) { Offloads = unnecessary ? NicOffloads.RxChecksumUnnecessary : NicOffloads.None };
        var s = new NetStack(ConfigFor(IpA), nic);
        var now = Instant.FromMilliseconds(1);
        s.Poll(now);
        nic.DrainAll();
        Assert.That(s.Open(SocketKind.Tcp, out var listener), Is.EqualTo(Errno.Ok));
        Assert.That(s.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, 80)), Is.EqualTo(Errno.Ok));
        Assert.That(s.Listen(listener, 4), Is.EqualTo(Errno.Ok));
        // A host's ARP request teaches the stack its MAC, so an answer needs no ARP round.
        nic.Inject(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA, MacAddress.Broadcast));
        s.Poll(now);
        nic.DrainAll();

        var syn = new TcpRepr { SrcPort = 40000, DstPort = 80, Seq = new SeqNum(1000), Flags = TcpFlags.Syn, Window = 65535, Options = TcpOptions.None };
        var segment = new byte[TcpHeader.EmittedLength(syn)];
        TcpHeader.Emit(syn, segment);
        segment[TcpHeader.ChecksumOffset] = 0xde; // not the segment's checksum
        segment[TcpHeader.ChecksumOffset + 1] = 0xad;
        nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Tcp, segment));
        s.Poll(now);

        Assert.That(s.Counters.Tcp.BadChecksum, Is.EqualTo(unnecessary ? 0 : 1));
        Assert.That(s.Tcp.Counters.SegmentsIn, Is.EqualTo(unnecessary ? 1 : 0));
        Assert.That(nic.TakeSent(), unnecessary ? Is.Not.Null : Is.Null, "a SYN-ACK answers only the segment taken");
        s.Close(listener);
        s.Shutdown();
        nic.DrainAll();
    }

    [TestCase(false)]
    [TestCase(true)]
    public void ADatagramWithABadChecksumIsVerifiedUnlessTheDeviceSaysItCannotBeCorrupt(bool unnecessary)
    {
        using var nic = new TestNic(MacA) { Offloads = unnecessary ? NicOffloads.RxChecksumUnnecessary : NicOffloads.None };
        var s = new NetStack(ConfigFor(IpA), nic);
        var now = Instant.FromMilliseconds(1);
        s.Poll(now);
        nic.DrainAll();
        Assert.That(s.Open(SocketKind.Udp, out var socket), Is.EqualTo(Errno.Ok));
        Assert.That(s.Bind(socket, new Ipv4Endpoint(Ipv4Address.Any, 5353)), Is.EqualTo(Errno.Ok));
        byte[] datagram = [0x9c, 0x40, 0x14, 0xe9, 0x00, 0x0c, 0xde, 0xad, 1, 2, 3, 4]; // 40000 -> 5353, a wrong checksum
        nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, datagram));
        s.Poll(now);

        Assert.That(s.Counters.Udp.BadChecksum, Is.EqualTo(unnecessary ? 0 : 1));
        var buffer = new byte[16];
        Assert.That(s.ReceiveFrom(socket, buffer, MessageFlags.None, out int n, out var from), Is.EqualTo(unnecessary ? Errno.Ok : Errno.EAGAIN));
        if (unnecessary) Assert.That((n, from), Is.EqualTo((4, new Ipv4Endpoint(IpHost, 40000))));
        s.Close(socket);
        s.Shutdown();
        nic.DrainAll();
    }

    [TestCase(false)]
    [TestCase(true)]
    public void AnIpHeaderWithABadChecksumIsVerifiedUnlessTheDeviceSaysItCannotBeCorrupt(bool unnecessary)
    {
        using var nic = new TestNic(MacA) { Offloads = unnecessary ? NicOffloads.RxChecksumUnnecessary : NicOffloads.None };
        var s = new NetStack(ConfigFor(IpA), nic);
        var now = Instant.FromMilliseconds(1);
        s.Poll(now);
        nic.DrainAll();
        Assert.That(s.Open(SocketKind.Udp, out var socket), Is.EqualTo(Errno.Ok));
        Assert.That(s.Bind(socket, new Ipv4Endpoint(Ipv4Address.Any, 5353)), Is.EqualTo(Errno.Ok));
        var frame = Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 40000, 5353, [1, 2, 3, 4]));
        frame[14 + 10] ^= 0x5a; // the IPv4 header checksum, wrong now
        nic.Inject(frame);
        s.Poll(now);

        Assert.That(s.Counters.Ip.BadChecksum, Is.EqualTo(unnecessary ? 0 : 1));
        var buffer = new byte[16];
        Assert.That(s.ReceiveFrom(socket, buffer, MessageFlags.None, out int n, out _), Is.EqualTo(unnecessary ? Errno.Ok : Errno.EAGAIN));
        if (unnecessary) Assert.That(n, Is.EqualTo(4));
        s.Close(socket);
        s.Shutdown();
        nic.DrainAll();
    }

    [Test]
    public void AnImpairedLinkNeverClaimsItsFramesCannotBeCorrupt()
    {
        using var nic = new TestNic(MacA) { Offloads = NicOffloads.RxChecksumUnnecessary | NicOffloads.RssHash };
        using var impaired = new ImpairedNic(nic, 1, ImpairmentProfile.None, ImpairmentProfile.None);
        Assert.That(impaired.Offloads, Is.EqualTo(NicOffloads.RssHash));
    }
}

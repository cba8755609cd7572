using System.Buffers.Binary;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>
/// The IP layer's cached route (prebuilt Ethernet + IPv4 headers for the destination sent to twice in a row):
/// frames sent through it are the frames the full path builds, and it yields to the full path as soon as what
/// it was built from changes (the next hop's MAC, the path MTU, the ARP refresh window, the socket's TTL/TOS).
/// </summary>
public class CachedRouteTests
{
    private static readonly MacAddress MacHost2 = MacAddress.Parse("02:00:00:00:00:98");
    private TestNic _nic = null!;
    private NetStack _s = null!;
    private Instant _now;
    private SocketHandle _h;
    private readonly Ipv4Endpoint _to = new(IpHost, 4000);

    [SetUp]
    public void SetUp()
    {
        _nic = new TestNic(MacA);
        _s = new NetStack(ConfigFor(IpA), _nic);
        _now = Instant.FromMilliseconds(5);
        _s.Poll(_now);
        _nic.TakeSent(); // gratuitous ARP
        // The host asks for us: we learn its MAC (RFC 826) and answer.
        _nic.Inject(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA, MacAddress.Broadcast));
        _s.Poll(_now);
        Assert.That(_nic.TakeSent(), Is.Not.Null);
        Assert.That(_s.Open(SocketKind.Udp, out _h), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Bind(_h, new Ipv4Endpoint(IpA, 3000)), Is.EqualTo(Errno.Ok));
    }

    [TearDown]
    public void TearDown()
    {
        _s.Shutdown();
        _nic.DrainAll();
        Assert.That(_nic.Pool.InUse, Is.Zero, "pool leaked");
        _nic.Dispose();
    }

    private byte[] SendOne(ReadOnlySpan<byte> payload)
    {
        Assert.That(_s.SendTo(_h, payload, _to, MessageFlags.None, out int n), Is.EqualTo(Errno.Ok));
        Assert.That(n, Is.EqualTo(payload.Length));
        var f = _nic.TakeSent();
        Assert.That(f, Is.Not.Null, "no frame sent");
        Assert.That(_nic.TakeSent(), Is.Null, "more than one frame sent");
        return f!;
    }

    /// <summary>Parses a frame to the host and checks every header and checksum; returns the IP header's id.</summary>
    private static ushort Check(byte[] frame, MacAddress mac, ReadOnlySpan<byte> payload, byte ttl = 64, byte tos = 0)
    {
        Assert.That(EthernetFrame.TryCreate(frame, out var eth), Is.True);
        Assert.That((eth.Destination, eth.Source, eth.EtherType), Is.EqualTo((mac, MacA, EtherType.Ipv4)));
        Assert.That(Ipv4Packet.TryCreate(eth.Payload, out var ip) && ip.VerifyChecksum(), Is.True, "IPv4 header");
        var r = Ipv4Repr.Parse(ip);
        Assert.That((r.Source, r.Destination, r.Protocol, r.Ttl, r.Tos, r.PayloadLength, r.MoreFragments, r.FragmentOffset),
            Is.EqualTo((IpA, IpHost, IpProtocol.Udp, ttl, tos, 8 + payload.Length, false, 0)));
        Assert.That(eth.Payload.Length, Is.EqualTo(20 + 8 + payload.Length));
        Assert.That(UdpDatagram.TryCreate(ip.Payload, out var u) && u.VerifyChecksum(ip.Source, ip.Destination), Is.True, "UDP checksum");
        Assert.That((u.SourcePort, u.DestinationPort), Is.EqualTo(((ushort)3000, (ushort)4000)));
        Assert.That(u.Payload.ToArray(), Is.EqualTo(payload.ToArray()));
        return r.Identification;
    }

    [Test]
    public void RepeatedSendsCarryTheHeadersTheFullPathWrites()
    {
        var rng = new Random(7);
        ushort? last = null;
        byte[]? first = null;
        // Odd and even lengths (the checksum's byte order), the empty datagram, one that fills the MTU.
        var same = new byte[64];
        rng.NextBytes(same);
        foreach (int len in new[] { 64, 64, 65, 1, 0, 1472, 333, 64 })
        {
            var payload = len == 64 ? same : new byte[len];
            if (len != 64) rng.NextBytes(payload);
            var f = SendOne(payload);
            ushort id = Check(f, MacHost, payload);
            if (last is { } l) Assert.That(id, Is.EqualTo((ushort)(l + 1)), "identification runs on");
            last = id;
            if (len == 64 && first is null) first = f;
            else if (len == 64 && first is not null && f != first)
            {
                // Same datagram through the full path (first) and the cached route: the same bytes but the id and
                // the IP header checksum.
                var a = (byte[])first.Clone();
                var b = (byte[])f.Clone();
                foreach (var x in new[] { a, b }) { x[18] = x[19] = x[24] = x[25] = 0; }
                Assert.That(b, Is.EqualTo(a));
            }
        }
        Assert.That(_s.Counters.Ip.DatagramsSent, Is.EqualTo(8));
    }

    [Test]
    public void ANewMacOfTheNextHopIsUsedAtOnce()
    {
        var p = new byte[64];
        SendOne(p);
        SendOne(p);
        Check(SendOne(p), MacHost, p);
        // The host moved to another MAC and says so (a gratuitous ARP reply).
        _nic.Inject(Arp(ArpOperation.Reply, MacHost2, IpHost, MacHost2, IpHost, MacAddress.Broadcast));
        _s.Poll(_now);
        Check(SendOne(p), MacHost2, p);
        Check(SendOne(p), MacHost2, p);
    }

    [Test]
    public void ALowerPathMtuIsUsedAtOnce()
    {
        var p = new byte[1400];
        SendOne(p);
        var sent = SendOne(p);
        Check(SendOne(p), MacHost, p);
        var quoted = sent.AsSpan(14, 28).ToArray();
        var msg = new byte[8 + quoted.Length];
        quoted.CopyTo(msg, 8);
        Icmpv4Repr.Unreachable(Icmpv4UnreachableCode.FragmentationNeeded, 1000).Emit(msg);
        _nic.Inject(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, msg));
        _s.Poll(_now);
        Assert.That(_s.PathMtu(IpHost), Is.EqualTo(1000));
        Assert.That(_s.SendTo(_h, p, _to, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Counters.Ip.FragmentsCreated, Is.EqualTo(2));
        var f1 = _nic.TakeSent()!;
        Assert.That(f1.Length - 14, Is.LessThanOrEqualTo(1000));
        Assert.That(_nic.TakeSent(), Is.Not.Null);
    }

    [Test]
    public void TheNextHopIsStillRefreshedBeforeItExpires()
    {
        var p = new byte[64];
        SendOne(p);
        SendOne(p);
        SendOne(p);
        Assert.That(_s.Counters.Arp.Refreshes, Is.Zero);
        // Into the refresh window (reachable 60 s, refreshed in its last 5 s): the next send asks the host again.
        _now += TimeSpanMicros.FromSeconds(56);
        _s.Poll(_now);
        Assert.That(_s.SendTo(_h, p, _to, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Counters.Arp.Refreshes, Is.EqualTo(1));
        var frames = new List<byte[]>();
        while (_nic.TakeSent() is { } f) frames.Add(f);
        Assert.That(frames.Count(f => EthernetFrame.TryCreate(f, out var e) && e.EtherType == EtherType.Arp && e.Destination == MacHost), Is.EqualTo(1));
        Assert.That(frames.Count(f => EthernetFrame.TryCreate(f, out var e) && e.EtherType == EtherType.Ipv4), Is.EqualTo(1));
    }

    [Test]
    public void TtlAndTosOfTheSocketApplyAtOnce()
    {
        var p = new byte[64];
        SendOne(p);
        SendOne(p);
        var v = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(v, 9);
        Assert.That(_s.SetOption(_h, 0, 2, v), Is.EqualTo(Errno.Ok)); // IP_TTL
        Check(SendOne(p), MacHost, p, ttl: 9);
        BinaryPrimitives.WriteInt32LittleEndian(v, 0x10);
        Assert.That(_s.SetOption(_h, 0, 1, v), Is.EqualTo(Errno.Ok)); // IP_TOS
        Check(SendOne(p), MacHost, p, ttl: 9, tos: 0x10);
        Check(SendOne(p), MacHost, p, ttl: 9, tos: 0x10);
    }
}

using Gazelle.Link;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

public class NetStackTests
{
    private TestNic _na = null!, _nb = null!;
    private NetStack _a = null!, _b = null!;
    private Instant _now;

    [SetUp]
    public void SetUp()
    {
        (_na, _nb) = TestNic.Pair(MacA, MacB);
        _a = new NetStack(ConfigFor(IpA), _na);
        _b = new NetStack(ConfigFor(IpB), _nb);
        _now = Instant.FromMilliseconds(1000);
        Settle(_a, _na, _b, _nb, _now); // gratuitous ARPs go out and are received
    }

    [TearDown]
    public void TearDown()
    {
        _a.Shutdown();
        _b.Shutdown();
        Settle(_a, _na, _b, _nb, _now);
        Assert.That(_na.RxQueue.Count + _nb.RxQueue.Count, Is.Zero);
        Assert.That(_na.Pool.InUse, Is.Zero, "pool A leaked");
        Assert.That(_nb.Pool.InUse, Is.Zero, "pool B leaked");
        Assert.That(_a.Counters.SumOfFrameOutcomes(), Is.EqualTo(_a.Counters.Link.FramesReceived), _a.Counters.ToString());
        Assert.That(_b.Counters.SumOfFrameOutcomes(), Is.EqualTo(_b.Counters.Link.FramesReceived), _b.Counters.ToString());
        _na.Dispose();
        _nb.Dispose();
    }

    private SocketHandle OpenUdp(NetStack s, ushort port)
    {
        Assert.That(s.Open(SocketKind.Udp, out var h), Is.EqualTo(Errno.Ok));
        Assert.That(s.Bind(h, new Ipv4Endpoint(Ipv4Address.Any, port)), Is.EqualTo(Errno.Ok));
        return h;
    }

    [Test]
    public void GratuitousArpAtStartIsSeenButNotLearnedByStrangers()
    {
        // Each stack announced itself; neither was the target, so neither cached the other (RFC 826).
        Assert.That(_a.Counters.Arp.RequestsSent, Is.EqualTo(1));
        Assert.That(_b.Counters.Arp.IgnoredNotForUs, Is.EqualTo(1));
        Assert.That(_a.Arp.Count, Is.Zero);
    }

    [Test]
    public void UdpExchangeResolvesArpBothWays()
    {
        var sa = OpenUdp(_a, 5000);
        var sb = OpenUdp(_b, 6000);
        var msg = "ping over udp"u8.ToArray();
        Assert.That(_a.SendTo(sa, msg, new Ipv4Endpoint(IpB, 6000), MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.EqualTo(msg.Length));
        Settle(_a, _na, _b, _nb, _now);

        var buf = new byte[100];
        Assert.That(_b.ReceiveFrom(sb, buf, MessageFlags.None, out int got, out var from), Is.EqualTo(Errno.Ok));
        Assert.That(buf[..got], Is.EqualTo(msg));
        Assert.That(from, Is.EqualTo(new Ipv4Endpoint(IpA, 5000)));
        // B learned A from A's request (it was the target); A learned B from the reply.
        Assert.That(_a.Arp.TryLookup(IpB, _now, out var macB) && macB == MacB, Is.True);
        Assert.That(_b.Arp.TryLookup(IpA, _now, out var macA) && macA == MacA, Is.True);
        long requestsB = _b.Counters.Arp.RequestsSent;

        Assert.That(_b.SendTo(sb, "pong"u8, from, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Settle(_a, _na, _b, _nb, _now);
        Assert.That(_a.ReceiveFrom(sa, buf, MessageFlags.None, out got, out from), Is.EqualTo(Errno.Ok));
        Assert.That(buf[..got], Is.EqualTo("pong"u8.ToArray()));
        Assert.That(from, Is.EqualTo(new Ipv4Endpoint(IpB, 6000)));
        Assert.That(_b.Counters.Arp.RequestsSent, Is.EqualTo(requestsB), "B needed no ARP request of its own");
        Assert.That(_a.ReceiveFrom(sa, buf, MessageFlags.None, out _, out _), Is.EqualTo(Errno.EAGAIN));
        Assert.That(_a.Close(sa), Is.EqualTo(Errno.Ok));
        Assert.That(_b.Close(sb), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void ConnectedSocketsAndClosedPortGivesConnRefused()
    {
        Assert.That(_a.Open(SocketKind.Udp, out var s), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Connect(s, new Ipv4Endpoint(IpB, 9999)), Is.EqualTo(Errno.Ok));
        Assert.That(_a.GetLocalEndpoint(s, out var local), Is.EqualTo(Errno.Ok));
        Assert.That(local.Address, Is.EqualTo(IpA));
        Assert.That(local.Port, Is.InRange(49152, 65535));
        Assert.That(_a.Send(s, "anyone?"u8, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Settle(_a, _na, _b, _nb, _now);
        Assert.That(_b.Counters.Udp.NoPort, Is.EqualTo(1));
        Assert.That(_b.Counters.Icmp.ErrorsSent, Is.EqualTo(1));
        Assert.That(_a.Counters.Icmp.ErrorsDelivered, Is.EqualTo(1));
        Assert.That(_a.GetReadiness(s).HasFlag(Readiness.Error), Is.True);
        Assert.That(_a.Receive(s, new byte[10], MessageFlags.None, out _), Is.EqualTo(Errno.ECONNREFUSED));
        Assert.That(_a.TakeError(s), Is.EqualTo(Errno.Ok));
        _a.Close(s);
    }

    [Test]
    public void LargeDatagramIsFragmentedAndReassembled()
    {
        var sa = OpenUdp(_a, 5000);
        var sb = OpenUdp(_b, 6000);
        var big = new byte[5000];
        new Random(5).NextBytes(big);
        Assert.That(_a.SendTo(sa, big, new Ipv4Endpoint(IpB, 6000), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Settle(_a, _na, _b, _nb, _now);
        Assert.That(_a.Counters.Ip.FragmentsCreated, Is.EqualTo(4)); // 5008 bytes in 1480-byte pieces
        Assert.That(_b.Counters.Ip.Reassembled, Is.EqualTo(1));
        var buf = new byte[6000];
        Assert.That(_b.ReceiveFrom(sb, buf, MessageFlags.None, out int got, out _), Is.EqualTo(Errno.Ok));
        Assert.That(buf[..got], Is.EqualTo(big));
        _a.Close(sa);
        _b.Close(sb);
    }

    [Test]
    public void BindConflictsAndReuse()
    {
        var s1 = OpenUdp(_a, 7000);
        _a.Open(SocketKind.Udp, out var s2);
        Assert.That(_a.Bind(s2, new Ipv4Endpoint(Ipv4Address.Any, 7000)), Is.EqualTo(Errno.EADDRINUSE));
        Assert.That(_a.Bind(s2, new Ipv4Endpoint(IpA, 7000)), Is.EqualTo(Errno.EADDRINUSE));
        Assert.That(_a.Bind(s2, new Ipv4Endpoint(IpB, 7001)), Is.EqualTo(Errno.EADDRNOTAVAIL));
        var one = BitConverter.GetBytes(1);
        _a.Open(SocketKind.Udp, out var r1);
        _a.Open(SocketKind.Udp, out var r2);
        Assert.That(_a.SetOption(r1, 1, 2, one), Is.EqualTo(Errno.Ok));
        Assert.That(_a.SetOption(r2, 1, 2, one), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Bind(r1, new Ipv4Endpoint(Ipv4Address.Any, 7100)), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Bind(r2, new Ipv4Endpoint(Ipv4Address.Any, 7100)), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Bind(s2, new Ipv4Endpoint(Ipv4Address.Any, 7100)), Is.EqualTo(Errno.EADDRINUSE), "only if both opt in");
        Assert.That(_a.Close(s1), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Close(s1), Is.EqualTo(Errno.EBADF), "double close");
        Assert.That(_a.Bind(s2, new Ipv4Endpoint(Ipv4Address.Any, 7000)), Is.EqualTo(Errno.Ok), "port free after close");
        Assert.That(_a.Bind(s2, new Ipv4Endpoint(Ipv4Address.Any, 7001)), Is.EqualTo(Errno.EINVAL), "already bound");

        var ports = new HashSet<ushort>();
        for (int i = 0; i < 20; i++)
        {
            Assert.That(_a.Open(SocketKind.Udp, out var e), Is.EqualTo(Errno.Ok));
            Assert.That(_a.Bind(e, new Ipv4Endpoint(Ipv4Address.Any, 0)), Is.EqualTo(Errno.Ok));
            _a.GetLocalEndpoint(e, out var ep);
            Assert.That(ports.Add(ep.Port), Is.True, "ephemeral ports are distinct");
        }
        Assert.That(_a.Open(SocketKind.Tcp, out var tcp), Is.EqualTo(Errno.Ok), "TCP is hooked up");
        Assert.That(_a.Close(tcp), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void ReceiveQueueOverflowIsCounted()
    {
        var sa = OpenUdp(_a, 5000);
        var sb = OpenUdp(_b, 6000);
        var payload = new byte[1000];
        for (int i = 0; i < 300; i++)
        {
            _a.SendTo(sa, payload, new Ipv4Endpoint(IpB, 6000), MessageFlags.None, out _);
            Settle(_a, _na, _b, _nb, _now);
        }
        // 128 KiB of 1000-byte datagrams: 131 fit.
        Assert.That(_b.Counters.Udp.Delivered, Is.EqualTo(131));
        Assert.That(_b.Counters.Udp.ReceiveQueueFull, Is.EqualTo(300 - 131));
        var buf = new byte[2000];
        int n = 0;
        while (_b.ReceiveFrom(sb, buf, MessageFlags.None, out _, out _) == Errno.Ok) n++;
        Assert.That(n, Is.EqualTo(131));
    }

    [Test]
    public void ArpGivesUpAfterRetriesAndCountsDrops()
    {
        var sa = OpenUdp(_a, 5000);
        var nobody = new Ipv4Endpoint(Ipv4Address.Parse("10.0.0.77"), 1);
        for (int i = 0; i < 6; i++) _a.SendTo(sa, "x"u8, nobody, MessageFlags.None, out _);
        Assert.That(_a.Counters.Arp.PendingQueueFull, Is.EqualTo(2));
        Assert.That(_a.Arp.PendingPackets, Is.EqualTo(4));
        long before = _a.Counters.Arp.RequestsSent;
        for (int t = 0; t <= 5; t++)
        {
            Settle(_a, _na, _b, _nb, _now + TimeSpanMicros.FromMilliseconds(t * 1000 + 1));
        }
        Assert.That(_a.Counters.Arp.RequestsSent - before, Is.EqualTo(2), "two retries after the first request");
        Assert.That(_a.Counters.Arp.ResolutionFailed, Is.EqualTo(4));
        Assert.That(_a.Arp.PendingPackets, Is.Zero);
        Assert.That(_a.Arp.Count, Is.Zero);
    }

    [Test]
    public void ArpEntryIsRefreshedBeforeExpiryAndReResolvedAfter()
    {
        var sa = OpenUdp(_a, 5000);
        OpenUdp(_b, 6000);
        var to = new Ipv4Endpoint(IpB, 6000);
        _a.SendTo(sa, "1"u8, to, MessageFlags.None, out _);
        Settle(_a, _na, _b, _nb, _now);
        Assert.That(_a.Counters.Arp.Refreshes, Is.Zero);
        // Inside the refresh window (last 5 s of 60): a unicast refresh goes out, and B's reply renews.
        var t1 = _now + TimeSpanMicros.FromSeconds(57);
        Settle(_a, _na, _b, _nb, t1);
        _a.SendTo(sa, "2"u8, to, MessageFlags.None, out _);
        Settle(_a, _na, _b, _nb, t1);
        Assert.That(_a.Counters.Arp.Refreshes, Is.EqualTo(1));
        Assert.That(_a.Arp.TryLookup(IpB, t1 + TimeSpanMicros.FromSeconds(50), out _), Is.True, "renewed by the reply");
        // Long after expiry the mapping is not trusted.
        Assert.That(_a.Arp.TryLookup(IpB, t1 + TimeSpanMicros.FromSeconds(61), out _), Is.False);
        Assert.That(_b.Counters.Udp.Delivered, Is.EqualTo(2));
    }

    [Test]
    public void ArpTableFullEvictsResolvedEntriesOnly()
    {
        using var nic = new TestNic(MacA);
        var s = new NetStack(ConfigFor(IpA), nic, options: new NetStackOptions { Arp = new ArpOptions { Capacity = 2 } });
        s.Poll(_now);
        nic.DrainAll();
        s.Open(SocketKind.Udp, out var h);
        s.SendTo(h, "x"u8, new Ipv4Endpoint(Ipv4Address.Parse("10.0.0.50"), 1), MessageFlags.None, out _);
        s.SendTo(h, "x"u8, new Ipv4Endpoint(Ipv4Address.Parse("10.0.0.51"), 1), MessageFlags.None, out _);
        s.SendTo(h, "x"u8, new Ipv4Endpoint(Ipv4Address.Parse("10.0.0.52"), 1), MessageFlags.None, out _);
        Assert.That(s.Counters.Arp.TableFull, Is.EqualTo(1));
        s.Shutdown();
        nic.DrainAll();
        Assert.That(nic.Pool.InUse, Is.Zero);
    }

    /// <summary>Found by the fuzz test: ARP requests from made-up senders (each adds an entry, RFC 826) evicted the
    /// entry closest to expiry, which is the long-known neighbour in use; traffic to it then queued behind a new
    /// resolution and overflowed. The victim is now the least recently used entry.</summary>
    [Test]
    public void ArpTableFullEvictsTheLeastRecentlyUsedEntry()
    {
        using var nic = new TestNic(MacA);
        var s = new NetStack(ConfigFor(IpA), nic, options: new NetStackOptions { Arp = new ArpOptions { Capacity = 2 } });
        var t0 = _now;
        s.Poll(t0);
        nic.DrainAll();
        var x = Ipv4Address.Parse("10.0.0.50");
        var y = Ipv4Address.Parse("10.0.0.51");
        var z = Ipv4Address.Parse("10.0.0.52");
        void RequestFrom(Ipv4Address ip, byte macByte, Instant at)
        {
            var mac = new MacAddress(0x02_00_00_00_00_00UL | macByte);
            nic.Inject(Arp(ArpOperation.Request, mac, ip, MacAddress.Zero, IpA, MacAddress.Broadcast));
            s.Poll(at);
            nic.DrainAll();
        }
        RequestFrom(x, 0x50, t0);                             // x is known first ...
        RequestFrom(y, 0x51, t0 + TimeSpanMicros.FromSeconds(1));
        s.Open(SocketKind.Udp, out var h);
        var t2 = t0 + TimeSpanMicros.FromSeconds(2);
        s.Poll(t2);
        Assert.That(s.SendTo(h, "in use"u8, new Ipv4Endpoint(x, 9), MessageFlags.None, out _), Is.EqualTo(Errno.Ok)); // ... and in use
        nic.DrainAll();
        RequestFrom(z, 0x52, t0 + TimeSpanMicros.FromSeconds(3)); // the table is full: one must go
        var t3 = t0 + TimeSpanMicros.FromSeconds(3);
        Assert.That(s.Counters.Arp.Evictions, Is.EqualTo(1));
        Assert.That(s.Arp.TryLookup(x, t3, out _), Is.True, "the neighbour in use stays");
        Assert.That(s.Arp.TryLookup(y, t3, out _), Is.False, "the never-used entry went");
        Assert.That(s.Arp.TryLookup(z, t3, out _), Is.True);
        s.Close(h);
        s.Shutdown();
        nic.DrainAll();
        Assert.That(nic.Pool.InUse, Is.Zero);
    }
}

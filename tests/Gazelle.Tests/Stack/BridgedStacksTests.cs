using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>Two stacks on user-veths joined by a user-vbridge, driven by a virtual clock.</summary>
public class BridgedStacksTests
{
    private UserVeth _va = null!, _vb = null!;
    private UserVbridge _bridge = null!;
    private NetStack _a = null!, _b = null!;
    private Instant _now;

    [SetUp]
    public void SetUp()
    {
        _va = new UserVeth(new UserVethOptions { MacAddress = MacA, Name = "a" });
        _vb = new UserVeth(new UserVethOptions { MacAddress = MacB, Name = "b" });
        _bridge = new UserVbridge();
        _bridge.AddPort(_va);
        _bridge.AddPort(_vb);
        _a = new NetStack(ConfigFor(IpA), _va);
        _b = new NetStack(ConfigFor(IpB), _vb);
        _now = Instant.FromMilliseconds(1);
        Run();
    }

    [TearDown]
    public void TearDown()
    {
        _a.Shutdown();
        _b.Shutdown();
        Run();
        Assert.That(_va.TxPool.InUse + _va.RxPool.InUse + _vb.TxPool.InUse + _vb.RxPool.InUse, Is.Zero, "pools back to baseline");
        Assert.That(_a.Counters.SumOfFrameOutcomes(), Is.EqualTo(_a.Counters.Link.FramesReceived));
        Assert.That(_b.Counters.SumOfFrameOutcomes(), Is.EqualTo(_b.Counters.Link.FramesReceived));
        _va.Dispose();
        _vb.Dispose();
    }

    /// <summary>Polls and pumps until quiet (no allocation: used inside the measured loop too).</summary>
    private void Run()
    {
        for (int i = 0; i < 8; i++)
        {
            _a.Poll(_now);
            _b.Poll(_now);
            if (_bridge.Pump(_now) == 0 && i > 0) break;
        }
    }

    /// <summary>A listener on B at <paramref name="port"/> and a client on A connected to it, accepted.</summary>
    private (SocketHandle Listener, SocketHandle Client, SocketHandle Server) ConnectedPair(ushort port)
    {
        _b.Open(SocketKind.Tcp, out var listener);
        _b.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, port));
        _b.Listen(listener, 4);
        var (client, server) = Connect(listener, port);
        return (listener, client, server);
    }

    /// <summary>A new client on A connected to B's <paramref name="listener"/>, and its accepted server side.</summary>
    private (SocketHandle Client, SocketHandle Server) Connect(SocketHandle listener, ushort port)
    {
        _a.Open(SocketKind.Tcp, out var client);
        _a.Connect(client, new Ipv4Endpoint(IpB, port));
        SocketHandle server = SocketHandle.Invalid;
        for (int i = 0; i < 100 && !server.IsValid; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(1);
            Run();
            if (_b.Accept(listener, out var c, out _) == Errno.Ok) server = c;
        }
        Assert.That(server.IsValid, Is.True, "the connection was accepted");
        return (client, server);
    }

    /// <summary>Runs 150 virtual seconds (past TIME_WAIT) and checks that neither stack keeps a connection.</summary>
    private void AssertAllConnectionsGone()
    {
        for (int i = 0; i < 300; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(500);
            Run();
        }
        Assert.That(_a.Tcp.LiveConnections + _b.Tcp.LiveConnections, Is.Zero);
    }

    /// <summary>An ICMP fragmentation-needed report (RFC 1191) with next-hop MTU <paramref name="mtu"/>, as a router
    /// between the stacks would send to A, quoting a segment of <paramref name="client"/>'s connection with
    /// sequence number <paramref name="seq"/>.</summary>
    private byte[] FragmentationNeeded(SocketHandle client, uint seq, ushort mtu)
    {
        var t = _a.Tcp.Peek(client)!;
        var quoted = new byte[28];
        new Ipv4Repr { Source = IpA, Destination = IpB, Protocol = IpProtocol.Tcp, Ttl = 64, DontFragment = true, PayloadLength = 1000 }.Emit(quoted);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(20), t.LocalPort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(22), t.RemotePort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(quoted.AsSpan(24), seq);
        var msg = new byte[8 + quoted.Length];
        quoted.CopyTo(msg, 8);
        Icmpv4Repr.Unreachable(Icmpv4UnreachableCode.FragmentationNeeded, mtu).Emit(msg);
        return Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, msg);
    }

    [Test]
    public void PingBetweenStacks()
    {
        var data = "0123456789abcdef"u8;
        Assert.That(_a.Ping(IpB, 77, 1, data), Is.EqualTo(Errno.Ok));
        Run();
        Assert.That(_b.Counters.Icmp.EchoRequestsAnswered, Is.EqualTo(1));
        Assert.That(_a.Icmp.LastEchoReply, Is.EqualTo(new Gazelle.Network.EchoReplyInfo(IpB, 77, 1, data.Length)));
        // And back the other way, with ARP already resolved on both sides.
        long arpA = _a.Counters.Arp.RequestsSent, arpB = _b.Counters.Arp.RequestsSent;
        Assert.That(_b.Ping(IpA, 78, 2, data), Is.EqualTo(Errno.Ok));
        Run();
        Assert.That(_b.Icmp.LastEchoReply, Is.EqualTo(new Gazelle.Network.EchoReplyInfo(IpA, 78, 2, data.Length)));
        Assert.That((_a.Counters.Arp.RequestsSent, _b.Counters.Arp.RequestsSent), Is.EqualTo((arpA, arpB)));
    }

    [Test]
    public void LargePingIsFragmentedBothWays()
    {
        var data = new byte[4000];
        new Random(9).NextBytes(data);
        _a.Ping(IpB, 1, 1, data);
        Run();
        Assert.That(_a.Icmp.LastEchoReply.DataLength, Is.EqualTo(4000));
        Assert.That(_b.Counters.Ip.Reassembled, Is.EqualTo(1));
        Assert.That(_a.Counters.Ip.Reassembled, Is.EqualTo(1));
    }

    [Test]
    public void UdpExchange()
    {
        _a.Open(SocketKind.Udp, out var sa);
        _b.Open(SocketKind.Udp, out var sb);
        Assert.That(_b.Bind(sb, new Ipv4Endpoint(IpB, 53)), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Connect(sa, new Ipv4Endpoint(IpB, 53)), Is.EqualTo(Errno.Ok));
        var buf = new byte[64];
        for (int i = 0; i < 100; i++)
        {
            var q = BitConverter.GetBytes(i);
            Assert.That(_a.Send(sa, q, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
            Run();
            Assert.That(_b.GetReadiness(sb).HasFlag(Readiness.Readable), Is.True);
            Assert.That(_b.ReceiveFrom(sb, buf, MessageFlags.None, out int n, out var from), Is.EqualTo(Errno.Ok));
            Assert.That(BitConverter.ToInt32(buf, 0), Is.EqualTo(i));
            Assert.That(_b.SendTo(sb, buf.AsSpan(0, n), from, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
            Run();
            Assert.That(_a.Receive(sa, buf, MessageFlags.None, out n), Is.EqualTo(Errno.Ok));
            Assert.That(BitConverter.ToInt32(buf, 0), Is.EqualTo(i));
        }
        _a.Close(sa);
        _b.Close(sb);
    }

    [Test]
    public void SteadyStateUdpAndPingAllocateNothing()
    {
        _a.Open(SocketKind.Udp, out var sa);
        _b.Open(SocketKind.Udp, out var sb);
        _b.Bind(sb, new Ipv4Endpoint(Ipv4Address.Any, 7));
        _a.Connect(sa, new Ipv4Endpoint(IpB, 7));
        var payload = new byte[200];
        var buf = new byte[2048];
        int received = 0;

        void Exchange(int count)
        {
            for (int i = 0; i < count; i++)
            {
                _a.Send(sa, payload, MessageFlags.None, out _);
                Run();
                if (_b.ReceiveFrom(sb, buf, MessageFlags.None, out int n, out var from) == Errno.Ok)
                {
                    _b.SendTo(sb, buf.AsSpan(0, n), from, MessageFlags.None, out _);
                    Run();
                    if (_a.Receive(sa, buf, MessageFlags.None, out _) == Errno.Ok) received++;
                }
                _a.Ping(IpB, 5, (ushort)i, payload);
                Run();
                _now += TimeSpanMicros.FromMilliseconds(1);
            }
        }

        Exchange(200); // warm-up: ARP resolved, dictionaries and JIT settled
        long allocated = AllocationProbe.LeastAllocated(() => { received = 0; Exchange(10_000); }, out int rounds);
        Assert.That(received, Is.EqualTo(10_000));
        Assert.That(_a.Counters.Icmp.EchoRepliesReceived, Is.EqualTo(200 + rounds * 10_000));
        Assert.That(allocated, Is.Zero, "bytes allocated across 10k UDP round trips and 10k pings");
        _a.Close(sa);
        _b.Close(sb);
    }

    [Test]
    public void ClosedConnectionOwesOutputUntilThePeerAcknowledgesItsDataAndFin()
    {
        var (listener, client, server) = ConnectedPair(7001);
        Assert.That(_a.HasUnfinishedOutput, Is.False, "an open, idle connection owes nothing");
        var data = new byte[200_000];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(i * 7 + (i >> 8));
        Assert.That(_a.Send(client, data, MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.GreaterThan(50_000), "enough queued that it takes several windows");
        _a.Close(client);
        Assert.That(_a.HasUnfinishedOutput, Is.True, "data and FIN written but not yet acknowledged");
        var got = new List<byte>();
        var buf = new byte[16384];
        bool eof = false;
        for (int i = 0; i < 2000 && _a.HasUnfinishedOutput; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(1);
            Run();
            while (_b.Receive(server, buf, MessageFlags.None, out int n) == Errno.Ok)
            {
                if (n == 0) { eof = true; break; }
                got.AddRange(buf.AsSpan(0, n).ToArray());
            }
        }
        Assert.That(_a.HasUnfinishedOutput, Is.False, "everything acknowledged");
        while (!eof && _b.Receive(server, buf, MessageFlags.None, out int n) == Errno.Ok)
        {
            if (n == 0) eof = true;
            else got.AddRange(buf.AsSpan(0, n).ToArray());
        }
        Assert.That(got.Count, Is.EqualTo(sent));
        Assert.That(got.ToArray().AsSpan().SequenceEqual(data.AsSpan(0, sent)), Is.True, "byte-exact");
        Assert.That(eof, Is.True, "the FIN arrived after the data");
        _b.Close(server);
        _b.Close(listener);
        AssertAllConnectionsGone();
    }

    [Test]
    public void SteadyStateTcpRequestResponseAllocatesNothing()
    {
        var (listener, client, server) = ConnectedPair(6379);
        var request = new byte[64];
        var buf = new byte[4096];
        int answered = 0;

        void Exchange(int count)
        {
            for (int i = 0; i < count; i++)
            {
                _a.Send(client, request, MessageFlags.None, out _);
                Run();
                if (_b.Receive(server, buf, MessageFlags.None, out int n) == Errno.Ok && n > 0)
                {
                    _b.Send(server, buf.AsSpan(0, n), MessageFlags.None, out _);
                    Run();
                    if (_a.Receive(client, buf, MessageFlags.None, out int m) == Errno.Ok && m == n) answered++;
                }
                _now += TimeSpanMicros.FromMilliseconds(1);
            }
        }

        Exchange(200);
        long allocated = AllocationProbe.LeastAllocated(() => { answered = 0; Exchange(10_000); }, out _);
        Assert.That(answered, Is.EqualTo(10_000));
        Assert.That(allocated, Is.Zero, "bytes allocated across 10k TCP request/response exchanges through two NetStacks");

        _a.Close(client);
        _b.Close(server);
        _b.Close(listener);
        AssertAllConnectionsGone();
    }

    /// <summary>Found by the fuzz test: a fragmentation-needed report below TCP's smallest segment (MTU 68, MSS
    /// floor 88) made every segment too big for DF, so the connection stalled for good. Such a segment now goes
    /// without DF and IP fragments it (as Linux does once the path MTU is at its floor).</summary>
    [Test]
    public void TcpKeepsFlowingWhenThePathMtuIsBelowItsSmallestSegment()
    {
        var (listener, client, server) = ConnectedPair(7000);

        // A router between them reports a next-hop MTU of 68 (RFC 791's minimum), quoting our last segment.
        Assert.That(_va.DeliverFromWire(FragmentationNeeded(client, _a.Tcp.Peek(client)!.SndUna.Value, 68)), Is.True);
        Run();
        Assert.That(_a.PathMtu(IpB), Is.EqualTo(68));

        var data = new byte[5000];
        new Random(5).NextBytes(data);
        Assert.That(_a.Send(client, data, MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.EqualTo(data.Length));
        var got = new byte[data.Length];
        int received = 0;
        for (int i = 0; i < 2000 && received < data.Length; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(1);
            Run();
            if (_b.Receive(server, got.AsSpan(received), MessageFlags.None, out int n) == Errno.Ok) received += n;
        }
        Assert.That(received, Is.EqualTo(data.Length), "the data got through");
        Assert.That(got.AsSpan().SequenceEqual(data), Is.True);
        Assert.That(_a.Counters.Ip.TxTooBig, Is.Zero, "no segment refused for DF");
        Assert.That(_a.Counters.Ip.FragmentsCreated, Is.GreaterThan(0), "IP fragmented the segments");
        _a.Close(client);
        _b.Close(server);
        _b.Close(listener);
        AssertAllConnectionsGone();
    }

    /// <summary>Found by the fuzz test: a fragmentation-needed report quoting a sequence number not in flight is
    /// ignored by TCP (RFC 5927 §4.1), but the IP layer had already lowered the path MTU, so TCP kept its MSS
    /// and every full segment was refused for DF: one forged ICMP stalled the connection. The path MTU now
    /// changes only once TCP has accepted the report.</summary>
    [Test]
    public void ForgedFragmentationNeededQuotingNoDataInFlightChangesNothing()
    {
        var (listener, client, server) = ConnectedPair(7001);
        uint notInFlight = (_a.Tcp.Peek(client)!.SndUna - 100_000).Value;
        Assert.That(_va.DeliverFromWire(FragmentationNeeded(client, notInFlight, 576)), Is.True);
        Run();
        Assert.That(_a.Tcp.Counters.IcmpIgnored, Is.EqualTo(1));
        Assert.That(_a.PathMtu(IpB), Is.EqualTo(1500), "the path MTU is unchanged");

        var data = new byte[20_000];
        new Random(6).NextBytes(data);
        Assert.That(_a.Send(client, data, MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        var got = new byte[data.Length];
        int received = 0;
        for (int i = 0; i < 200 && received < data.Length; i++)
        {
            if (sent < data.Length && _a.Send(client, data.AsSpan(sent), MessageFlags.None, out int k) == Errno.Ok) sent += k;
            _now += TimeSpanMicros.FromMilliseconds(1);
            Run();
            if (_b.Receive(server, got.AsSpan(received), MessageFlags.None, out int n) == Errno.Ok) received += n;
        }
        Assert.That(received, Is.EqualTo(data.Length));
        Assert.That(got.AsSpan().SequenceEqual(data), Is.True);
        Assert.That(_a.Counters.Ip.TxTooBig, Is.Zero, "no segment refused for DF");

        // The same report quoting data in flight is acted on: the path MTU and the MSS drop together, and a
        // second connection to the same host sizes its segments from the new path MTU too.
        var (second, secondServer) = Connect(listener, 7001);
        _a.Send(client, new byte[3000], MessageFlags.None, out _);
        Assert.That(_va.DeliverFromWire(FragmentationNeeded(client, _a.Tcp.Peek(client)!.SndUna.Value, 576)), Is.True);
        Run();
        Assert.That(_a.PathMtu(IpB), Is.EqualTo(576));
        Assert.That(_a.Tcp.Peek(client)!.SndMss, Is.EqualTo(536));
        Assert.That(_a.Send(second, data, MessageFlags.None, out int sent2), Is.EqualTo(Errno.Ok));
        int received2 = 0;
        for (int i = 0; i < 200 && received2 < sent2; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(1);
            Run();
            _b.Receive(server, got, MessageFlags.None, out _);
            if (_b.Receive(secondServer, got, MessageFlags.None, out int n) == Errno.Ok) received2 += n;
        }
        Assert.That(received2, Is.EqualTo(sent2), "the second connection's data got through");
        Assert.That(_a.Tcp.Peek(second)!.SndMss, Is.EqualTo(536));
        Assert.That(_a.Counters.Ip.TxTooBig, Is.Zero);
        _a.Close(second);
        _b.Close(secondServer);
        _a.Close(client);
        _b.Close(server);
        _b.Close(listener);
        AssertAllConnectionsGone();
    }
}

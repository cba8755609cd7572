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
        _b.Open(SocketKind.Tcp, out var listener);
        _b.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, 7001));
        _b.Listen(listener, 4);
        _a.Open(SocketKind.Tcp, out var client);
        _a.Connect(client, new Ipv4Endpoint(IpB, 7001));
        SocketHandle server = SocketHandle.Invalid;
        for (int i = 0; i < 100 && !server.IsValid; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(1);
            Run();
            if (_b.Accept(listener, out var c, out _) == Errno.Ok) server = c;
        }
        Assert.That(server.IsValid, Is.True);
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
        for (int i = 0; i < 300; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(500);
            Run();
        }
        Assert.That(_a.Tcp.LiveConnections + _b.Tcp.LiveConnections, Is.Zero);
    }

    [Test]
    public void SteadyStateTcpRequestResponseAllocatesNothing()
    {
        _b.Open(SocketKind.Tcp, out var listener);
        _b.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, 6379));
        _b.Listen(listener, 4);
        _a.Open(SocketKind.Tcp, out var client);
        _a.Connect(client, new Ipv4Endpoint(IpB, 6379));
        SocketHandle server = SocketHandle.Invalid;
        for (int i = 0; i < 100 && !server.IsValid; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(1);
            Run();
            if (_b.Accept(listener, out var c, out _) == Errno.Ok) server = c;
        }
        Assert.That(server.IsValid, Is.True);
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
        for (int i = 0; i < 300; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(500);
            Run();
        }
        Assert.That(_a.Tcp.LiveConnections + _b.Tcp.LiveConnections, Is.Zero);
    }
}

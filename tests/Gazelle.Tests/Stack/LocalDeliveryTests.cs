using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>A stack talking to its own address: delivered locally (as Linux's loopback path does), never
/// through ARP or the NIC.</summary>
public class LocalDeliveryTests
{
    private TestNic _nic = null!;
    private NetStack _s = null!;
    private Instant _now;
    private int _framesAtStart;

    [SetUp]
    public void SetUp()
    {
        _nic = new TestNic(MacA); // no peer: whatever the stack transmits lands in _nic.Sent
        _s = new NetStack(ConfigFor(IpA), _nic);
        _now = Instant.FromMilliseconds(1000);
        _s.Poll(_now); // the gratuitous ARP goes out
        _framesAtStart = _nic.Sent.Count;
    }

    [TearDown]
    public void TearDown()
    {
        _s.Shutdown();
        while (_nic.Sent.TryDequeue(out var b)) b.Release();
        Assert.That(_nic.Pool.InUse, Is.Zero, "pool leaked");
        Assert.That(_s.Counters.SumOfFrameOutcomes(), Is.EqualTo(_s.Counters.Link.FramesReceived + _s.Counters.Ip.LoopbackReceived),
            _s.Counters.ToString());
        _nic.Dispose();
    }

    /// <summary>Polls until the stack has nothing left to deliver to itself (bounded).</summary>
    private void Run(int maxPolls = 100)
    {
        for (int i = 0; i < maxPolls; i++)
        {
            _now += TimeSpanMicros.FromMilliseconds(1);
            var next = _s.Poll(_now);
            // Done when nothing is delivered locally and nothing is due before the next step (an ACK the stack may
            // hold a little for a reply to carry is due within one).
            if (_s.Ip.LocalPending == 0 && next > _now + TimeSpanMicros.FromMilliseconds(1)) return;
        }
    }

    private void AssertNothingLeftTheHost()
    {
        Assert.That(_nic.Sent.Count, Is.EqualTo(_framesAtStart), "a frame to our own address reached the NIC");
        Assert.That(_s.Counters.Arp.RequestsSent, Is.EqualTo(1), "only the gratuitous ARP");
        Assert.That(_s.Arp.Count, Is.Zero);
    }

    [Test]
    public void UdpToOwnAddressIsDeliveredLocally()
    {
        Assert.That(_s.Open(SocketKind.Udp, out var rx), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Bind(rx, new Ipv4Endpoint(IpA, 7000)), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Open(SocketKind.Udp, out var tx), Is.EqualTo(Errno.Ok));
        var big = new byte[4000]; // larger than the MTU: fragmented, queued, reassembled
        for (int i = 0; i < big.Length; i++) big[i] = (byte)(i * 7);
        Assert.That(_s.SendTo(tx, "to myself"u8, new Ipv4Endpoint(IpA, 7000), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Assert.That(_s.SendTo(tx, big, new Ipv4Endpoint(IpA, 7000), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Ip.LocalPending, Is.EqualTo(1 + 3), "queued, not delivered inside the send");
        var buf = new byte[5000];
        Assert.That(_s.ReceiveFrom(rx, buf, MessageFlags.None, out _, out _), Is.EqualTo(Errno.EAGAIN));
        Run();
        Assert.That(_s.ReceiveFrom(rx, buf, MessageFlags.None, out int n, out var from), Is.EqualTo(Errno.Ok));
        Assert.That(buf[..n], Is.EqualTo("to myself"u8.ToArray()));
        Assert.That(from.Address, Is.EqualTo(IpA));
        Assert.That(_s.GetLocalEndpoint(tx, out var txLocal), Is.EqualTo(Errno.Ok));
        Assert.That(from.Port, Is.EqualTo(txLocal.Port));
        Assert.That(_s.ReceiveFrom(rx, buf, MessageFlags.None, out n, out _), Is.EqualTo(Errno.Ok));
        Assert.That(buf[..n], Is.EqualTo(big));
        Assert.That(_s.Counters.Ip.Reassembled, Is.EqualTo(1));
        Assert.That(_s.Counters.Ip.LoopbackSent, Is.EqualTo(4));
        Assert.That(_s.Counters.Ip.LoopbackReceived, Is.EqualTo(4));
        AssertNothingLeftTheHost();
        _s.Close(rx);
        _s.Close(tx);
    }

    [Test]
    public void UdpToOwnClosedPortGivesConnRefused()
    {
        Assert.That(_s.Open(SocketKind.Udp, out var s), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Connect(s, new Ipv4Endpoint(IpA, 9999)), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Send(s, "anyone?"u8, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Run();
        Assert.That(_s.Counters.Udp.NoPort, Is.EqualTo(1));
        Assert.That(_s.Counters.Icmp.ErrorsDelivered, Is.EqualTo(1));
        Assert.That(_s.Receive(s, new byte[10], MessageFlags.None, out _), Is.EqualTo(Errno.ECONNREFUSED));
        AssertNothingLeftTheHost();
        _s.Close(s);
    }

    [Test]
    public void TcpConnectTransferAndCloseToSelf()
    {
        Assert.That(_s.Open(SocketKind.Tcp, out var listener), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, 6379)), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Listen(listener, 4), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Open(SocketKind.Tcp, out var client), Is.EqualTo(Errno.Ok));
        var e = _s.Connect(client, new Ipv4Endpoint(IpA, 6379));
        Assert.That(e, Is.EqualTo(Errno.EINPROGRESS).Or.EqualTo(Errno.Ok));
        Run();
        Assert.That(_s.Accept(listener, out var server, out var remote), Is.EqualTo(Errno.Ok));
        Assert.That(_s.GetLocalEndpoint(client, out var clientLocal), Is.EqualTo(Errno.Ok));
        Assert.That(remote, Is.EqualTo(clientLocal));
        Assert.That(remote.Address, Is.EqualTo(IpA));
        Assert.That(_s.GetReadiness(client).HasFlag(Readiness.Writable), Is.True);

        // 1 MB each way, through windows and many polls.
        var data = new byte[1 << 20];
        new Random(7).NextBytes(data);
        var got = new byte[data.Length];
        var back = new byte[data.Length];
        int sent = 0, received = 0, echoed = 0, returned = 0;
        var buf = new byte[65536];
        for (int i = 0; i < 20000 && returned < data.Length; i++)
        {
            if (sent < data.Length && _s.Send(client, data.AsSpan(sent), MessageFlags.None, out int k) == Errno.Ok) sent += k;
            if (_s.Receive(server, buf, MessageFlags.None, out int n) == Errno.Ok && n > 0)
            {
                buf.AsSpan(0, n).CopyTo(got.AsSpan(received));
                received += n;
            }
            if (echoed < received && _s.Send(server, got.AsSpan(echoed, received - echoed), MessageFlags.None, out int m) == Errno.Ok) echoed += m;
            if (_s.Receive(client, buf, MessageFlags.None, out n) == Errno.Ok && n > 0)
            {
                buf.AsSpan(0, n).CopyTo(back.AsSpan(returned));
                returned += n;
            }
            _now += new TimeSpanMicros(100);
            _s.Poll(_now);
        }
        Assert.That(returned, Is.EqualTo(data.Length));
        Assert.That(got.AsSpan().SequenceEqual(data), Is.True, "server received the bytes in order");
        Assert.That(back.AsSpan().SequenceEqual(data), Is.True, "client received the echo in order");
        Assert.That(_s.Counters.Ip.LoopbackQueueFull, Is.Zero);

        Assert.That(_s.Close(client), Is.EqualTo(Errno.Ok));
        Run();
        Assert.That(_s.Receive(server, buf, MessageFlags.None, out int eof), Is.EqualTo(Errno.Ok));
        Assert.That(eof, Is.Zero, "end of stream after the peer's FIN");
        Assert.That(_s.Close(server), Is.EqualTo(Errno.Ok));
        Run();
        Assert.That(_s.Close(listener), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Counters.Ip.LoopbackReceived, Is.EqualTo(_s.Counters.Ip.LoopbackSent));
        Assert.That(_s.Counters.Tcp.Delivered, Is.EqualTo(_s.Counters.Ip.LoopbackReceived));
        AssertNothingLeftTheHost();
    }

    [Test]
    public void LocalQueueOverflowIsCountedAndOnePollDoesBoundedWork()
    {
        Assert.That(_s.Open(SocketKind.Udp, out var rx), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Bind(rx, new Ipv4Endpoint(IpA, 7000)), Is.EqualTo(Errno.Ok));
        int extra = 5;
        for (int i = 0; i < Gazelle.Network.Ipv4Layer.LocalQueueSize + extra; i++)
            Assert.That(_s.SendTo(rx, "x"u8, new Ipv4Endpoint(IpA, 7000), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Assert.That(_s.Counters.Ip.LoopbackQueueFull, Is.EqualTo(extra));
        Assert.That(_s.Ip.LocalPending, Is.EqualTo(Gazelle.Network.Ipv4Layer.LocalQueueSize));
        _s.Poll(_now);
        Assert.That(_s.Ip.LocalPending, Is.Zero);
        Assert.That(_s.Counters.Ip.LoopbackReceived, Is.EqualTo(Gazelle.Network.Ipv4Layer.LocalQueueSize));
        _s.Close(rx);
    }
}

using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// ACKs the stack holds for a reply to carry (TcpLayer.AckSoonEnabled) against a peer whose Nagle algorithm waits
/// for them: the POSIX layer as the server, a peer stack as a client that writes its request in two small writes
/// without TCP_NODELAY (write, write, read). The virtual clock moves one microsecond at every read, so a blocking
/// call's timeout passes in virtual time.
/// </summary>
[NonParallelizable]
public unsafe class HeldAckTests : LayerOverStackFixture
{
    protected override PollPolicy Policy => new() { SpinMicros = 1_000_000, BlockMillis = 1 };
    protected override bool VirtualClock => true;

    protected override Instant ReadVirtualClock()
    {
        _now += new TimeSpanMicros(1);
        return _now;
    }

    private void Step()
    {
        _now += new TimeSpanMicros(5);
        _network.Poll(_now);
        _peer.Poll(_now);
        _network.Poll(_now);
    }

    /// <summary>The handshake's last ACK waits for the client's first segment (TcpLayer.DeferHandshakeAck); a server
    /// that speaks first (SMTP, FTP) accepts only once it arrives, so a client that waits for the greeting instead
    /// of sending must let it go as it starts waiting, not after the 1 ms an owed ACK may wait.</summary>
    [Test]
    public void AClientWaitingForAServerThatSpeaksFirstSendsTheHandshakeAckAsItStartsWaiting()
    {
        _stack.Tcp.DeferHandshakeAck = true; // as a preloaded process's stack (PreloadProcess)
        Assert.That(_peer.Open(SocketKind.Tcp, out var l), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Bind(l, new Ipv4Endpoint(IpB, 25)), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Listen(l, 16), Is.EqualTo(Errno.Ok));
        int c = _layer.Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        var sa = Addr(IpB, 25);
        Assert.That(_layer.Connect(c, &sa, 16), Is.EqualTo(-(int)Errno.EINPROGRESS));
        // ARP, the SYN, the SYN-ACK: the program's non-blocking reads (EAGAIN) run the layer's stack meanwhile.
        var buf = new byte[64];
        for (int i = 0; i < 50 && _stack.Tcp.Counters.Established == 0; i++)
        {
            Step();
            fixed (byte* p = buf) _layer.Recv(c, p, (nuint)buf.Length, 0);
        }
        Assert.That(_stack.Tcp.Counters.Established, Is.EqualTo(1), "connected");
        Assert.That(_stack.Tcp.Counters.AcksSentBeforeWait + _stack.Tcp.Counters.AcksSentLate, Is.Zero, "the ACK waits");
        // The program waits for the greeting: as it starts to wait, the layer sends the ACK.
        var pfd = new PollFd { Fd = c, Events = 1 /* POLLIN */ };
        var ts = new TimeSpec { Seconds = 0, Nanoseconds = 200_000 };
        Assert.That(_layer.PPoll(&pfd, 1, &ts, null), Is.Zero, "no greeting yet: the peer has not accepted");
        Assert.That(_stack.Tcp.Counters.AcksSentBeforeWait, Is.EqualTo(1), "sent as the program began to wait");
        Assert.That(_stack.Tcp.Counters.AcksSentLate, Is.Zero, "not left for its 1 ms");
        SocketHandle s = default;
        var e = Errno.EAGAIN;
        for (int i = 0; i < 10 && e == Errno.EAGAIN; i++)
        {
            Step();
            e = _peer.Accept(l, out s, out _);
        }
        Assert.That(e, Is.EqualTo(Errno.Ok), "the server accepted: the handshake completed");
        Assert.That(_peer.Send(s, "220 ready\r\n"u8, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 5; i++) Step();
        long got;
        fixed (byte* p = buf) got = _layer.Recv(c, p, (nuint)buf.Length, 0);
        Assert.That(got, Is.EqualTo(11), "the greeting");
        Assert.That(_layer.Close(c), Is.Zero);
        _peer.Close(s);
        _peer.Close(l);
    }

    [Test]
    public void AServerWaitingForTheRestOfARequestAcksAtOnceSoTheNagleHeldSecondWriteComes()
    {
        int l = _layer.Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        var sa = Addr(IpA, 8081);
        Assert.That(_layer.Bind(l, &sa, 16), Is.Zero);
        Assert.That(_layer.Listen(l, 16), Is.Zero);
        Assert.That(_peer.Open(SocketKind.Tcp, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Connect(c, new Ipv4Endpoint(IpA, 8081)), Is.EqualTo(Errno.EINPROGRESS));
        int s = -1;
        for (int i = 0; i < 100 && s < 0; i++)
        {
            Step();
            s = _layer.Accept4(l, null, null, 0);
            if (s == -(int)Errno.EAGAIN) s = -1;
        }
        Assert.That(s, Is.GreaterThan(0), "accepted");
        for (int i = 0; i < 10; i++) Step(); // the handshake's last ACK is in; nothing is in flight

        // The first small write leaves at once; the second waits for its ACK (RFC 9293 §3.7.4).
        Assert.That(_peer.Send(c, "GET /"u8, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        Step();
        Assert.That(_peer.Send(c, " HTTP/1.0\r\n\r\n"u8, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        long segmentsBefore = _peer.Tcp.Counters.SegmentsOut;

        var buf = new byte[256];
        var tv = new TimeVal { Seconds = 0, Microseconds = 200 };
        Assert.That(_layer.SetSockOpt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, (uint)sizeof(TimeVal)), Is.Zero);
        long got;
        fixed (byte* p = buf) got = _layer.Recv(s, p, (nuint)buf.Length, 0);
        Assert.That(got, Is.EqualTo(5), "the first write");
        // The program reads again for the rest and waits: the ACK it owes goes out as it starts waiting.
        fixed (byte* p = buf) got = _layer.Recv(s, p, (nuint)buf.Length, 0);
        Assert.That(got, Is.EqualTo(-(int)Errno.EAGAIN), "SO_RCVTIMEO: the second write is still held by the peer");
        // (Linux rounds SO_RCVTIMEO up to its 4 ms tick, as the layer does: the owed ACK's 1 ms has passed too, so
        // the counters tell which sent it.)
        Assert.That(_stack.Tcp.Counters.AcksSentBeforeWait, Is.EqualTo(1), "sent as the program began to wait");
        Assert.That(_stack.Tcp.Counters.AcksSentLate, Is.Zero, "not left for its 1 ms");
        for (int i = 0; i < 10; i++) Step();
        Assert.That(_peer.Tcp.Counters.SegmentsOut, Is.GreaterThan(segmentsBefore), "the ACK released the peer's second write");
        fixed (byte* p = buf) got = _layer.Recv(s, p, (nuint)buf.Length, 0);
        Assert.That(got, Is.EqualTo(13), "the second write");
        Assert.That(_layer.Close(s), Is.Zero);
        Assert.That(_layer.Close(l), Is.Zero);
        _peer.Close(c);
    }
}

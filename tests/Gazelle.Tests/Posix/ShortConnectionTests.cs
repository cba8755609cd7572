using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// One short HTTP-like connection (Connection: close, as nginx serves wrk) between the POSIX layer, as the server,
/// and a peer stack, as the client, on the in-memory network with a virtual clock: the segments each side sends.
/// Every segment costs both stacks their input and output paths, and at tens of thousands of connections per
/// second they are most of the work.
/// </summary>
[NonParallelizable]
public unsafe class ShortConnectionTests : LayerOverStackFixture
{
    protected override PollPolicy Policy => new() { SpinMicros = 50, BlockMillis = 1 };
    protected override bool VirtualClock => true;

    /// <summary>A few microseconds pass: frames cross, the client stack runs (the server's runs inside the layer's calls).</summary>
    private void Step()
    {
        _now += new TimeSpanMicros(5);
        _network.Poll(_now);
        _peer.Poll(_now);
        _network.Poll(_now);
    }

    [Test]
    public void AShortConnectionTakesThreeSegmentsFromTheClientAndFourFromTheServer()
    {
        int l = _layer.Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        var sa = new SockAddrIn
        {
            Family = AF_INET, PortNetworkOrder = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)8080),
            AddressNetworkOrder = IpA.NetworkOrder,
        };
        Assert.That(_layer.Bind(l, &sa, 16), Is.Zero);
        Assert.That(_layer.Listen(l, 16), Is.Zero);
        // Warm ARP up both ways (a first connection would also carry the ARP exchange).
        Assert.That(_peer.Open(SocketKind.Tcp, out var warm), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Connect(warm, new Ipv4Endpoint(IpA, 9)), Is.EqualTo(Errno.EINPROGRESS));
        for (int i = 0; i < 20; i++) { Step(); _layer.Accept4(l, null, null, 0); }
        _peer.Close(warm);
        for (int i = 0; i < 20; i++) Step();

        _peer.Tcp.DeferHandshakeAck = true; // a preloaded wrk's stack (PreloadProcess)
        long serverOut0 = _stack.Tcp.Counters.SegmentsOut, clientOut0 = _peer.Tcp.Counters.SegmentsOut;
        // The client connects and, once connected, sends its request (wrk does so on EPOLLOUT).
        Assert.That(_peer.Open(SocketKind.Tcp, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Connect(c, new Ipv4Endpoint(IpA, 8080)), Is.EqualTo(Errno.EINPROGRESS));
        var request = "GET /small.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"u8.ToArray();
        bool requested = false;
        int s = -1;
        for (int i = 0; i < 50 && s < 0; i++)
        {
            Step();
            if (!requested && (_peer.GetReadiness(c) & Readiness.Writable) != 0)
            {
                Assert.That(_peer.Send(c, request, MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
                Assert.That(sent, Is.EqualTo(request.Length));
                requested = true;
            }
            s = _layer.Accept4(l, null, null, SOCK_NONBLOCK);
            if (s == -(int)Errno.EAGAIN) s = -1;
        }
        Assert.That(s, Is.GreaterThan(0), "accepted");
        // The server reads the request, answers with headers and body in one writev, and closes (nginx).
        var buf = new byte[4096];
        long got = 0;
        for (int i = 0; i < 50 && got <= 0; i++)
        {
            fixed (byte* p = buf) got = _layer.Recv(s, p, (nuint)buf.Length, 0);
            if (got <= 0) Step();
        }
        Assert.That(got, Is.EqualTo(request.Length));
        var header = "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n"u8.ToArray();
        var body = new byte[1024];
        fixed (byte* h = header)
        fixed (byte* b = body)
        {
            var iov = stackalloc IoVec[2];
            iov[0] = new IoVec { Base = h, Length = (nuint)header.Length };
            iov[1] = new IoVec { Base = b, Length = (nuint)body.Length };
            Assert.That(_layer.WriteV(s, iov, 2), Is.EqualTo(header.Length + body.Length));
        }
        Assert.That(_layer.Close(s), Is.Zero);
        // The client reads the response to its end and closes.
        int received = 0;
        for (int i = 0; i < 50; i++)
        {
            Step();
            var e = _peer.Receive(c, buf, MessageFlags.None, out int n);
            if (e == Errno.Ok && n == 0) break;
            if (e == Errno.Ok) received += n;
        }
        Assert.That(received, Is.EqualTo(header.Length + body.Length));
        Assert.That(_peer.Close(c), Is.EqualTo(Errno.Ok));
        // The server's stack takes in the client's FIN in the layer's next call (an epoll_wait, here an accept).
        for (int i = 0; i < 20; i++)
        {
            Step();
            Assert.That(_layer.Accept4(l, null, null, 0), Is.EqualTo(-(int)Errno.EAGAIN));
        }
        // Let every ACK that waited for a segment to carry it run out.
        for (int i = 0; i < 2 * TcpLayerAckWaitSteps; i++)
        {
            Step();
            _layer.Accept4(l, null, null, 0);
        }
        Assert.Multiple(() =>
        {
            // SYN; the request, carrying the ACK of the SYN-ACK; FIN, carrying the ACK of the response and of the
            // server's FIN.
            Assert.That(_peer.Tcp.Counters.SegmentsOut - clientOut0, Is.EqualTo(3), "client segments");
            // SYN-ACK; the response (one segment for both iovecs), carrying the ACK of the request; FIN; the ACK of the client's FIN.
            Assert.That(_stack.Tcp.Counters.SegmentsOut - serverOut0, Is.EqualTo(4), "server segments");
        });
        Assert.That(_layer.Close(l), Is.Zero);
    }

    /// <summary>Steps of <see cref="Step"/> that cover the longest an owed ACK waits (1 ms).</summary>
    private const int TcpLayerAckWaitSteps = 1000 / 5;
}

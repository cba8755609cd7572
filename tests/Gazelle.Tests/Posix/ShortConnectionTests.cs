using System.Runtime.InteropServices;
using Gazelle.Devices.InMemory;
using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Stack;
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
public unsafe class ShortConnectionTests
{
    private static readonly Ipv4Address IpA = Ipv4Address.Parse("10.62.0.1");
    private static readonly Ipv4Address IpB = Ipv4Address.Parse("10.62.0.2");
    private static readonly Ipv4Address Mask = Ipv4Address.Parse("255.255.255.0");

    private byte* _tableMemory;
    private InMemoryNetwork _network = null!;
    private NetStack _server = null!, _client = null!;
    private PosixLayer _layer = null!;
    private Instant _now = new(1_000_000);

    [SetUp]
    public void SetUp()
    {
        _tableMemory = (byte*)NativeMemory.AllocZeroed(65536);
        _network = new InMemoryNetwork();
        _server = new NetStack(new StackConfig { Address = IpA, Netmask = Mask },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:62:01"), Name = "server" }));
        _client = new NetStack(new StackConfig { Address = IpB, Netmask = Mask },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:62:02"), Name = "client" }));
        // The layer reads the virtual clock: what a side sends never depends on how fast this machine runs.
        _layer = new PosixLayer(_server, new Territory(IpA, Mask, Ipv4Address.Any), new FdKindTable(_tableMemory, 65536),
            () => _now, new PollPolicy { SpinMicros = 50, BlockMillis = 1 });
    }

    [TearDown]
    public void TearDown()
    {
        _layer.Dispose();
        _server.Shutdown();
        _client.Shutdown();
        _network.Dispose();
        NativeMemory.Free(_tableMemory);
    }

    /// <summary>A few microseconds pass: frames cross, the client stack runs (the server's runs inside the layer's calls).</summary>
    private void Step()
    {
        _now += new TimeSpanMicros(5);
        _network.Poll(_now);
        _client.Poll(_now);
        _network.Poll(_now);
    }

    [Test]
    public void AShortConnectionTakesFourSegmentsEachWay()
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
        Assert.That(_client.Open(SocketKind.Tcp, out var warm), Is.EqualTo(Errno.Ok));
        Assert.That(_client.Connect(warm, new Ipv4Endpoint(IpA, 9)), Is.EqualTo(Errno.EINPROGRESS));
        for (int i = 0; i < 20; i++) { Step(); _layer.Accept4(l, null, null, 0); }
        _client.Close(warm);
        for (int i = 0; i < 20; i++) Step();

        long serverOut0 = _server.Tcp.Counters.SegmentsOut, clientOut0 = _client.Tcp.Counters.SegmentsOut;
        // The client connects and, once connected, sends its request (wrk does so on EPOLLOUT).
        Assert.That(_client.Open(SocketKind.Tcp, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(_client.Connect(c, new Ipv4Endpoint(IpA, 8080)), Is.EqualTo(Errno.EINPROGRESS));
        var request = "GET /small.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"u8.ToArray();
        bool requested = false;
        int s = -1;
        for (int i = 0; i < 50 && s < 0; i++)
        {
            Step();
            if (!requested && (_client.GetReadiness(c) & Readiness.Writable) != 0)
            {
                Assert.That(_client.Send(c, request, MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
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
            var e = _client.Receive(c, buf, MessageFlags.None, out int n);
            if (e == Errno.Ok && n == 0) break;
            if (e == Errno.Ok) received += n;
        }
        Assert.That(received, Is.EqualTo(header.Length + body.Length));
        Assert.That(_client.Close(c), Is.EqualTo(Errno.Ok));
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
            // SYN; the ACK of the SYN-ACK; the request; FIN, carrying the ACK of the response and of the server's FIN.
            Assert.That(_client.Tcp.Counters.SegmentsOut - clientOut0, Is.EqualTo(4), "client segments");
            // SYN-ACK; the response (one segment for both iovecs), carrying the ACK of the request; FIN; the ACK of the client's FIN.
            Assert.That(_server.Tcp.Counters.SegmentsOut - serverOut0, Is.EqualTo(4), "server segments");
        });
        Assert.That(_layer.Close(l), Is.Zero);
    }

    /// <summary>Steps of <see cref="Step"/> that cover the longest an owed ACK waits (1 ms).</summary>
    private const int TcpLayerAckWaitSteps = 1000 / 5;
}

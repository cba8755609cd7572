using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// The layer reuses a closed socket's file object (and its epoll registrations) for the next socket: a server
/// that accepts, registers, reads, answers and closes (nginx with Connection: close) and a client that opens,
/// connects, registers, writes, reads and closes (wrk) leave no garbage per connection, a reused object carries nothing of the socket it served before, and a call that waited on the old
/// socket never acts on the new one that took its fd number and its object.
/// </summary>
[NonParallelizable]
public unsafe class SocketRecyclingTests : LayerOverStackFixture
{
    private const int Port = 8080;
    protected override PollPolicy Policy => new() { SpinMicros = 50, BlockMillis = 1 };
    protected override bool VirtualClock => true;

    private static readonly byte[] Request = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"u8.ToArray();
    private readonly byte[] _buffer = new byte[4096];

    private void Step()
    {
        _now += new TimeSpanMicros(5);
        _network.Poll(_now);
        _peer.Poll(_now);
        _network.Poll(_now);
    }

    private int Listener()
    {
        int l = _layer.Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        var sa = Addr(IpA, Port);
        Assert.That(_layer.Bind(l, &sa, 16), Is.Zero);
        Assert.That(_layer.Listen(l, 64), Is.Zero);
        return l;
    }

    /// <summary>The peer connects and sends a request; the layer accepts it (<paramref name="flags"/>).
    /// Returns the accepted fd (or a negative errno) and the peer's socket.</summary>
    private int Connection(int l, int flags, out SocketHandle client)
    {
        if (_peer.Open(SocketKind.Tcp, out client) != Errno.Ok) return -1000;
        if (_peer.Connect(client, new Ipv4Endpoint(IpA, Port)) != Errno.EINPROGRESS) return -1001;
        bool requested = false;
        for (int i = 0; i < 100; i++)
        {
            Step();
            if (!requested && (_peer.GetReadiness(client) & Readiness.Writable) != 0)
            {
                if (_peer.Send(client, Request, MessageFlags.None, out _) != Errno.Ok) return -1002;
                requested = true;
            }
            int s = _layer.Accept4(l, null, null, flags);
            if (s != -(int)Errno.EAGAIN) return s;
        }
        return -(int)Errno.EAGAIN;
    }

    /// <summary>One nginx-shaped connection: accept, EPOLL_CTL_ADD, read the request, answer, close; the peer
    /// reads the answer and closes. Returns 0 or a negative step number.</summary>
    private int ServeOne(int l, int ep)
    {
        int s = Connection(l, SOCK_NONBLOCK, out var client);
        if (s < 0) return -1;
        EpollEvent ev = new() { Events = EPOLLIN | EPOLLRDHUP | EPOLLET, Data = (ulong)s };
        if (_layer.EpollCtl(ep, EPOLL_CTL_ADD, s, &ev) != 0) return -2;
        long got = 0;
        for (int i = 0; i < 100 && got <= 0; i++)
        {
            fixed (byte* p = _buffer) got = _layer.Recv(s, p, (nuint)_buffer.Length, 0);
            if (got <= 0) Step();
        }
        if (got != Request.Length) return -3;
        fixed (byte* p = _buffer) if (_layer.Write(s, p, 512) != 512) return -4;
        if (_layer.Close(s) != 0) return -5;
        for (int i = 0; i < 100; i++)
        {
            Step();
            var e = _peer.Receive(client, _buffer, MessageFlags.None, out int n);
            if (e == Errno.Ok && n == 0) break;
        }
        _peer.Close(client);
        for (int i = 0; i < 10; i++)
        {
            Step();
            _layer.Accept4(l, null, null, 0);
        }
        return 0;
    }

    [Test]
    public void AcceptRegisterAnswerCloseAllocatesNothingPerConnection()
    {
        int l = Listener();
        int ep = Libc.EpollCreate1(0);
        Assert.That(ep, Is.GreaterThanOrEqualTo(0));
        try
        {
            EpollEvent lev = new() { Events = EPOLLIN, Data = (ulong)l };
            Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, l, &lev), Is.Zero);
            // Warm up: the spare lists, the stack's pools and the peer's ports reach their steady state.
            for (int i = 0; i < 40; i++) Assert.That(ServeOne(l, ep), Is.Zero, $"warm-up connection {i}");
            int failed = 0;
            long least = AllocationProbe.LeastAllocated(() =>
            {
                for (int i = 0; i < 40; i++) if (ServeOne(l, ep) != 0) failed++;
            }, out _);
            Assert.That(failed, Is.Zero, "every connection served");
            Assert.That(least, Is.Zero, "bytes allocated by 40 connections (socket files and registrations are reused)");
        }
        finally
        {
            _layer.Close(ep);
            Libc.Close(ep);
            _layer.Close(l);
        }
    }

    /// <summary>One wrk-shaped connection from the layer to the peer: socket, connect, EPOLL_CTL_ADD, write the
    /// request, read the answer to its end, close (the peer answers and closes). 0 or a negative step number.</summary>
    private int ConnectOne(SocketHandle peerListener, int ep)
    {
        int c = _layer.Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (c < 0) return -1;
        var sa = Addr(IpB, Port);
        if (_layer.Connect(c, &sa, 16) != -(int)Errno.EINPROGRESS) return -2;
        EpollEvent ev = new() { Events = EPOLLIN | EPOLLOUT | EPOLLET, Data = (ulong)c };
        if (_layer.EpollCtl(ep, EPOLL_CTL_ADD, c, &ev) != 0) return -3;
        SocketHandle served = SocketHandle.Invalid;
        long wrote = -1;
        for (int i = 0; i < 100 && wrote < 0; i++)
        {
            Step();
            fixed (byte* p = Request) wrote = _layer.Write(c, p, (nuint)Request.Length);
            if (wrote == -(int)Errno.EAGAIN || wrote == -(int)Errno.ENOTCONN) wrote = -1;
        }
        if (wrote != Request.Length) return -4;
        int got = 0;
        for (int i = 0; i < 100 && got < Request.Length; i++)
        {
            Step();
            if (!served.IsValid && _peer.Accept(peerListener, out served, out _) != Errno.Ok) continue;
            if (_peer.Receive(served, _buffer, MessageFlags.None, out int n) == Errno.Ok) got += n;
        }
        if (got != Request.Length) return -5;
        if (_peer.Send(served, _buffer.AsSpan(0, 512), MessageFlags.None, out _) != Errno.Ok) return -6;
        _peer.Close(served);
        long total = 0, r = -1;
        for (int i = 0; i < 100 && r != 0; i++)
        {
            Step();
            fixed (byte* p = _buffer) r = _layer.Recv(c, p, (nuint)_buffer.Length, 0);
            if (r > 0) total += r;
        }
        if (r != 0 || total != 512) return -7;
        if (_layer.Close(c) != 0) return -8;
        for (int i = 0; i < 10; i++) Step();
        return 0;
    }

    [Test]
    public void SocketConnectWriteReadCloseAllocatesNothingPerConnection()
    {
        Assert.That(_peer.Open(SocketKind.Tcp, out var pl), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Bind(pl, new Ipv4Endpoint(IpB, Port)), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Listen(pl, 64), Is.EqualTo(Errno.Ok));
        int ep = Libc.EpollCreate1(0);
        Assert.That(ep, Is.GreaterThanOrEqualTo(0));
        try
        {
            for (int i = 0; i < 40; i++) Assert.That(ConnectOne(pl, ep), Is.Zero, $"warm-up connection {i}");
            int failed = 0;
            long least = AllocationProbe.LeastAllocated(() =>
            {
                for (int i = 0; i < 40; i++) if (ConnectOne(pl, ep) != 0) failed++;
            }, out _);
            Assert.That(failed, Is.Zero, "every connection completed");
            Assert.That(least, Is.Zero, "bytes allocated by 40 client connections (socket files and registrations are reused)");
        }
        finally
        {
            _layer.Close(ep);
            Libc.Close(ep);
            _peer.Close(pl);
        }
    }

    [Test]
    public void AReusedSocketFileStartsFresh()
    {
        int l = Listener();
        int ep = Libc.EpollCreate1(0);
        Assert.That(ep, Is.GreaterThanOrEqualTo(0));
        try
        {
            int s1 = Connection(l, SOCK_NONBLOCK, out var c1);
            Assert.That(s1, Is.GreaterThan(0));
            EpollEvent ev = new() { Events = EPOLLIN, Data = 7 };
            Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, s1, &ev), Is.Zero);
            var tv = new TimeVal { Seconds = 3 };
            Assert.That(_layer.SetSockOpt(s1, SOL_SOCKET, SO_RCVTIMEO, &tv, (uint)sizeof(TimeVal)), Is.Zero);
            Assert.That(_layer.Close(s1), Is.Zero);
            // The next accept takes the lowest free number (s1's) and, in the layer, s1's spare file.
            int s2 = Connection(l, 0, out var c2);
            Assert.That(s2, Is.EqualTo(s1), "the lowest free number again");
            for (int i = 0; i < 20; i++) Step(); // the request arrives: a registration carried over would report it
            int flagsOf = _layer.Fcntl(s2, F_GETFL, 0);
            var tv2 = new TimeVal { Seconds = -1 };
            uint tvLen = (uint)sizeof(TimeVal);
            Assert.That(_layer.GetSockOpt(s2, SOL_SOCKET, SO_RCVTIMEO, &tv2, &tvLen), Is.Zero);
            long timeout = tv2.Seconds * 1_000_000 + tv2.Microseconds;
            // Closing s1 dropped its registration: the new socket on the number is not in the epoll set.
            int mod = _layer.EpollCtl(ep, EPOLL_CTL_MOD, s2, &ev);
            EpollEvent* got = stackalloc EpollEvent[4];
            int reported = _layer.EpollWait(ep, got, 4, 0, null);
            long n;
            fixed (byte* p = _buffer) n = _layer.Recv(s2, p, (nuint)_buffer.Length, MSG_DONTWAIT);
            Assert.Multiple(() =>
            {
                Assert.That(flagsOf & O_NONBLOCK, Is.Zero, "accepted without SOCK_NONBLOCK: blocking");
                Assert.That(timeout, Is.Zero, "SO_RCVTIMEO of the closed socket not carried over");
                Assert.That(mod, Is.EqualTo(-(int)Errno.ENOENT), "no registration carried over");
                Assert.That(reported, Is.Zero, "nothing reported for the new socket");
                Assert.That(n, Is.EqualTo(Request.Length), "the new connection's own request");
            });
            _peer.Close(c1);
            _peer.Close(c2);
            _layer.Close(s2);
        }
        finally
        {
            _layer.Close(ep);
            Libc.Close(ep);
            _layer.Close(l);
        }
    }
}

/// <summary>
/// A call that waits on a socket while another thread closes it and accepts a new connection: the new one takes
/// the same fd number and the same (recycled) file object, and the waiting call must end with EBADF instead of
/// reading the new connection's data (the file's generation tells the two apart). The second connection is
/// established, with its data in, before the waiting starts, so the in-memory network (not thread-safe) is only
/// driven while no other thread is in the layer.
/// </summary>
[NonParallelizable]
public unsafe class SocketRecyclingAcrossThreadsTests : LayerOverStackFixture
{
    private const int Port = 8081;
    protected override PollPolicy Policy => new() { SpinMicros = 0, BlockMillis = 1 };

    /// <summary>Runs the network and both stacks once (only while no other thread is in the layer).</summary>
    private void Step()
    {
        var now = MonotonicClock.Now();
        _network.Poll(now);
        _peer.Poll(now);
        _stack.Poll(now);
        _network.Poll(now);
    }

    private SocketHandle Connect()
    {
        Assert.That(_peer.Open(SocketKind.Tcp, out var client), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Connect(client, new Ipv4Endpoint(IpA, Port)), Is.EqualTo(Errno.EINPROGRESS));
        for (int i = 0; i < 1000 && (_peer.GetReadiness(client) & Readiness.Writable) == 0; i++) Step();
        Assert.That(_peer.GetReadiness(client) & Readiness.Writable, Is.Not.EqualTo((Readiness)0), "connected");
        return client;
    }

    [Test]
    public void AReceiveWaitingOnAClosedSocketNeverReadsTheSocketThatReusedItsFile()
    {
        int l = _layer.Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        var sa = Addr(IpA, Port);
        Assert.That(_layer.Bind(l, &sa, 16), Is.Zero);
        Assert.That(_layer.Listen(l, 16), Is.Zero);
        var c1 = Connect();
        int s1 = _layer.Accept4(l, null, null, 0);
        Assert.That(s1, Is.GreaterThan(0));
        // The second connection waits in the backlog with its data already in.
        var c2 = Connect();
        Assert.That(_peer.Send(c2, "new"u8, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 20; i++) Step();

        long result = long.MinValue;
        int entered = 0;
        var reader = new Thread(() =>
        {
            var buf = new byte[64];
            Volatile.Write(ref entered, 1);
            fixed (byte* p = buf) result = _layer.Recv(s1, p, (nuint)buf.Length, 0); // blocks: c1 sent nothing
        });
        reader.Start();
        // Give the reader time to be inside Recv's wait loop. Had it started only after the accept below, it would
        // legitimately read the new connection: the test would then fail, never pass wrongly.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Volatile.Read(ref entered) == 0 && DateTime.UtcNow < deadline) Thread.Sleep(1);
        Thread.Sleep(300);
        Assert.That(_layer.Close(s1), Is.Zero);
        int s2 = _layer.Accept4(l, null, null, 0);
        Assert.That(s2, Is.EqualTo(s1), "the new connection took the closed number");
        bool ended = reader.Join(TimeSpan.FromSeconds(30));
        Assert.That(ended, Is.True, "the waiting receive ended");
        Assert.That(result, Is.EqualTo(-(int)Errno.EBADF), "the waiting receive saw its socket closed, not the new one's data");
        var buf2 = new byte[64];
        long n;
        fixed (byte* p = buf2) n = _layer.Recv(s2, p, (nuint)buf2.Length, MSG_DONTWAIT);
        Assert.That(n, Is.EqualTo(3), "the new connection's data is still there for its own reader");
        _peer.Close(c1);
        _peer.Close(c2);
        _layer.Close(s2);
        _layer.Close(l);
    }
}

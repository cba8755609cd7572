using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// The POSIX layer over an in-memory stand-in stack and the real kernel: placement (kernel fallback,
/// stack, both), blocking and non-blocking semantics, readiness mixing stack and kernel fds, fd
/// lifetime. Every fd a test opens is closed by the test; teardown checks the layer let go of all.
/// </summary>
[NonParallelizable]
public unsafe class PosixLayerTests
{
    private static readonly Ipv4Address StackIp = Ipv4Address.Parse("10.77.0.2");
    private static readonly Ipv4Address PeerIp = Ipv4Address.Parse("10.77.0.9");
    private byte* _tableMemory;
    private FdKindTable _table;
    private FakeSocketApi _stack = null!;
    private PosixLayer _layer = null!;

    [SetUp]
    public void SetUp()
    {
        _tableMemory = (byte*)NativeMemory.AllocZeroed(65536);
        _table = new FdKindTable(_tableMemory, 65536);
        _stack = new FakeSocketApi(StackIp);
        var territory = new Territory(StackIp, Ipv4Address.Parse("255.255.255.0"), Ipv4Address.Any);
        _layer = new PosixLayer(_stack, territory, _table, MonotonicClock.Now, new PollPolicy { SpinMicros = 50, BlockMillis = 1 });
    }

    [TearDown]
    public void TearDown()
    {
        int held = _layer.HeldFds;
        int open = _stack.OpenSockets;
        _layer.Dispose();
        NativeMemory.Free(_tableMemory);
        Assert.That(held, Is.Zero, "the layer still holds fds after the test closed them all");
        Assert.That(open, Is.Zero, "stack sockets leaked");
    }

    private static SockAddrIn Addr(Ipv4Address a, int port) => new()
    {
        Family = AF_INET,
        PortNetworkOrder = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)port),
        AddressNetworkOrder = a.NetworkOrder,
    };

    private static int Port(SockAddrIn sa) => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(sa.PortNetworkOrder);

    private int Tcp(int flags = 0) => _layer.Socket(AF_INET, SOCK_STREAM | flags, 0);

    private int BindTo(int fd, Ipv4Address a, int port)
    {
        var sa = Addr(a, port);
        return _layer.Bind(fd, &sa, 16);
    }

    private int ConnectTo(int fd, Ipv4Address a, int port)
    {
        var sa = Addr(a, port);
        return _layer.Connect(fd, &sa, 16);
    }

    private int LocalPort(int fd)
    {
        SockAddrIn sa;
        uint len = 16;
        Assert.That(_layer.GetSockName(fd, &sa, &len), Is.Zero);
        return Port(sa);
    }

    private long SendText(int fd, string s, int flags = 0)
    {
        var b = System.Text.Encoding.ASCII.GetBytes(s);
        fixed (byte* p = b) return _layer.Send(fd, p, (nuint)b.Length, flags);
    }

    private string RecvText(int fd, int max = 256, int flags = 0)
    {
        var b = new byte[max];
        long n;
        fixed (byte* p = b) n = _layer.Recv(fd, p, (nuint)max, flags);
        Assert.That(n, Is.GreaterThanOrEqualTo(0), $"recv failed: errno {-n}");
        return System.Text.Encoding.ASCII.GetString(b, 0, (int)n);
    }

    /// <summary>A stack listener on the stack's address and a connected client/server pair.</summary>
    private (int Listener, int Client, int Server) StackPair()
    {
        int l = Tcp();
        Assert.That(BindTo(l, StackIp, 0), Is.Zero);
        Assert.That(_layer.Listen(l, 16), Is.Zero);
        int c = Tcp();
        Assert.That(ConnectTo(c, StackIp, LocalPort(l)), Is.Zero);
        int s = _layer.Accept4(l, null, null, 0);
        Assert.That(s, Is.GreaterThan(0));
        return (l, c, s);
    }

    private void CloseAll(params int[] fds)
    {
        foreach (int fd in fds) Assert.That(_layer.Close(fd), Is.Zero, $"close({fd})");
    }

    [Test]
    public void LoopbackConnectGoesToTheKernelAndLeavesTheTable()
    {
        using var kernelListener = new TcpListener(IPAddress.Loopback, 0);
        kernelListener.Start();
        int port = ((IPEndPoint)kernelListener.LocalEndpoint).Port;
        int fd = Tcp();
        Assert.That(_table[fd], Is.EqualTo(FdKind.Pending), "a new IPv4 socket waits for bind/connect");
        Assert.That(ConnectTo(fd, Ipv4Address.Parse("127.0.0.1"), port), Is.Zero);
        Assert.That(_table[fd], Is.EqualTo(FdKind.Kernel), "loopback belongs to the kernel");
        Assert.That(_layer.HeldFds, Is.Zero);
        using var accepted = kernelListener.AcceptSocket();
        var hello = "hi"u8.ToArray();
        fixed (byte* p = hello) Assert.That(Libc2.Write(fd, p, 2), Is.EqualTo(2));
        var got = new byte[2];
        Assert.That(accepted.Receive(got), Is.EqualTo(2));
        Assert.That(got, Is.EqualTo(hello));
        Assert.That(_stack.OpenSockets, Is.Zero, "the stack never saw it");
        Assert.That(Libc.Close(fd), Is.Zero);
    }

    /// <summary>What the kernel file behind an fd number is ("socket:[inode]", "anon_inode:[eventfd]").</summary>
    private static string KernelFile(int fd) => new FileInfo($"/proc/self/fd/{fd}").LinkTarget ?? "";

    [Test]
    public void ASocketPlacedOnTheStackNeverMakesAKernelSocket()
    {
        int fd = Tcp();
        Assert.That(_table[fd], Is.EqualTo(FdKind.Pending));
        Assert.That(KernelFile(fd), Does.Not.StartWith("socket:"), "socket() only reserves the number");
        var (l, c, s) = StackPair();
        foreach (int x in new[] { l, c, s })
            Assert.That(KernelFile(x), Does.Not.StartWith("socket:"), $"fd {x} is the stack's: no kernel socket behind it");
        int udp = _layer.Socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
        Assert.That(KernelFile(udp), Does.Not.StartWith("socket:"));
        Assert.That(_layer.Fcntl(udp, F_GETFD, 0), Is.EqualTo(FD_CLOEXEC), "SOCK_CLOEXEC holds for the number");
        // A protocol the stack's types do not imply is the kernel's to accept or refuse, at once.
        Assert.That(_layer.Socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), Is.EqualTo(-(int)Errno.EPROTONOSUPPORT));
        CloseAll(fd, l, c, s, udp);
    }

    [Test]
    public void AnUnplacedSocketGetsItsKernelSocketWhenACallNeedsTheKernel()
    {
        // Two numbers of one unplaced socket (close-on-exec on one only) and a second unplaced socket.
        int a = Tcp(SOCK_CLOEXEC);
        int b = _layer.Dup(a);
        int other = Tcp();
        Assert.That(_layer.Fcntl(a, F_SETFL, O_RDWR | O_NONBLOCK), Is.Zero);
        Assert.That(_layer.Fcntl(a, F_GETFL, 0), Is.EqualTo(O_RDWR | O_NONBLOCK));
        Assert.That(_layer.Fcntl(b, F_GETFL, 0), Is.EqualTo(O_RDWR | O_NONBLOCK), "a dup shares the status flags");
        Assert.That(_layer.Fcntl(other, F_GETFL, 0), Is.EqualTo(O_RDWR), "another socket does not");
        Assert.That(Libc.Fcntl(_layer.ReservationFd, F_GETFL, 0) & O_NONBLOCK, Is.Zero, "the shared reservation file is untouched");
        // getsockname is the kernel's answer for an unplaced socket: the kernel socket is made now.
        SockAddrIn sa;
        uint len = 16;
        Assert.That(_layer.GetSockName(a, &sa, &len), Is.Zero);
        Assert.That((Port(sa), sa.AddressNetworkOrder, len), Is.EqualTo((0, 0u, 16u)));
        Assert.That(KernelFile(a), Does.StartWith("socket:"));
        Assert.That(KernelFile(b), Is.EqualTo(KernelFile(a)), "both numbers name the one kernel socket");
        Assert.That(Libc.Fcntl(a, F_GETFD, 0), Is.EqualTo(FD_CLOEXEC));
        Assert.That(Libc.Fcntl(b, F_GETFD, 0), Is.Zero);
        Assert.That(Libc.Fcntl(a, F_GETFL, 0) & O_NONBLOCK, Is.EqualTo(O_NONBLOCK), "O_NONBLOCK reached the kernel socket");
        Assert.That(_table[a], Is.EqualTo(FdKind.Pending), "still unplaced");
        int type = 0;
        len = 4;
        Assert.That(_layer.GetSockOpt(b, SOL_SOCKET, SO_TYPE, &type, &len), Is.Zero);
        Assert.That(type, Is.EqualTo(SOCK_STREAM));
        // ...and it still goes where bind/connect decide: here the stack (its kernel socket now only holds the numbers).
        Assert.That(BindTo(b, StackIp, 0), Is.Zero);
        Assert.That(_table[a], Is.EqualTo(FdKind.Socket));
        // A status flag only a real file takes makes the kernel socket too.
        Assert.That(_layer.Fcntl(other, F_SETFL, O_RDWR | 0x400 /* O_APPEND */), Is.Zero);
        Assert.That(KernelFile(other), Does.StartWith("socket:"));
        Assert.That(_layer.Fcntl(other, F_GETFL, 0), Is.EqualTo(O_RDWR | 0x400));
        int late = Tcp();
        _layer.BeforeFork(); // a forked child sees pending sockets as plain kernel ones: they must be whole
        Assert.That(KernelFile(late), Does.StartWith("socket:"));
        CloseAll(a, b, other, late);
    }

    [Test]
    public void ConnectAcceptOfAQueuedConnectionAndCloseDoNotPollTheStack()
    {
        // A short connection's calls need nothing from the NIC: the stack sends the SYN and the FIN before
        // Connect and Close return, and a connection epoll reported is already queued. Polls (a receive burst
        // and the timers each) are for waiting and for calls that look for news.
        int l = Tcp(SOCK_NONBLOCK);
        Assert.That(BindTo(l, StackIp, 0), Is.Zero);
        Assert.That(_layer.Listen(l, 16), Is.Zero);
        int c = Tcp(SOCK_NONBLOCK);
        int polls = _stack.PollCount;
        Assert.That(ConnectTo(c, StackIp, LocalPort(l)), Is.EqualTo(-(int)Errno.EINPROGRESS));
        Assert.That(_stack.PollCount, Is.EqualTo(polls), "connect polled");
        // The fake completes handshakes in a poll: epoll's, here.
        int ep = Libc.EpollCreate1(0);
        var ev = new EpollEvent { Events = EPOLLIN };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, l, &ev), Is.Zero);
        var got = new EpollEvent[4];
        fixed (EpollEvent* g = got) Assert.That(_layer.EpollWait(ep, g, 4, 1000, null), Is.EqualTo(1));
        polls = _stack.PollCount;
        int s = _layer.Accept4(l, null, null, 0);
        Assert.That(s, Is.GreaterThan(0));
        Assert.That(_stack.PollCount, Is.EqualTo(polls), "accept of a queued connection polled");
        Assert.That(_layer.Accept4(l, null, null, 0), Is.EqualTo(-(int)Errno.EAGAIN));
        Assert.That(_stack.PollCount, Is.EqualTo(polls + 1), "an empty queue looks for news once");
        CloseAll(s);
        Assert.That(_stack.PollCount, Is.EqualTo(polls + 1), "close polled");
        CloseAll(c, l, ep);
    }

    [Test]
    public void OtherSubnetsStayOnTheKernelAndBadArgumentsGetTheKernelsErrno()
    {
        int fd = Tcp();
        var sa = Addr(StackIp, 80);
        Assert.That(_layer.Bind(fd, &sa, 8), Is.EqualTo(-(int)Errno.EINVAL), "short addrlen");
        sa.Family = 10; // AF_INET6 on an AF_INET socket
        Assert.That(_layer.Bind(fd, &sa, 16), Is.EqualTo(-(int)Errno.EINVAL).Or.EqualTo(-(int)Errno.EAFNOSUPPORT));
        Assert.That(_table[fd], Is.EqualTo(FdKind.Pending), "a refused bind decides nothing");
        Assert.That(BindTo(fd, Ipv4Address.Parse("127.0.0.1"), 0), Is.Zero);
        Assert.That(_table[fd], Is.EqualTo(FdKind.Kernel));
        Assert.That(Libc.Close(fd), Is.Zero);
    }

    [Test]
    public void BlockingTcpOverTheStack()
    {
        var (l, c, s) = StackPair();
        foreach (int fd in new[] { l, c, s }) Assert.That(_table[fd], Is.EqualTo(FdKind.Socket));
        Assert.That(SendText(c, "ping"), Is.EqualTo(4));
        Assert.That(RecvText(s), Is.EqualTo("ping"));
        Assert.That(SendText(s, "pong"), Is.EqualTo(4));
        Assert.That(RecvText(c), Is.EqualTo("pong"));
        SockAddrIn peer;
        uint len = 16;
        Assert.That(_layer.GetPeerName(c, &peer, &len), Is.Zero);
        Assert.That(Ipv4Address.FromNetworkOrder(peer.AddressNetworkOrder), Is.EqualTo(StackIp));
        Assert.That(Port(peer), Is.EqualTo(LocalPort(l)));
        Assert.That(ConnectTo(c, StackIp, LocalPort(l)), Is.EqualTo(-(int)Errno.EISCONN));
        CloseAll(c);
        Assert.That(RecvText(s), Is.Empty, "end of stream after the peer closed");
        CloseAll(s, l);
        Assert.That(_table[c], Is.EqualTo(FdKind.Pooled), "closed: the number is kept for the next socket, a closed fd for the program");
    }

    [Test]
    public void FlushAtExitClosesEverySocketTheProcessStillHolds()
    {
        var (l, c, s) = StackPair();
        Assert.That(SendText(c, "last words"), Is.EqualTo(10));
        int pending = Tcp();
        Assert.That(_stack.OpenSockets, Is.EqualTo(3));
        Assert.That(_layer.FlushAtExit(TimeSpanMicros.FromSeconds(1)), Is.True, "nothing left owed");
        Assert.That(_stack.OpenSockets, Is.Zero, "every stack socket closed, as Linux closes an exiting process's fds");
        Assert.That(_layer.HeldFds, Is.Zero);
        foreach (int fd in new[] { l, c, s, pending })
        {
            Assert.That(_table[fd], Is.EqualTo(FdKind.Kernel));
            Assert.That(Libc.Close(fd), Is.Zero, "the kernel fds stay for the kernel to close at exit");
        }
    }

    [Test]
    public void NonBlockingConnectReportsEinprogressThenSoError()
    {
        int l = Tcp();
        Assert.That(BindTo(l, StackIp, 0), Is.Zero);
        Assert.That(_layer.Listen(l, 4), Is.Zero);
        int c = Tcp(SOCK_NONBLOCK);
        Assert.That(ConnectTo(c, StackIp, LocalPort(l)), Is.EqualTo(-(int)Errno.EINPROGRESS));
        var p = new PollFd { Fd = c, Events = (short)EPOLLOUT };
        Assert.That(_layer.Poll(&p, 1, 1000), Is.EqualTo(1));
        Assert.That(p.Revents & (short)EPOLLOUT, Is.Not.Zero);
        int err = -1;
        uint len = 4;
        Assert.That(_layer.GetSockOpt(c, SOL_SOCKET, SO_ERROR, &err, &len), Is.Zero);
        Assert.That(err, Is.Zero);
        int s = _layer.Accept4(l, null, null, SOCK_NONBLOCK);
        Assert.That(s, Is.GreaterThan(0));
        var b = new byte[4];
        fixed (byte* pb = b) Assert.That(_layer.Recv(s, pb, 4, 0), Is.EqualTo(-(int)Errno.EAGAIN), "O_NONBLOCK via accept4");
        Assert.That(_layer.Fcntl(s, F_GETFL, 0) & O_NONBLOCK, Is.Not.Zero);
        int flags = _layer.Fcntl(l, F_GETFL, 0);
        Assert.That(_layer.Fcntl(l, F_SETFL, flags | O_NONBLOCK), Is.Zero);
        Assert.That(_layer.Accept4(l, null, null, 0), Is.EqualTo(-(int)Errno.EAGAIN), "no second connection queued");
        CloseAll(c, s, l);
    }

    [Test]
    public void RefusedBlockingConnectReturnsEconnrefused()
    {
        int c = Tcp();
        Assert.That(ConnectTo(c, StackIp, 9), Is.EqualTo(-(int)Errno.ECONNREFUSED));
        CloseAll(c);
    }

    [Test]
    public void ReceiveTimeoutEndsABlockingRecvWithEagain()
    {
        var (l, c, s) = StackPair();
        var tv = new TimeVal { Microseconds = 30_000 };
        Assert.That(_layer.SetSockOpt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, (uint)sizeof(TimeVal)), Is.Zero);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var b = new byte[8];
        fixed (byte* p = b) Assert.That(_layer.Recv(s, p, 8, 0), Is.EqualTo(-(int)Errno.EAGAIN));
        // At least the timeout; well under 30 s, which is what reading the microseconds as milliseconds would wait.
        Assert.That(sw.ElapsedMilliseconds, Is.InRange(25, 20_000));
        fixed (byte* p = b) Assert.That(_layer.Recv(s, p, 8, MSG_DONTWAIT), Is.EqualTo(-(int)Errno.EAGAIN));
        CloseAll(c, s, l);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void ASpinningWaitReadsTheClockOnlyEveryFewRoundsWhileTheStackIsIdle(bool idle)
    {
        long reads = 0;
        _layer.Dispose();
        _layer = new PosixLayer(_stack, new Territory(StackIp, Ipv4Address.Parse("255.255.255.0"), Ipv4Address.Any), _table,
            () => { reads++; return MonotonicClock.Now(); }, new PollPolicy { SpinMicros = -1 });
        var (l, c, s) = StackPair();
        try
        {
            var tv = new TimeVal { Microseconds = 100_000 };
            Assert.That(_layer.SetSockOpt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, (uint)sizeof(TimeVal)), Is.Zero);
            _stack.Idle = idle;
            int polls0 = _stack.PollCount;
            reads = 0;
            var b = new byte[8];
            fixed (byte* p = b) Assert.That(_layer.Recv(s, p, 8, 0), Is.EqualTo(-(int)Errno.EAGAIN));
            int polls = _stack.PollCount - polls0;
            Assert.That(polls, Is.GreaterThan(20), "the wait spun");
            if (idle) // one read in TimeReuses + 1 rounds, and after each yield
                Assert.That(reads, Is.LessThan(polls / 2), $"{reads} clock reads for {polls} idle polls");
            else // a poll that received something: the next one reads the clock
                Assert.That(reads, Is.GreaterThanOrEqualTo(polls), $"{reads} clock reads for {polls} busy polls");
            Assert.That(_stack.TimeWentBack, Is.False);
        }
        finally
        {
            _stack.Idle = false;
            CloseAll(c, s, l);
        }
    }

    [Test]
    public void ABlockedReceiverIsWokenByASendFromAnotherThread()
    {
        var (l, c, s) = StackPair();
        string got = "";
        var reader = new Thread(() => got = RecvText(s, 64, MSG_WAITALL & 0));
        reader.Start();
        Thread.Sleep(20);
        Assert.That(SendText(c, "late"), Is.EqualTo(4));
        Assert.That(reader.Join(60_000), Is.True, "the reader never woke");
        Assert.That(got, Is.EqualTo("late"));
        CloseAll(c, s, l);
    }

    [Test]
    public void WaitAllGathersSeveralSendsAndPeekLeavesData()
    {
        var (l, c, s) = StackPair();
        Assert.That(SendText(c, "ab"), Is.EqualTo(2));
        Assert.That(RecvText(s, 2, MSG_PEEK), Is.EqualTo("ab"));
        var writer = new Thread(() => { Thread.Sleep(10); SendText(c, "cd"); });
        writer.Start();
        Assert.That(RecvText(s, 4, MSG_WAITALL), Is.EqualTo("abcd"));
        writer.Join();
        CloseAll(c, s, l);
    }

    [Test]
    public void SendToAClosedPeerIsEpipe()
    {
        var (l, c, s) = StackPair();
        CloseAll(s);
        Assert.That(SendText(c, "x", MSG_NOSIGNAL), Is.EqualTo(-(int)Errno.EPIPE));
        CloseAll(c, l);
    }

    [Test]
    public void VectoredIoAndMessages()
    {
        var (l, c, s) = StackPair();
        var a = "he"u8.ToArray();
        var b = "llo"u8.ToArray();
        fixed (byte* pa = a)
        fixed (byte* pb = b)
        {
            var iov = stackalloc IoVec[2];
            iov[0] = new IoVec { Base = pa, Length = 2 };
            iov[1] = new IoVec { Base = pb, Length = 3 };
            Assert.That(_layer.WriteV(c, iov, 2), Is.EqualTo(5));
            var m = new MsgHdr { Iov = iov, IovLength = 2 };
            Assert.That(_layer.SendMsg(c, &m, 0), Is.EqualTo(5));
        }
        var r1 = new byte[3];
        var r2 = new byte[7];
        fixed (byte* p1 = r1)
        fixed (byte* p2 = r2)
        {
            var iov = stackalloc IoVec[2];
            iov[0] = new IoVec { Base = p1, Length = 3 };
            iov[1] = new IoVec { Base = p2, Length = 7 };
            var m = new MsgHdr { Iov = iov, IovLength = 2 };
            Assert.That(_layer.RecvMsg(s, &m, 0), Is.EqualTo(10));
        }
        Assert.That(System.Text.Encoding.ASCII.GetString(r1) + System.Text.Encoding.ASCII.GetString(r2), Is.EqualTo("hellohello"));
        int avail = -1;
        Assert.That(_layer.Ioctl(s, FIONREAD, &avail), Is.Zero);
        Assert.That(avail, Is.Zero);
        CloseAll(c, s, l);
    }

    [Test]
    public void ListenOnAnyAcceptsFromTheKernelAndFromTheStack()
    {
        int l = Tcp();
        Assert.That(BindTo(l, Ipv4Address.Any, 0), Is.Zero);
        Assert.That(_layer.Listen(l, 8), Is.Zero);
        int port = LocalPort(l);
        Assert.That(_table[l], Is.EqualTo(FdKind.Pending), "served by both sides");
        using (var kernelClient = new TcpClient())
        {
            kernelClient.Connect(IPAddress.Loopback, port);
            int k = _layer.Accept4(l, null, null, 0);
            Assert.That(k, Is.GreaterThan(0));
            Assert.That(_table[k], Is.EqualTo(FdKind.Kernel), "a loopback peer's connection is the kernel's");
            kernelClient.GetStream().Write("k"u8);
            var one = new byte[1];
            fixed (byte* p = one) Assert.That(Libc.Read(k, p, 1), Is.EqualTo(1));
            Assert.That(Libc.Close(k), Is.Zero);
        }
        int c = Tcp();
        Assert.That(ConnectTo(c, StackIp, port), Is.Zero);
        SockAddrIn from;
        uint len = 16;
        int s = _layer.Accept4(l, &from, &len, 0);
        Assert.That(s, Is.GreaterThan(0));
        Assert.That(_table[s], Is.EqualTo(FdKind.Socket));
        Assert.That(Port(from), Is.EqualTo(LocalPort(c)));
        CloseAll(c, s, l);
    }

    /// <summary>With the shim's count of kernel fds per epoll (shim/gazelle_abi.h), epoll_wait skips asking the kernel
    /// only for a set that holds none; the layer's own kernel registrations are counted too, and a set the shim gave
    /// up on (a dup, a fork) is always asked.</summary>
    [Test]
    public void EpollWaitAsksTheKernelOnlyWhenTheSetMayHoldKernelFds()
    {
        int* counts = (int*)NativeMemory.AllocZeroed(65536, sizeof(int));
        try
        {
            _layer.Dispose();
            var territory = new Territory(StackIp, Ipv4Address.Parse("255.255.255.0"), Ipv4Address.Any);
            _layer = new PosixLayer(_stack, territory, _table, MonotonicClock.Now, new PollPolicy { SpinMicros = 50, BlockMillis = 1 },
                epollKernelFds: (nint)counts);
            var (l, c, s) = StackPair();
            int ep = Libc.EpollCreate1(0);
            counts[ep] = 1; // as the shim's epoll_create1 marks it: no kernel fd yet
            int efd = Libc.EventFd(0, 0);
            var ev = new EpollEvent { Events = EPOLLIN, Data = 1 };
            Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, efd, &ev), Is.Zero);
            Assert.That(counts[ep], Is.EqualTo(2), "the layer counts the kernel fd it registers");
            ev.Data = 2;
            Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, s, &ev), Is.Zero);
            ulong one = 1;
            Libc2.Write(efd, &one, 8);
            SendText(c, "x");
            var events = stackalloc EpollEvent[4];
            Assert.That(CallsUntilBoth(ep, events, 4), Is.LessThanOrEqualTo(PosixLayer.KernelCheckEvery));
            for (int i = 0; i < 3; i++) Assert.That(_layer.EpollWait(ep, events, 4, 1000, null), Is.EqualTo(2), "both, at every call once seen");
            Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_DEL, efd, &ev), Is.Zero);
            Assert.That(counts[ep], Is.EqualTo(1));
            long checks = _layer.KernelReadinessChecks;
            for (int i = 0; i < 3; i++) Assert.That(_layer.EpollWait(ep, events, 4, 1000, null), Is.EqualTo(1));
            Assert.That(_layer.KernelReadinessChecks, Is.EqualTo(checks), "no kernel fd in the set: the kernel is not asked");
            // Given up (the shim saw the epoll dup'd or shared with a fork child): registrations it cannot count.
            counts[ep] = -(1 << 30);
            Assert.That(Libc.EpollCtl(ep, EPOLL_CTL_ADD, efd, &ev), Is.Zero, "behind the layer's back, as through a dup");
            Assert.That(_layer.EpollWait(ep, events, 4, 1000, null), Is.EqualTo(2));
            Assert.That(_layer.KernelReadinessChecks, Is.GreaterThan(checks));
            RecvText(s);
            CloseAll(c, s, l, ep);
            Assert.That(Libc.Close(efd), Is.Zero);
        }
        finally
        {
            NativeMemory.Free(counts);
        }
    }

    /// <summary>epoll_wait calls until one reports two events (a ready stack socket and a ready kernel fd).</summary>
    private int CallsUntilBoth(int ep, EpollEvent* events, int max)
    {
        int calls = 0, n;
        do n = _layer.EpollWait(ep, events, max, 1000, null);
        while (++calls < 100 && n != 2);
        return calls;
    }

    /// <summary>While stack sockets keep epoll_wait busy, the kernel is asked about the set's kernel fds every
    /// KernelCheckEvery calls, not at each: a ready kernel fd is reported within that many calls, even when ready
    /// stack sockets alone would fill the events array, and at every call once it was seen ready.</summary>
    [Test]
    public void EpollReportsAReadyKernelFdWithinKernelCheckEveryCallsOfABusyStack()
    {
        var (l, c, s) = StackPair();
        int ep = Libc.EpollCreate1(0);
        int efd = Libc.EventFd(0, 0);
        var ev = new EpollEvent { Events = EPOLLIN, Data = 111 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, s, &ev), Is.Zero);
        ev = new EpollEvent { Events = EPOLLIN, Data = 222 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, efd, &ev), Is.Zero);
        SendText(c, "x"); // level-triggered and never read: reported at every call
        var events = stackalloc EpollEvent[1];
        long checks = _layer.KernelReadinessChecks;
        const int calls = 4 * PosixLayer.KernelCheckEvery;
        for (int i = 0; i < calls; i++)
        {
            Assert.That(_layer.EpollWait(ep, events, 1, 1000, null), Is.EqualTo(1));
            Assert.That(events[0].Data, Is.EqualTo(111UL));
        }
        Assert.That(_layer.KernelReadinessChecks - checks, Is.InRange(calls / PosixLayer.KernelCheckEvery - 1, calls / PosixLayer.KernelCheckEvery + 1),
            "the kernel is asked every KernelCheckEvery calls while the stack has events");
        ulong one = 1;
        Libc2.Write(efd, &one, 8);
        int until = 0;
        do Assert.That(_layer.EpollWait(ep, events, 1, 1000, null), Is.EqualTo(1));
        while (++until < 100 && events[0].Data != 222);
        Assert.That(until, Is.LessThanOrEqualTo(PosixLayer.KernelCheckEvery), "the eventfd within KernelCheckEvery calls, though the socket fills the array");
        var both = stackalloc EpollEvent[4];
        for (int i = 0; i < 3; i++) Assert.That(_layer.EpollWait(ep, both, 4, 1000, null), Is.EqualTo(2), "both at every call once seen ready");
        Libc.Read(efd, &one, 8);
        RecvText(s);
        CloseAll(c, s, l, ep);
        Assert.That(Libc.Close(efd), Is.Zero);
    }

    [Test]
    public void EpollReportsStackSocketsAndKernelFdsTogether()
    {
        var (l, c, s) = StackPair();
        int ep = Libc.EpollCreate1(0);
        int efd = Libc.EventFd(0, 0);
        var ev = new EpollEvent { Events = EPOLLIN, Data = 111 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, s, &ev), Is.Zero);
        Assert.That(_table[ep], Is.EqualTo(FdKind.Epoll));
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, s, &ev), Is.EqualTo(-(int)Errno.EEXIST));
        ev = new EpollEvent { Events = EPOLLIN, Data = 222 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, efd, &ev), Is.Zero, "a kernel fd goes to the kernel epoll");
        var events = stackalloc EpollEvent[4];
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero);
        ulong one = 1;
        Libc2.Write(efd, &one, 8);
        SendText(c, "x");
        Assert.That(CallsUntilBoth(ep, events, 4), Is.LessThanOrEqualTo(PosixLayer.KernelCheckEvery), "both within KernelCheckEvery calls");
        var datas = new[] { events[0].Data, events[1].Data }.Order().ToArray();
        Assert.That(datas, Is.EqualTo(new ulong[] { 111, 222 }));
        // Level-triggered: still readable, reported again.
        Assert.That(_layer.EpollWait(ep, events, 1, 0, null), Is.EqualTo(1));
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_DEL, efd, null), Is.Zero);
        // Edge-triggered: once per new readiness.
        ev = new EpollEvent { Events = EPOLLIN | EPOLLET, Data = 111 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_MOD, s, &ev), Is.Zero);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1));
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "no new edge");
        RecvText(s);
        SendText(c, "y");
        Assert.That(_layer.EpollWait(ep, events, 4, 100, null), Is.EqualTo(1), "new data, new edge");
        // One-shot: once until re-armed.
        ev = new EpollEvent { Events = EPOLLIN | EPOLLONESHOT, Data = 111 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_MOD, s, &ev), Is.Zero);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1));
        Assert.That(_layer.EpollWait(ep, events, 4, 20, null), Is.Zero, "disarmed; the timeout is honoured");
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_MOD, s, &ev), Is.Zero);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1), "re-armed by MOD");
        // Peer closes: readable (EOF) and RDHUP when asked for.
        ev = new EpollEvent { Events = EPOLLIN | EPOLLRDHUP, Data = 111 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_MOD, s, &ev), Is.Zero);
        CloseAll(c);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1));
        Assert.That(events[0].Events & EPOLLRDHUP, Is.Not.Zero);
        CloseAll(s, l, ep);
        Assert.That(Libc.Close(efd), Is.Zero);
    }

    /// <summary>Accepted sockets' numbers are duplicates of one eventfd the layer keeps: each is still the
    /// lowest free number with its own close-on-exec, closing one leaves the others alone, and the layer
    /// makes a new eventfd if its own was closed behind its back.</summary>
    [Test]
    public void AcceptedSocketsGetTheLowestFreeNumberAndTheirOwnCloseOnExec()
    {
        int l = Tcp();
        Assert.That(BindTo(l, StackIp, 0), Is.Zero);
        Assert.That(_layer.Listen(l, 16), Is.Zero);
        int Accepted(int flags, out int client)
        {
            client = Tcp();
            Assert.That(ConnectTo(client, StackIp, LocalPort(l)), Is.Zero);
            int s = _layer.Accept4(l, null, null, flags);
            Assert.That(s, Is.GreaterThan(0));
            Assert.That(_table[s], Is.EqualTo(FdKind.Socket));
            return s;
        }
        int s1 = Accepted(SOCK_CLOEXEC, out int c1);
        int s2 = Accepted(0, out int c2);
        Assert.That(s2, Is.Not.EqualTo(s1));
        Assert.That(_layer.Fcntl(s1, F_GETFD, 0), Is.EqualTo(FD_CLOEXEC), "SOCK_CLOEXEC asked");
        Assert.That(_layer.Fcntl(s2, F_GETFD, 0), Is.Zero, "not asked");
        Assert.That(Libc.Fcntl(s2, F_GETFD, 0), Is.EqualTo(FD_CLOEXEC), "the kernel's number never crosses exec (a stack connection cannot serve another image)");
        CloseAll(s1, c1);
        int s3 = Accepted(0, out int c3);
        int probe = Libc.EventFd(0, 0);
        Assert.That(s3, Is.LessThan(probe), "the lowest free number, as the kernel's accept gives");
        Assert.That(Libc.Close(probe), Is.Zero);
        SendText(c2, "two");
        Assert.That(RecvText(s2), Is.EqualTo("two"), "closing another accepted socket left this one alone");
        // The layer's own eventfd closed behind its back: the next accept makes another.
        Assert.That(Libc.Close(_layer.ReservationFd), Is.Zero);
        int s4 = Accepted(SOCK_CLOEXEC, out int c4);
        SendText(c4, "four");
        Assert.That(RecvText(s4), Is.EqualTo("four"));
        CloseAll(s2, c2, s3, c3, s4, c4, l);
    }

    /// <summary>A waiting epoll_wait that found nothing stops asking every socket while no socket event
    /// is journaled: what arrives meanwhile, from another thread here, must still end it.</summary>
    [Test]
    public void LevelTriggeredEpollWaitSeesWhatArrivesWhileItWaits()
    {
        var (l, c, s) = StackPair();
        int ep = Libc.EpollCreate1(0);
        var ev = new EpollEvent { Events = EPOLLIN, Data = 7 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, s, &ev), Is.Zero);
        ev = new EpollEvent { Events = EPOLLIN, Data = 8 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, l, &ev), Is.Zero);
        var events = stackalloc EpollEvent[4];
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "nothing ready yet");
        var sender = new Thread(() => { Thread.Sleep(100); SendText(c, "late"); });
        sender.Start();
        int n = _layer.EpollWait(ep, events, 4, 20_000, null);
        sender.Join();
        Assert.That(n, Is.EqualTo(1), "data sent while epoll_wait waited");
        Assert.That(events[0].Data, Is.EqualTo(7UL));
        Assert.That(RecvText(s), Is.EqualTo("late"));
        // A connection queued on the listener while it waits.
        int c2 = Tcp();
        var connector = new Thread(() => { Thread.Sleep(100); ConnectTo(c2, StackIp, LocalPort(l)); });
        connector.Start();
        n = _layer.EpollWait(ep, events, 4, 20_000, null);
        connector.Join();
        Assert.That(n, Is.EqualTo(1), "a connection queued while epoll_wait waited");
        Assert.That(events[0].Data, Is.EqualTo(8UL));
        int s2 = _layer.Accept4(l, null, null, 0);
        Assert.That(s2, Is.GreaterThan(0));
        CloseAll(c2, s2, c, s, l, ep);
    }

    [Test]
    public void EdgeTriggeredEpollReportsArrivalsNotConsumption()
    {
        var (l, c, s) = StackPair();
        int ep = Libc.EpollCreate1(0);
        var events = stackalloc EpollEvent[4];
        var ev = new EpollEvent { Events = EPOLLIN | EPOLLET, Data = 1 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, s, &ev), Is.Zero);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "idle");
        SendText(c, "a");
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1), "an arrival");
        SendText(c, "b");
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1), "a second arrival, the first unread");
        Assert.That(RecvText(s, 1), Is.EqualTo("a"));
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "reading is no edge");
        // Reported with the whole readiness of the moment: an arrival on IN|OUT shows both.
        ev = new EpollEvent { Events = EPOLLIN | EPOLLOUT | EPOLLET, Data = 1 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_MOD, s, &ev), Is.Zero);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1), "MOD arms an edge");
        SendText(s, "r");
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "sending with room to spare is no edge");
        SendText(c, "d");
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1));
        Assert.That(events[0].Events & (EPOLLIN | EPOLLOUT), Is.EqualTo(EPOLLIN | EPOLLOUT));
        // A listener: every queued connection is an edge.
        ev = new EpollEvent { Events = EPOLLIN | EPOLLET, Data = 2 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, l, &ev), Is.Zero);
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_DEL, s, null), Is.Zero);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero);
        int c1 = Tcp(), c2 = Tcp();
        Assert.That(ConnectTo(c1, StackIp, LocalPort(l)), Is.Zero);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1));
        Assert.That(ConnectTo(c2, StackIp, LocalPort(l)), Is.Zero);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1), "another connection, none accepted");
        int a1 = _layer.Accept4(l, null, null, 0);
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "accepting is no edge");
        int a2 = _layer.Accept4(l, null, null, 0);
        CloseAll(a1, a2, c1, c2, c, s, l, ep);
    }

    [Test]
    public void PollAndSelectMixStackAndKernelFds()
    {
        var (l, c, s) = StackPair();
        int efd = Libc.EventFd(0, 0);
        var fds = stackalloc PollFd[3];
        fds[0] = new PollFd { Fd = s, Events = (short)EPOLLIN };
        fds[1] = new PollFd { Fd = efd, Events = (short)EPOLLIN };
        fds[2] = new PollFd { Fd = -1, Events = (short)EPOLLIN };
        Assert.That(_layer.Poll(fds, 3, 10), Is.Zero, "nothing ready; the timeout is honoured");
        ulong one = 1;
        Libc2.Write(efd, &one, 8);
        Assert.That(_layer.Poll(fds, 3, 0), Is.EqualTo(1));
        Assert.That(fds[1].Revents, Is.EqualTo((short)EPOLLIN));
        SendText(c, "z");
        Assert.That(_layer.Poll(fds, 3, 0), Is.EqualTo(2));
        Assert.That(fds[0].Revents & (short)EPOLLIN, Is.Not.Zero);
        Assert.That(fds[2].Revents, Is.Zero);

        var read = stackalloc ulong[16];
        read[s / 64] |= 1UL << (s % 64);
        read[efd / 64] |= 1UL << (efd % 64);
        int nfds = Math.Max(s, efd) + 1;
        var tv = new TimeVal();
        Assert.That(_layer.Select(nfds, read, null, null, &tv), Is.EqualTo(2));
        Assert.That(read[s / 64] & (1UL << (s % 64)), Is.Not.Zero);
        RecvText(s);
        Libc.Read(efd, &one, 8);
        for (int i = 0; i < 16; i++) read[i] = 0;
        read[s / 64] |= 1UL << (s % 64);
        read[efd / 64] |= 1UL << (efd % 64);
        tv = new TimeVal { Microseconds = 5000 };
        Assert.That(_layer.Select(nfds, read, null, null, &tv), Is.Zero);
        Assert.That(read[s / 64] | read[efd / 64], Is.Zero, "sets cleared when nothing is ready");

        // A set of stack sockets alone asks the kernel nothing (no pselect per call); with the eventfd it does.
        SendText(c, "y");
        long checks = _layer.KernelReadinessChecks;
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 16; i++) read[i] = 0;
            read[s / 64] |= 1UL << (s % 64);
            tv = new TimeVal();
            Assert.That(_layer.Select(s + 1, read, null, null, &tv), Is.EqualTo(1));
        }
        Assert.That(_layer.KernelReadinessChecks, Is.EqualTo(checks), "stack fds only: no kernel check");
        read[efd / 64] |= 1UL << (efd % 64);
        tv = new TimeVal();
        Assert.That(_layer.Select(nfds, read, null, null, &tv), Is.EqualTo(1));
        Assert.That(_layer.KernelReadinessChecks, Is.GreaterThan(checks), "a kernel fd in the set is asked about");
        RecvText(s);
        CloseAll(c, s, l);
        Assert.That(Libc.Close(efd), Is.Zero);
    }

    [Test]
    public void DupSharesTheSocketUntilTheLastFdCloses()
    {
        var (l, c, s) = StackPair();
        int d = _layer.Dup(c);
        Assert.That(d, Is.GreaterThan(0).And.Not.EqualTo(c));
        Assert.That(_table[d], Is.EqualTo(FdKind.Socket));
        int d2 = _layer.Fcntl(c, F_DUPFD_CLOEXEC, 1000);
        Assert.That(d2, Is.GreaterThanOrEqualTo(1000));
        Assert.That(_layer.Fcntl(d2, F_GETFD, 0), Is.EqualTo(FD_CLOEXEC));
        CloseAll(c);
        Assert.That(SendText(d, "via dup"), Is.EqualTo(7), "the socket lives while a dup does");
        Assert.That(RecvText(s), Is.EqualTo("via dup"));
        // dup2 onto a stack fd replaces it.
        int efd = Libc.EventFd(0, 0);
        Assert.That(_layer.Dup2(efd, d2), Is.EqualTo(d2));
        Assert.That(_table[d2], Is.EqualTo(FdKind.Kernel));
        Assert.That(Libc.Close(d2), Is.Zero);
        Assert.That(Libc.Close(efd), Is.Zero);
        CloseAll(d);
        Assert.That(RecvText(s), Is.Empty, "closing the last dup closed the connection");
        CloseAll(s, l);
    }

    // ---- the pool of reserved numbers (PosixLayer.FdNumbers.cs) ------------------------------------

    /// <summary>Whether the kernel has <paramref name="fd"/> open (whatever the layer says about it).</summary>
    private static bool KernelHas(int fd) => Libc.Fcntl(fd, F_GETFD, 0) >= 0;

    [Test]
    public void DiagnosticsReadUnderInspectDoNotTakeTheLockAgain()
    {
        // The preload's stats read these inside Inspect, under the layer's lock, which is not reentrant: the tests'
        // layer checks the owner and throws where the preload's would hang.
        var (l, c, s) = StackPair();
        CloseAll(s);
        int held = -1, pooled = -1, stackFds = -1;
        Assert.That(_layer.Inspect(TimeSpan.FromMinutes(1), () => (held, pooled, stackFds) = (_layer.HeldFds, _layer.PooledNumbers, _layer.StackSocketFds)),
            Is.True);
        Assert.That((held, pooled, stackFds), Is.EqualTo((2, 1, 2)));
        CloseAll(c);
        CloseAll(l);
    }

    [Test]
    public void AClosedStackSocketsNumberIsKeptForTheNextSocketWithoutASystemCall()
    {
        var (l, c, s) = StackPair();
        long fromPool = _layer.NumbersFromPool;
        CloseAll(s);
        Assert.That(_table[s], Is.EqualTo(FdKind.Pooled));
        Assert.That(_layer.PooledNumbers, Is.EqualTo(1));
        Assert.That(KernelHas(s), Is.True, "the number stays reserved in the kernel");
        int probe = Libc.EventFd(0, EFD_CLOEXEC);
        Assert.That(probe, Is.Not.EqualTo(s), "the kernel cannot hand a pooled number out");
        // LIFO: the next socket and the next accepted connection take the numbers closed last.
        CloseAll(c);
        int c2 = Tcp();
        Assert.That(c2, Is.EqualTo(c));
        Assert.That(ConnectTo(c2, StackIp, LocalPort(l)), Is.Zero);
        int s2 = _layer.Accept4(l, null, null, 0);
        Assert.That(s2, Is.EqualTo(s));
        Assert.That(_layer.NumbersFromPool - fromPool, Is.EqualTo(2));
        Assert.That(_layer.PooledNumbers, Is.Zero);
        Assert.That((_table[c2], _table[s2]), Is.EqualTo((FdKind.Socket, FdKind.Socket)));
        Assert.That(SendText(c2, "again"), Is.EqualTo(5));
        Assert.That(RecvText(s2), Is.EqualTo("again"));
        CloseAll(c2, s2, l);
        Assert.That(Libc.Close(probe), Is.Zero);
    }

    [Test]
    public void APooledNumberIsAClosedFdForTheProgram()
    {
        var (l, c, s) = StackPair();
        CloseAll(s);
        Assert.That(_layer.Close(s), Is.EqualTo(-(int)Errno.EBADF), "closed twice");
        Assert.That(_layer.Fcntl(s, F_GETFD, 0), Is.EqualTo(-(int)Errno.EBADF));
        Assert.That(_layer.Fcntl(s, F_GETFL, 0), Is.EqualTo(-(int)Errno.EBADF));
        Assert.That(_layer.Dup(s), Is.EqualTo(-(int)Errno.EBADF));
        Assert.That(_layer.Dup2(s, 900), Is.EqualTo(-(int)Errno.EBADF));
        int ep = Libc.EpollCreate1(0);
        var ev = new EpollEvent { Events = EPOLLIN | EPOLLOUT };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, s, &ev), Is.EqualTo(-(int)Errno.EBADF));
        var pfd = new PollFd { Fd = s, Events = (short)(EPOLLIN | EPOLLOUT) };
        Assert.That(_layer.Poll(&pfd, 1, 0), Is.EqualTo(1));
        Assert.That(pfd.Revents, Is.EqualTo(POLLNVAL), "poll of a closed fd");
        ulong* set = stackalloc ulong[16];
        set[s / 64] = 1UL << (s % 64);
        var tv = new TimeVal();
        Assert.That(_layer.Select(s + 1, null, set, null, &tv), Is.EqualTo(-(int)Errno.EBADF), "select of a closed fd");
        Assert.That(_table[s], Is.EqualTo(FdKind.Pooled), "none of that disturbed the pool");
        // dup2 onto it: the program gets that number, and the pool forgets it.
        int efd = Libc.EventFd(5, EFD_CLOEXEC);
        Assert.That(_layer.Dup2(efd, s), Is.EqualTo(s));
        Assert.That(_table[s], Is.EqualTo(FdKind.Kernel));
        Assert.That(_layer.PooledNumbers, Is.Zero);
        ulong count = 0;
        Assert.That(Libc.Read(s, &count, 8), Is.EqualTo(8));
        Assert.That(count, Is.EqualTo(5ul), "the number is the program's eventfd now");
        int next = Tcp();
        Assert.That(next, Is.Not.EqualTo(s), "the pool no longer hands it out");
        CloseAll(next, c, l);
        Assert.That(_layer.Close(s), Is.Zero);
        Assert.That(Libc.Close(efd), Is.Zero);
        Assert.That(Libc.Close(ep), Is.Zero);
    }

    [Test]
    public void CloseOnExecIsTheProgramsPerNumberWhileTheKernelsNumberAlwaysHasIt()
    {
        int a = Tcp(SOCK_CLOEXEC), b = Tcp();
        Assert.That((_layer.Fcntl(a, F_GETFD, 0), _layer.Fcntl(b, F_GETFD, 0)), Is.EqualTo((FD_CLOEXEC, 0)));
        Assert.That((Libc.Fcntl(a, F_GETFD, 0), Libc.Fcntl(b, F_GETFD, 0)), Is.EqualTo((FD_CLOEXEC, FD_CLOEXEC)),
            "reserved numbers never cross exec");
        Assert.That(_layer.Fcntl(b, F_SETFD, FD_CLOEXEC), Is.Zero);
        Assert.That(_layer.Fcntl(a, F_SETFD, 0), Is.Zero);
        Assert.That((_layer.Fcntl(a, F_GETFD, 0), _layer.Fcntl(b, F_GETFD, 0)), Is.EqualTo((0, FD_CLOEXEC)));
        // Pooled and handed out again: the new socket's own flag, whatever the last owner's was.
        CloseAll(b);
        int b2 = Tcp();
        Assert.That(b2, Is.EqualTo(b));
        Assert.That(_layer.Fcntl(b2, F_GETFD, 0), Is.Zero);
        CloseAll(b2);
        int b3 = Tcp(SOCK_CLOEXEC);
        Assert.That(_layer.Fcntl(b3, F_GETFD, 0), Is.EqualTo(FD_CLOEXEC));
        // A lazy socket that needs the kernel gets its kernel socket with the program's flag.
        SockAddrIn sa;
        uint len = 16;
        Assert.That(_layer.GetSockName(a, &sa, &len), Is.Zero);
        Assert.That(_layer.GetSockName(b3, &sa, &len), Is.Zero);
        Assert.That(KernelFile(a), Does.StartWith("socket:"));
        Assert.That((Libc.Fcntl(a, F_GETFD, 0), Libc.Fcntl(b3, F_GETFD, 0)), Is.EqualTo((0, FD_CLOEXEC)));
        Assert.That((_layer.Fcntl(a, F_GETFD, 0), _layer.Fcntl(b3, F_GETFD, 0)), Is.EqualTo((0, FD_CLOEXEC)));
        // A kernel socket's number is not a reservation: closing it closes it.
        CloseAll(a);
        Assert.That(_table[a], Is.EqualTo(FdKind.Kernel));
        Assert.That(KernelHas(a), Is.False);
        CloseAll(b3);
    }

    [Test]
    public void ThePoolIsBounded()
    {
        var fds = new List<int>();
        for (int i = 0; i < PosixLayer.MaxPooledNumbers + 8; i++) fds.Add(Tcp());
        foreach (int fd in fds) CloseAll(fd);
        Assert.That(_layer.PooledNumbers, Is.EqualTo(PosixLayer.MaxPooledNumbers));
        Assert.That(fds.Count(fd => KernelHas(fd)), Is.EqualTo(PosixLayer.MaxPooledNumbers), "the rest were closed");
        Assert.That(fds.Count(fd => _table[fd] == FdKind.Pooled), Is.EqualTo(PosixLayer.MaxPooledNumbers));
    }

    /// <summary>close_range/closefrom close what the pool kept: the layer must forget those numbers first, or it
    /// would hand out a number the kernel gave to another file meanwhile.</summary>
    [Test]
    public void CloseRangeEmptiesThePoolAndClosesStackSocketsInIt()
    {
        var (l, c, s) = StackPair();
        int pooled = Tcp();
        CloseAll(pooled);
        int lo = Math.Min(Math.Min(c, s), pooled), hi = Math.Max(Math.Max(c, s), pooled);
        Assert.That(l, Is.LessThan(lo), "the listener stays out of the range");
        Assert.That(_layer.CloseRange((uint)lo, (uint)hi, 0), Is.Zero);
        Assert.That(CloseRangeSyscall((uint)lo, (uint)hi, 0), Is.Zero);
        Assert.That(_layer.PooledNumbers, Is.Zero);
        Assert.That(_stack.OpenSockets, Is.EqualTo(1), "the connection's two ends were closed; the listener lives");
        for (int fd = lo; fd <= hi; fd++) Assert.That(_table[fd], Is.EqualTo(FdKind.Kernel));
        // The kernel hands those numbers out again; the layer's next socket does not collide with them.
        var taken = new List<int>();
        for (int i = 0; i <= hi - lo; i++) taken.Add(Libc.EventFd(0, EFD_CLOEXEC));
        int next = Tcp();
        Assert.That(taken, Does.Not.Contain(next));
        Assert.That(taken, Does.Contain(pooled));
        foreach (int fd in taken) Assert.That(Libc.Close(fd), Is.Zero);
        // CLOSE_RANGE_CLOEXEC closes nothing: it sets the program's close-on-exec of the numbers in range.
        Assert.That(_layer.Fcntl(next, F_GETFD, 0), Is.Zero);
        Assert.That(_layer.CloseRange((uint)next, (uint)next, 4), Is.Zero);
        Assert.That(_layer.Fcntl(next, F_GETFD, 0), Is.EqualTo(FD_CLOEXEC));
        CloseAll(next, l);
    }

    [DllImport("libc.so.6", EntryPoint = "syscall")]
    private static extern long Syscall(long number, uint a, uint b, int c);

    private static int CloseRangeSyscall(uint first, uint last, int flags) => (int)Syscall(436 /* SYS_close_range */, first, last, flags);

    [Test]
    public void OptionsSetWhilePendingReachTheStackSocket()
    {
        int fd = Tcp();
        int one = 1;
        Assert.That(_layer.SetSockOpt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, 4), Is.Zero);
        Assert.That(BindTo(fd, StackIp, 0), Is.Zero);
        int got = 0;
        uint len = 4;
        Assert.That(_layer.GetSockOpt(fd, IPPROTO_TCP, 1, &got, &len), Is.Zero);
        Assert.That(got, Is.EqualTo(1));
        int type = 0;
        len = 4;
        Assert.That(_layer.GetSockOpt(fd, SOL_SOCKET, SO_TYPE, &type, &len), Is.Zero);
        Assert.That(type, Is.EqualTo(SOCK_STREAM));
        int nb = 1;
        Assert.That(_layer.Ioctl(fd, FIONBIO, &nb), Is.Zero);
        Assert.That(_layer.Fcntl(fd, F_GETFL, 0), Is.EqualTo(O_RDWR | O_NONBLOCK));
        CloseAll(fd);
    }

    [Test]
    public void UdpSendToTheStacksSubnetPlacesTheSocketOnTheStack()
    {
        int server = _layer.Socket(AF_INET, SOCK_DGRAM, 0);
        Assert.That(BindTo(server, StackIp, 5353), Is.Zero);
        int client = _layer.Socket(AF_INET, SOCK_DGRAM, 0);
        var to = Addr(StackIp, 5353);
        var msg = "dgram"u8.ToArray();
        fixed (byte* p = msg) Assert.That(_layer.SendTo(client, p, 5, 0, &to, 16), Is.EqualTo(5));
        Assert.That(_table[client], Is.EqualTo(FdKind.Socket));
        var buf = new byte[16];
        SockAddrIn from;
        uint len = 16;
        fixed (byte* p = buf) Assert.That(_layer.RecvFrom(server, p, 16, 0, &from, &len), Is.EqualTo(5));
        Assert.That(Port(from), Is.EqualTo(LocalPort(client)));
        Assert.That(len, Is.EqualTo(16u));
        int kernelUdp = _layer.Socket(AF_INET, SOCK_DGRAM, 0);
        var lo = Addr(Ipv4Address.Parse("127.0.0.1"), 9);
        fixed (byte* p = msg) Assert.That(_layer.SendTo(kernelUdp, p, 5, 0, &lo, 16), Is.EqualTo(5));
        Assert.That(_table[kernelUdp], Is.EqualTo(FdKind.Kernel));
        Assert.That(Libc.Close(kernelUdp), Is.Zero);
        CloseAll(client, server);
    }

    [Test]
    public void SendFileCopiesAFileToAStackSocket()
    {
        var (l, c, s) = StackPair();
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "0123456789");
            using var file = File.OpenHandle(path);
            int ffd = (int)file.DangerousGetHandle();
            long offset = 3;
            Assert.That(_layer.SendFile(c, ffd, &offset, 5), Is.EqualTo(5));
            Assert.That(offset, Is.EqualTo(8));
            Assert.That(RecvText(s), Is.EqualTo("34567"));
        }
        finally
        {
            File.Delete(path);
        }
        CloseAll(c, s, l);
    }
}

public class TerritoryTests
{
    private static readonly Territory WithGateway = new(Ipv4Address.Parse("10.1.0.2"), Ipv4Address.Parse("255.255.0.0"),
        Ipv4Address.Parse("10.1.0.1"), [(Ipv4Address.Parse("192.168.5.0"), Ipv4Address.Parse("255.255.255.0"))]);
    private static readonly Territory NoGateway = new(Ipv4Address.Parse("10.1.0.2"), Ipv4Address.Parse("255.255.0.0"), Ipv4Address.Any);

    [TestCase("10.1.200.7", true, true)]
    [TestCase("127.0.0.1", false, false)]
    [TestCase("8.8.8.8", true, false)]
    [TestCase("192.168.5.9", false, false)]
    [TestCase("0.0.0.0", false, false)]
    [TestCase("224.0.0.1", false, false)]
    public void Destinations(string address, bool withGateway, bool withoutGateway)
    {
        var a = Ipv4Address.Parse(address);
        Assert.That(WithGateway.IsStackDestination(a), Is.EqualTo(withGateway));
        Assert.That(NoGateway.IsStackDestination(a), Is.EqualTo(withoutGateway));
    }

    [Test]
    public void OnlyTheStacksOwnAddressBindsToTheStack()
    {
        Assert.That(NoGateway.IsStackLocal(Ipv4Address.Parse("10.1.0.2")), Is.True);
        Assert.That(NoGateway.IsStackLocal(Ipv4Address.Parse("10.1.0.3")), Is.False);
        Assert.That(NoGateway.IsStackLocal(Ipv4Address.Any), Is.False);
    }
}

[NonParallelizable]
public unsafe class PosixLayerStaleEntryTests
{
    [Test]
    public void ANumberClosedBehindTheShimsBackIsReclaimedWhenTheKernelReusesIt()
    {
        byte* mem = (byte*)NativeMemory.AllocZeroed(65536);
        try
        {
            var table = new FdKindTable(mem, 65536);
            var stack = new FakeSocketApi(Ipv4Address.Parse("10.5.0.2"));
            var layer = new PosixLayer(stack, new Territory(Ipv4Address.Parse("10.5.0.2"), Ipv4Address.Parse("255.255.255.0"), Ipv4Address.Any), table, MonotonicClock.Now);
            int fd = layer.Socket(AF_INET, SOCK_STREAM, 0);
            var sa = new SockAddrIn { Family = AF_INET, AddressNetworkOrder = Ipv4Address.Parse("10.5.0.2").NetworkOrder };
            Assert.That(layer.Bind(fd, &sa, 16), Is.Zero);
            Assert.That(stack.OpenSockets, Is.EqualTo(1));
            Assert.That(Libc.Close(fd), Is.Zero, "closed without telling the layer (as close_range would)");
            int again = layer.Socket(AF_INET, SOCK_STREAM, 0);
            Assert.That(again, Is.EqualTo(fd), "the kernel reuses the lowest number");
            Assert.That(stack.OpenSockets, Is.Zero, "the stale stack socket was released");
            Assert.That(table[again], Is.EqualTo(FdKind.Pending));
            Assert.That(layer.Close(again), Is.Zero);
            Assert.That(layer.HeldFds, Is.Zero);
        }
        finally
        {
            NativeMemory.Free(mem);
        }
    }
}

public class KernelInterfacesTests
{
    [Test]
    public void ListsTheSubnetOfEveryNonLoopbackKernelAddress()
    {
        var subnets = KernelInterfaces.Ipv4Subnets();
        // Compare with what .NET sees of the same interfaces.
        var expected = System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Where(u => u.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && !System.Net.IPAddress.IsLoopback(u.Address))
            .Select(u =>
            {
                var a = Ipv4Address.Read(u.Address.GetAddressBytes());
                var m = Ipv4Address.Read(u.IPv4Mask.GetAddressBytes());
                return (new Ipv4Address(a.Value & m.Value), m);
            })
            .OrderBy(s => s.Item1.Value).ToArray();
        Assert.That(subnets.OrderBy(s => s.Network.Value).ToArray(), Is.EqualTo(expected));
        Assert.That(subnets.Any(s => s.Network.IsLoopback), Is.False);
    }
}

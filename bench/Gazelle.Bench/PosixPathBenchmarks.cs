using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Gazelle.Devices.InMemory;
using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

using static Gazelle.Bench.BenchSetup;

namespace Gazelle.Bench;

/// <summary>
/// The per-message path of a preloaded program, minus the shim: the POSIX layer's calls over a real
/// <see cref="NetStack"/> on the in-memory network (a peer stack drains what is sent). <see cref="UdpSendTo"/>
/// is sockperf's throughput client (sendto of 64 bytes: layer routing and lock, the stack's UDP/IPv4/Ethernet
/// output, the device; the stack is polled every few sends); <see cref="EpollWaitIdle"/> and
/// <see cref="EpollWaitOneReady"/> are redis's epoll_wait with 50 registered sockets (level-triggered EPOLLIN)
/// of which none / one has a datagram waiting: the layer polls the stack, takes its event journal and looks
/// only at registrations that can have changed. Real kernel fds name the sockets (the layer reserves them).
/// </summary>
[MemoryDiagnoser]
public unsafe class PosixPathBenchmarks : IDisposable
{
    public const int PayloadLength = 64;
    public const int EpollSockets = 50;
    private const int DrainEvery = 32;

    private static readonly Ipv4Address IpA = Ipv4Address.Parse("10.62.0.1");
    private static readonly Ipv4Address IpB = Ipv4Address.Parse("10.62.0.2");
    private static readonly Ipv4Address Mask = Ipv4Address.Parse("255.255.255.0");

    private readonly byte* _tableMemory;
    private readonly InMemoryNetwork _network = new();
    private readonly NetStack _stack, _peer;
    private readonly PosixLayer _layer;
    private readonly SocketHandle _peerSocket;
    private readonly int _sender, _epoll, _readyFd;
    private readonly List<int> _fds = [];
    private readonly byte[] _payload = new byte[PayloadLength];
    private readonly byte[] _buffer = new byte[2048];
    private readonly EpollEvent[] _events = new EpollEvent[EpollSockets];
    private SockAddrIn _peerAddress;
    private int _sends;
    private bool _disposed;

    /// <summary>Datagrams the peer has taken in (what <see cref="UdpSendTo"/> sent and arrived).</summary>
    public long PeerReceived => _peer.Udp.Counters.Delivered;

    public PosixPathBenchmarks()
    {
        _tableMemory = (byte*)NativeMemory.AllocZeroed(65536);
        _stack = new NetStack(new StackConfig { Address = IpA, Netmask = Mask, MaxUdpSockets = 128 },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:62:01"), Name = "layer" }));
        _peer = new NetStack(new StackConfig { Address = IpB, Netmask = Mask },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:62:02"), Name = "peer" }));
        _layer = new PosixLayer(_stack, new Territory(IpA, Mask, Ipv4Address.Any), new FdKindTable(_tableMemory, 65536), MonotonicClock.Now);
        Check(_peer.Open(SocketKind.Udp, out _peerSocket));
        Check(_peer.Bind(_peerSocket, new Ipv4Endpoint(IpB, 9000)));
        _peerAddress = Address(IpB, 9000);

        _sender = BoundUdp(9100);
        _epoll = Libc.EpollCreate1(0);
        if (_epoll < 0) throw new InvalidOperationException("epoll_create1 failed");
        _fds.Add(_epoll);
        for (int i = 0; i < EpollSockets; i++)
        {
            int fd = BoundUdp(9200 + i);
            var ev = new EpollEvent { Events = EPOLLIN, Data = (ulong)i };
            if (_layer.EpollCtl(_epoll, EPOLL_CTL_ADD, fd, &ev) != 0) throw new InvalidOperationException("EPOLL_CTL_ADD failed");
        }
        _readyFd = _fds[^1];
        // Resolve ARP both ways: a send from the layer, answered by the peer.
        UdpSendTo();
        for (int i = 0; i < 10 && _peer.ReceiveFrom(_peerSocket, _buffer, MessageFlags.None, out _, out _) != Errno.Ok; i++) Drain();
        Drain();
    }

    private static SockAddrIn Address(Ipv4Address a, int port) => new()
    {
        Family = AF_INET,
        PortNetworkOrder = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)port),
        AddressNetworkOrder = a.NetworkOrder,
    };

    private int BoundUdp(int port)
    {
        int fd = _layer.Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        var sa = Address(IpA, port);
        if (fd < 0 || _layer.Bind(fd, &sa, 16) != 0) throw new InvalidOperationException("socket/bind failed");
        _fds.Add(fd);
        return fd;
    }

    /// <summary>Moves frames across the bridge and lets the peer take them in (and answer ARP).</summary>
    private void Drain()
    {
        var now = MonotonicClock.Now();
        for (int i = 0; i < 2; i++)
        {
            _network.Poll(now);
            _peer.Poll(now);
            while (_peer.ReceiveFrom(_peerSocket, _buffer, MessageFlags.None, out _, out _) == Errno.Ok) { }
        }
        _network.Poll(now);
    }

    /// <summary>sendto of 64 bytes on a UDP socket of the stack; returns what sendto returned.</summary>
    [Benchmark]
    public int UdpSendTo()
    {
        fixed (byte* p = _payload)
        fixed (SockAddrIn* to = &_peerAddress)
        {
            long r = _layer.SendTo(_sender, p, PayloadLength, 0, to, 16);
            if (++_sends % DrainEvery == 0) Drain();
            return (int)r;
        }
    }

    /// <summary>epoll_wait(0) over 50 idle registrations: returns the number of events (0).</summary>
    [Benchmark]
    public int EpollWaitIdle()
    {
        fixed (EpollEvent* ev = _events) return _layer.EpollWait(_epoll, ev, EpollSockets, 0, null);
    }

    /// <summary>epoll_wait(0) over 50 registrations of which one stays readable: returns 1.</summary>
    [Benchmark]
    public int EpollWaitOneReady()
    {
        fixed (EpollEvent* ev = _events) return _layer.EpollWait(_epoll, ev, EpollSockets, 0, null);
    }

    /// <summary>Two epoll_ctl(EPOLL_CTL_MOD) on one of the 50 registrations, EPOLLIN|EPOLLOUT then EPOLLIN:
    /// hiredis's event loop (redis-benchmark) arms and disarms EPOLLOUT around every request.</summary>
    [Benchmark]
    public int EpollCtlModTwice()
    {
        var ev = new EpollEvent { Events = EPOLLIN | EPOLLOUT, Data = 7 };
        int r = _layer.EpollCtl(_epoll, EPOLL_CTL_MOD, _readyFd, &ev);
        ev.Events = EPOLLIN;
        return r | _layer.EpollCtl(_epoll, EPOLL_CTL_MOD, _readyFd, &ev);
    }

    /// <summary>epoll_ctl(EPOLL_CTL_DEL) then EPOLL_CTL_ADD of one of the 50 registrations: hiredis's loop when
    /// a socket's last event kind is deleted and the next one created (redis-benchmark, per request).</summary>
    [Benchmark]
    public int EpollCtlDelAdd()
    {
        int r = _layer.EpollCtl(_epoll, EPOLL_CTL_DEL, _readyFd, null);
        var ev = new EpollEvent { Events = EPOLLIN, Data = (ulong)(EpollSockets - 1) };
        return r | _layer.EpollCtl(_epoll, EPOLL_CTL_ADD, _readyFd, &ev);
    }

    /// <summary>Makes <see cref="EpollWaitOneReady"/>'s socket readable (a datagram from the peer, left unread).</summary>
    [GlobalSetup(Target = nameof(EpollWaitOneReady))]
    public void MakeOneReady()
    {
        var to = new Ipv4Endpoint(IpA, (ushort)(9200 + EpollSockets - 1));
        Check(_peer.SendTo(_peerSocket, _payload, to, MessageFlags.None, out _));
        for (int i = 0; i < 10 && EpollWaitOneReady() == 0; i++) Drain();
    }

    /// <summary>Reads <see cref="MakeOneReady"/>'s datagram back (for callers that run the bodies in turn).</summary>
    public int ReadTheReadyOne()
    {
        fixed (byte* b = _buffer) return (int)_layer.Recv(_readyFd, b, (nuint)_buffer.Length, 0);
    }

    [GlobalCleanup]
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (int fd in _fds) _layer.Close(fd);
        _fds.Clear();
        _layer.Dispose();
        _stack.Shutdown();
        _peer.Shutdown();
        _network.Dispose();
        NativeMemory.Free(_tableMemory);
        GC.SuppressFinalize(this);
    }
}

using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// The POSIX layer over a real <see cref="NetStack"/> (the fake keeps no event journal): epoll's use of the
/// stack's journal (a registration is looked at again only after its socket had an event) and the send path
/// that polls only every few sends. A peer stack on the same in-memory network plays the other end.
/// </summary>
[NonParallelizable]
public unsafe class PosixLayerOverStackTests : LayerOverStackFixture
{
    protected override PollPolicy Policy => new() { SpinMicros = 50, BlockMillis = 1 };
    protected override int LayerUdpSockets => 512;

    private readonly List<int> _fds = [];

    [TearDown]
    public void CloseSockets()
    {
        foreach (int fd in _fds) _layer.Close(fd);
    }

    private int Fd(int fd)
    {
        Assert.That(fd, Is.GreaterThanOrEqualTo(0));
        _fds.Add(fd);
        return fd;
    }

    private int BoundUdp(int port)
    {
        int fd = Fd(_layer.Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
        var sa = Addr(IpA, port);
        Assert.That(_layer.Bind(fd, &sa, 16), Is.Zero);
        return fd;
    }

    /// <summary>Lets frames cross the bridge and the peer answer (the layer's stack is polled by the layer).</summary>
    private void RunPeer(int rounds = 4)
    {
        var now = MonotonicClock.Now();
        for (int i = 0; i < rounds; i++)
        {
            _network.Poll(now);
            _peer.Poll(now);
            _network.Poll(now);
        }
    }

    private SocketHandle PeerUdp(ushort port)
    {
        Assert.That(_peer.Open(SocketKind.Udp, out var h), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Bind(h, new Ipv4Endpoint(IpB, port)), Is.EqualTo(Errno.Ok));
        return h;
    }

    [Test]
    public void EpollReportsADatagramThatArrivesAfterTheSocketWasFoundIdleAndStopsOnceItIsRead()
    {
        int fd = BoundUdp(7001);
        int ep = Fd(Libc.EpollCreate1(0));
        var ev = new EpollEvent { Events = EPOLLIN, Data = 7 };
        Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, fd, &ev), Is.Zero);
        var events = stackalloc EpollEvent[4];
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "idle: looked at once, not ready");
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "still idle");

        var peer = PeerUdp(7002);
        Assert.That(_peer.SendTo(peer, "ping"u8, new Ipv4Endpoint(IpA, 7001), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        // The peer resolves our address first: let ARP and the datagram cross; the layer polls its stack in EpollWait.
        int got = 0;
        for (int i = 0; i < 50 && got == 0; i++)
        {
            RunPeer();
            got = _layer.EpollWait(ep, events, 4, 0, null);
        }
        Assert.That(got, Is.EqualTo(1), "the arrival is journaled, so the idle registration is looked at again");
        Assert.That(events[0].Data, Is.EqualTo(7UL));
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.EqualTo(1), "level-triggered: reported until read");

        var buf = stackalloc byte[16];
        Assert.That(_layer.Recv(fd, buf, 16, 0), Is.EqualTo(4));
        Assert.That(_layer.EpollWait(ep, events, 4, 0, null), Is.Zero, "read: no longer ready");
    }

    [Test]
    public void EpollSeesEverySocketWhenMoreHadEventsThanTheJournalHolds()
    {
        // More sockets with an arrival in one poll than the journal holds: it overflows, and the layer must then
        // look at every registration (none may be missed).
        int count = EventJournal.Capacity + 20;
        int ep = Fd(Libc.EpollCreate1(0));
        var fds = new int[count];
        for (int i = 0; i < count; i++)
        {
            fds[i] = BoundUdp(8000 + i);
            var ev = new EpollEvent { Events = EPOLLIN, Data = (ulong)i };
            Assert.That(_layer.EpollCtl(ep, EPOLL_CTL_ADD, fds[i], &ev), Is.Zero);
        }
        var events = stackalloc EpollEvent[count];
        Assert.That(_layer.EpollWait(ep, events, count, 0, null), Is.Zero);

        var peer = PeerUdp(7003);
        // Resolve ARP with one datagram first, so the rest cross in one burst.
        Assert.That(_peer.SendTo(peer, "x"u8, new Ipv4Endpoint(IpA, 8000), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 50 && _layer.EpollWait(ep, events, count, 0, null) == 0; i++) RunPeer();
        for (int i = 1; i < count; i++)
            Assert.That(_peer.SendTo(peer, "x"u8, new Ipv4Endpoint(IpA, (ushort)(8000 + i)), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        // Deliver them all before the layer looks (it drains the journal at each epoll_wait): the journal overflows.
        for (int round = 0; round < 50; round++)
        {
            RunPeer();
            _stack.Poll(MonotonicClock.Now());
        }
        Assert.That(_stack.Udp.Events.Overflowed, Is.True, "the test must overflow the journal");
        int n = _layer.EpollWait(ep, events, count, 0, null);
        var seen = new HashSet<ulong>();
        for (int i = 0; i < n; i++) seen.Add(events[i].Data);
        Assert.That(seen, Has.Count.EqualTo(count), "every socket with a datagram is reported");
    }

    [Test]
    public void AProgramThatOnlySendsStillReceivesArpRepliesAndDeliversWhatWaitedForThem()
    {
        // sendto does not poll the stack each time; every few sends it does, or a send-only program would never
        // learn the peer's MAC address and its datagrams would wait for ARP until dropped.
        int fd = BoundUdp(7010);
        var peer = PeerUdp(7011);
        var to = Addr(IpB, 7011);
        var payload = stackalloc byte[8];
        Assert.That(_layer.SendTo(fd, payload, 8, 0, &to, 16), Is.EqualTo(8), "queued behind an ARP request");
        RunPeer(); // the peer answers the ARP request
        for (int i = 0; i < 16; i++) Assert.That(_layer.SendTo(fd, payload, 8, 0, &to, 16), Is.EqualTo(8));
        RunPeer();
        var buf = new byte[64];
        int received = 0;
        while (_peer.ReceiveFrom(peer, buf, MessageFlags.None, out _, out _) == Errno.Ok) received++;
        Assert.That(received, Is.GreaterThanOrEqualTo(9), "the ARP reply was taken in by a send's poll and the queued datagram went out");
    }
}

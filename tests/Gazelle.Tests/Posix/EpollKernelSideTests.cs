using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// An epoll set holding a stack socket and a kernel fd (an eventfd), with a virtual clock: how often epoll_wait asks
/// the kernel about the kernel fd (a system call) while stack events keep it busy, and that a kernel event is still
/// reported — at most <c>PosixLayer.EpollKernelCheckMicros</c> late to a busy caller, at once to one that waits.
/// </summary>
[NonParallelizable]
public unsafe class EpollKernelSideTests : LayerOverStackFixture
{
    protected override PollPolicy Policy => new() { SpinMicros = 1_000_000, BlockMillis = 1 };
    protected override bool VirtualClock => true;

    private int _udp = -1, _ep = -1, _efd = -1;

    [TearDown]
    public void CloseFds()
    {
        if (_udp >= 0) _layer.Close(_udp);
        if (_ep >= 0) Libc.Close(_ep);
        if (_efd >= 0) Libc.Close(_efd);
    }

    private void Step()
    {
        _network.Poll(_now);
        _peer.Poll(_now);
        _network.Poll(_now);
    }

    /// <summary>A UDP socket of the layer with a datagram waiting (level-triggered: ready at every call), and an
    /// eventfd, both in one epoll set.</summary>
    private void SetUpSet()
    {
        _udp = _layer.Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        var sa = Addr(IpA, 7101);
        Assert.That(_layer.Bind(_udp, &sa, 16), Is.Zero);
        _efd = Libc.EventFd(0, 0);
        _ep = Libc.EpollCreate1(0);
        Assert.That(_efd, Is.GreaterThanOrEqualTo(0));
        Assert.That(_ep, Is.GreaterThanOrEqualTo(0));
        var ev = new EpollEvent { Events = EPOLLIN, Data = 1 };
        Assert.That(_layer.EpollCtl(_ep, EPOLL_CTL_ADD, _udp, &ev), Is.Zero);
        ev = new EpollEvent { Events = EPOLLIN, Data = 2 };
        Assert.That(_layer.EpollCtl(_ep, EPOLL_CTL_ADD, _efd, &ev), Is.Zero);

        Assert.That(_peer.Open(SocketKind.Udp, out var p), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Bind(p, new Ipv4Endpoint(IpB, 7102)), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.SendTo(p, "x"u8, new Ipv4Endpoint(IpA, 7101), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        var events = stackalloc EpollEvent[4];
        for (int i = 0; i < 50 && _layer.EpollWait(_ep, events, 4, 0, null) == 0; i++)
        {
            _now += new TimeSpanMicros(5);
            Step();
        }
        Assert.That(_layer.EpollWait(_ep, events, 4, 0, null), Is.EqualTo(1), "the datagram is waiting");
    }

    private static bool Reports(EpollEvent* events, int n, ulong data)
    {
        for (int i = 0; i < n; i++) if (events[i].Data == data) return true;
        return false;
    }

    [Test]
    public void ABusyCallerAsksTheKernelOncePerIntervalAndStillSeesItsEvent()
    {
        SetUpSet();
        var events = stackalloc EpollEvent[4];
        _now += new TimeSpanMicros(1000);
        long before = _layer.KernelReadinessChecks;
        for (int i = 0; i < 100; i++) Assert.That(_layer.EpollWait(_ep, events, 4, 0, null), Is.EqualTo(1));
        Assert.That(_layer.KernelReadinessChecks - before, Is.EqualTo(1), "100 calls within one interval ask the kernel once");

        ulong one = 1;
        Assert.That(Libc2.Write(_efd, &one, 8), Is.EqualTo(8));
        int n = _layer.EpollWait(_ep, events, 4, 0, null);
        Assert.That(Reports(events, n, 2), Is.False, "within the interval the kernel side is not asked");
        _now += new TimeSpanMicros(20);
        n = _layer.EpollWait(_ep, events, 4, 0, null);
        Assert.That(n, Is.EqualTo(2));
        Assert.That(Reports(events, n, 1) && Reports(events, n, 2), Is.True, "the interval passed: the eventfd is reported");
    }

    [Test]
    public void ACallerThatWaitsSeesAKernelEventWithoutWaitingForTheInterval()
    {
        SetUpSet();
        var buf = stackalloc byte[16];
        Assert.That(_layer.Recv(_udp, buf, 16, 0), Is.EqualTo(1), "the stack side is empty now");
        var events = stackalloc EpollEvent[4];
        _now += new TimeSpanMicros(1000);
        Assert.That(_layer.EpollWait(_ep, events, 4, 0, null), Is.Zero, "nothing ready; the kernel was just asked");
        ulong one = 1;
        Assert.That(Libc2.Write(_efd, &one, 8), Is.EqualTo(8));
        // The virtual clock stands still: only the call's own spin rounds can find the event.
        int n = _layer.EpollWait(_ep, events, 4, 1000, null);
        Assert.That(n, Is.EqualTo(1));
        Assert.That(events[0].Data, Is.EqualTo(2UL));
    }
}

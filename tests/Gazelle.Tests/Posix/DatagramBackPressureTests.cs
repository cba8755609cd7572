using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// A UDP sender whose device refuses frames (the in-memory veth's transmit ring full: nobody runs the network) is
/// held back instead of having its datagrams dropped, as Linux's veth back-pressure holds a sender: a non-blocking
/// sendto gets EAGAIN and poll reports no POLLOUT, a blocking one waits (bounded here by SO_SNDTIMEO), and once the
/// device takes frames again every datagram reaches the peer, in order.
/// </summary>
public unsafe class DatagramBackPressureTests : LayerOverStackFixture
{
    protected override PollPolicy Policy => new() { SpinMicros = 50, BlockMillis = 1 };

    private void RunNetwork(int rounds = 8)
    {
        var now = MonotonicClock.Now();
        for (int i = 0; i < rounds; i++)
        {
            _network.Poll(now);
            _peer.Poll(now);
            _stack.Poll(now);
        }
    }

    [Test]
    public void ASenderIsHeldBackWhileTheDeviceIsFullAndNothingItSentIsLost()
    {
        _stack.DeviceStallMicros = 600_000_000; // a loaded machine may pause this test: the device is never given up on
        int fd = _layer.Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        Assert.That(_peer.Open(SocketKind.Udp, out var peer), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Bind(peer, new Ipv4Endpoint(IpB, 7201)), Is.EqualTo(Errno.Ok));
        var to = Addr(IpB, 7201);
        int value = 0;
        // The first datagram waits for ARP: resolve it, and drain what the peer got.
        Assert.That(_layer.SendTo(fd, &value, 4, 0, &to, 16), Is.EqualTo(4));
        RunNetwork();
        var buf = new byte[16];
        Assert.That(_peer.ReceiveFrom(peer, buf, MessageFlags.None, out _, out _), Is.EqualTo(Errno.Ok));

        // Nobody runs the network now: the veth's ring fills, then the link's queue, then the sender waits.
        int sent = 0;
        long r;
        while (true)
        {
            value = 1 + sent;
            r = _layer.SendTo(fd, &value, 4, 0, &to, 16);
            if (r != 4 || sent > 100_000) break;
            sent++;
        }
        Assert.That(r, Is.EqualTo(-(long)Errno.EAGAIN), $"a non-blocking sender gets EAGAIN (after {sent})");
        Assert.That(_stack.Counters.Link.TxDeviceFull, Is.Zero, "nothing was dropped");
        PollFd p = new() { Fd = fd, Events = (short)EPOLLOUT };
        Assert.That(_layer.Poll(&p, 1, 0), Is.Zero, "not writable while the device is full");

        // A blocking sender waits for room (here until SO_SNDTIMEO) instead of dropping.
        int blocking = _layer.Socket(AF_INET, SOCK_DGRAM, 0);
        var tv = new TimeVal { Seconds = 0, Microseconds = 20_000 };
        Assert.That(_layer.SetSockOpt(blocking, SOL_SOCKET, SO_SNDTIMEO, &tv, (uint)sizeof(TimeVal)), Is.Zero);
        int other = -1;
        Assert.That(_layer.SendTo(blocking, &other, 4, 0, &to, 16), Is.EqualTo(-(long)Errno.EAGAIN), "SO_SNDTIMEO ran out while it waited");
        Assert.That(_stack.Counters.Link.TxDeviceFull, Is.Zero);

        // The device takes frames again: room, and every datagram arrives in order.
        int expected = 1;
        void Drain()
        {
            var now = MonotonicClock.Now();
            _network.Poll(now);
            // The peer takes a burst per poll into a queue of 256: it reads everything before the next delivery.
            for (int k = 0; k < 32; k++)
            {
                _peer.Poll(now);
                while (_peer.ReceiveFrom(peer, buf, MessageFlags.None, out int n, out _) == Errno.Ok)
                {
                    Assert.That(n, Is.EqualTo(4));
                    Assert.That(BitConverter.ToInt32(buf, 0), Is.EqualTo(expected), "in order, none lost");
                    expected++;
                }
            }
            _stack.Poll(now);
        }
        Drain();
        Assert.That(_layer.Poll(&p, 1, 0), Is.EqualTo(1), "writable again");
        value = 1 + sent;
        Assert.That(_layer.SendTo(fd, &value, 4, 0, &to, 16), Is.EqualTo(4));
        sent++;
        for (int round = 0; round < 1000 && expected <= sent; round++) Drain();
        Assert.That(expected - 1, Is.EqualTo(sent), "every datagram the sender was told it sent arrived");
        Assert.That(_peer.Counters.Udp.ReceiveQueueFull, Is.Zero);
        _layer.Close(blocking);
        _layer.Close(fd);
    }
}

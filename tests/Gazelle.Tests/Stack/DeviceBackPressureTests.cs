using Gazelle.Link;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>
/// A device that refuses frames (a memif ring its peer drains slower than we send): the link keeps them, in order,
/// and a datagram sender gets EAGAIN once the link's queue is full (the layer makes a blocking one wait), as Linux's
/// veth stops its queue when the peer's ring is full; a device that takes nothing for
/// <see cref="EthernetLink.StallMicros"/> is given up on (drops, counted), so no sender waits for ever.
/// </summary>
public class DeviceBackPressureTests
{
    private TestNic _na = null!, _nb = null!;
    private NetStack _a = null!, _b = null!;
    private SocketHandle _sa, _sb;
    private Instant _now = Instant.FromMilliseconds(1);

    [SetUp]
    public void SetUp()
    {
        (_na, _nb) = TestNic.Pair(MacA, MacB, poolSize: 1024);
        _a = new NetStack(ConfigFor(IpA), _na);
        _b = new NetStack(ConfigFor(IpB), _nb);
        Assert.That(_a.Open(SocketKind.Udp, out _sa), Is.EqualTo(Errno.Ok));
        Assert.That(_b.Open(SocketKind.Udp, out _sb), Is.EqualTo(Errno.Ok));
        Assert.That(_b.Bind(_sb, new Ipv4Endpoint(IpB, 9000)), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Connect(_sa, new Ipv4Endpoint(IpB, 9000)), Is.EqualTo(Errno.Ok));
        // One datagram through, so ARP is resolved and the route is warm.
        Assert.That(Send(0), Is.EqualTo(Errno.Ok));
        Settle(_a, _na, _b, _nb, _now);
        Assert.That(Receive(), Is.EqualTo(0));
    }

    [TearDown]
    public void TearDown()
    {
        _na.TransmitLimit = null;
        _a.Shutdown();
        _b.Shutdown();
        _na.Dispose();
        _nb.Dispose();
    }

    private Errno Send(int sequence)
    {
        Span<byte> payload = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(payload, sequence);
        return _a.Send(_sa, payload, MessageFlags.None, out _);
    }

    /// <summary>The sequence number of the next datagram the peer's socket holds, or -1.</summary>
    private int Receive()
    {
        Span<byte> buffer = stackalloc byte[16];
        if (_b.ReceiveFrom(_sb, buffer, MessageFlags.None, out int n, out _) != Errno.Ok) return -1;
        Assert.That(n, Is.EqualTo(4));
        return System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(buffer);
    }

    [Test]
    public void RefusedFramesAreKeptInOrderAndASenderWaitsOnceTheQueueIsFull()
    {
        _na.TransmitLimit = 0; // the peer's ring is full
        int sent = 0;
        while (sent < 1000 && Send(1 + sent) == Errno.Ok) sent++;
        Assert.That(sent, Is.EqualTo(EthernetLink.QueueCapacity), "the queue holds what the device refused, then the sender waits");
        Assert.That(Send(1 + sent), Is.EqualTo(Errno.EAGAIN));
        Assert.That(_a.Counters.Link.TxDeviceFull, Is.Zero, "nothing was dropped");
        Assert.That(_a.Counters.Udp.SendsWaitingForRoom, Is.EqualTo(2));
        Assert.That(_a.GetReadiness(_sa) & Readiness.Writable, Is.EqualTo(Readiness.None), "not writable while a send would wait");
        var events = _a.GetEvents(_sa);

        _na.TransmitLimit = 10; // the peer took some
        _a.Poll(_now);
        Assert.That(_a.GetReadiness(_sa) & Readiness.Writable, Is.EqualTo(Readiness.Writable));
        Assert.That(_a.GetEvents(_sa).Write, Is.Not.EqualTo(events.Write), "a waiting writer is told (EPOLLOUT edge)");
        Assert.That(Send(1 + sent), Is.EqualTo(Errno.Ok));
        sent++;

        _na.TransmitLimit = null;
        _a.Poll(_now);
        Settle(_a, _na, _b, _nb, _now);
        for (int i = 1; i <= sent; i++) Assert.That(Receive(), Is.EqualTo(i), "every datagram arrives, in order");
        Assert.That(Receive(), Is.EqualTo(-1));
        Assert.That(_a.Counters.Link.TxDeviceFull, Is.Zero);
        Assert.That(_a.Counters.Link.TxDeviceBusy, Is.GreaterThan(0));
    }

    [Test]
    public void ADeviceThatTakesNothingForTheStallTimeIsGivenUpOnAndItsFramesCounted()
    {
        _na.TransmitLimit = 0;
        int sent = 0;
        while (sent < 1000 && Send(1 + sent) == Errno.Ok) sent++;
        Assert.That(sent, Is.EqualTo(EthernetLink.QueueCapacity));

        _a.Poll(_now + new TimeSpanMicros(EthernetLink.DefaultStallMicros - 1));
        Assert.That(Send(1000), Is.EqualTo(Errno.EAGAIN), "still waiting just before the stall time");
        _a.Poll(_now + new TimeSpanMicros(EthernetLink.DefaultStallMicros));
        Assert.That(_a.Counters.Link.TxDeviceStalled, Is.EqualTo(1));
        Assert.That(_a.Counters.Link.TxDeviceFull, Is.EqualTo(EthernetLink.QueueCapacity), "the held frames are dropped and counted");

        // Given up on: sends go on (their frames dropped and counted) instead of waiting for ever.
        for (int i = 0; i < 100; i++) Assert.That(Send(2000 + i), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Counters.Link.TxDeviceFull, Is.GreaterThan(EthernetLink.QueueCapacity));

        // The device takes frames again: back to keeping them.
        _na.TransmitLimit = null;
        Assert.That(Send(3000), Is.EqualTo(Errno.Ok));
        _a.Poll(_now + new TimeSpanMicros(EthernetLink.DefaultStallMicros + 1));
        Settle(_a, _na, _b, _nb, _now + new TimeSpanMicros(EthernetLink.DefaultStallMicros + 1));
        int last = -1;
        for (int v; (v = Receive()) >= 0;) last = v;
        Assert.That(last, Is.EqualTo(3000));
        long dropped = _a.Counters.Link.TxDeviceFull;
        _na.TransmitLimit = 0;
        for (int i = 0; i < 10; i++) Assert.That(Send(4000 + i), Is.EqualTo(Errno.Ok));
        Assert.That(_a.Counters.Link.TxDeviceFull, Is.EqualTo(dropped), "refused frames are kept again");
        Assert.That(_a.OutputPending, Is.True);
    }

    [Test]
    public void ASocketClosedAndReopenedWhileWaitingIsToldOnceAndTheWaitListDoesNotOverflow()
    {
        _na.TransmitLimit = 0;
        while (Send(1) == Errno.Ok) { }
        // The same socket index waits, is closed and reopened, more times than the stack has UDP sockets: each
        // reopened socket waits again before the device ever takes a frame.
        for (int round = 0; round < 3 * 64; round++)
        {
            Assert.That(_a.Close(_sa), Is.EqualTo(Errno.Ok));
            Assert.That(_a.Open(SocketKind.Udp, out _sa), Is.EqualTo(Errno.Ok));
            Assert.That(_a.Connect(_sa, new Ipv4Endpoint(IpB, 9000)), Is.EqualTo(Errno.Ok));
            Assert.That(Send(2), Is.EqualTo(Errno.EAGAIN));
        }
        var events = _a.GetEvents(_sa);
        _na.TransmitLimit = null;
        _a.Poll(_now);
        Assert.That(_a.GetEvents(_sa).Write, Is.EqualTo(events.Write + 1), "one write event for the socket that waited");
        Assert.That(Send(3), Is.EqualTo(Errno.Ok));
    }
}

using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// <see cref="PosixLayer.KeepUp"/>, the keeper thread's poll: a program that queued more than the peer's window
/// and then stays out of our calls (sleeps, waits on a pipe) must still have its data delivered, as with the
/// kernel. A virtual clock drives the layer; a peer stack on the in-memory network reads everything.
/// </summary>
[NonParallelizable]
public unsafe class KeeperTests : LayerOverStackFixture
{
    protected override PollPolicy Policy => new() { SpinMicros = 0, BlockMillis = 1 };
    protected override bool VirtualClock => true;
    private static readonly TimeSpanMicros KeeperPeriod = TimeSpanMicros.FromMilliseconds(10);

    private int _fd = -1;

    [TearDown]
    public void CloseSockets()
    {
        if (_fd >= 0) _layer.Close(_fd);
    }

    /// <summary>Frames cross, the peer runs and reads all it has into <paramref name="received"/>; the virtual
    /// clock moves on by <paramref name="step"/>.</summary>
    private void RunPeer(SocketHandle connection, ref long received, TimeSpanMicros step)
    {
        Span<byte> buffer = stackalloc byte[16384];
        for (int i = 0; i < 4; i++)
        {
            _network.Poll(_now);
            _peer.Poll(_now);
            while (connection.IsValid && _peer.Receive(connection, buffer, MessageFlags.None, out int n) == Errno.Ok && n > 0)
                received += n;
            _network.Poll(_now);
        }
        _now += step;
    }

    /// <summary>A connection from the layer to the peer's listener; the layer is driven by its own calls only.</summary>
    private SocketHandle Connect(out SocketHandle listener)
    {
        Assert.That(_peer.Open(SocketKind.Tcp, out listener), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Bind(listener, new Ipv4Endpoint(IpB, 7100)), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Listen(listener, 4), Is.EqualTo(Errno.Ok));
        _fd = _layer.Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        Assert.That(_fd, Is.GreaterThanOrEqualTo(0));
        var to = new SockAddrIn
        {
            Family = AF_INET,
            PortNetworkOrder = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)7100),
            AddressNetworkOrder = IpB.NetworkOrder,
        };
        Assert.That(_layer.Connect(_fd, &to, 16), Is.EqualTo(-(int)Errno.EINPROGRESS));
        SocketHandle connection = SocketHandle.Invalid;
        long none = 0;
        for (int i = 0; i < 50 && !connection.IsValid; i++)
        {
            RunPeer(connection, ref none, new TimeSpanMicros(100));
            _layer.Connect(_fd, &to, 16); // the program asks for the outcome: a call, so the layer polls
            if (_peer.Accept(listener, out var c, out _) == Errno.Ok) connection = c;
        }
        Assert.That(connection.IsValid, "the handshake completed");
        return connection;
    }

    [Test]
    public void DataQueuedBeyondTheWindowIsDeliveredWhileTheProgramMakesNoCallOnlyWhenKept()
    {
        var connection = Connect(out _);
        var data = new byte[200_000];
        long queued;
        fixed (byte* p = data) queued = _layer.Send(_fd, p, (nuint)data.Length, MSG_DONTWAIT);
        Assert.That(queued, Is.GreaterThan(64_000), "the send queue took more than a first window");

        // The program now sleeps: no call of ours for a second of virtual time.
        long received = 0;
        for (int i = 0; i < 100; i++) RunPeer(connection, ref received, KeeperPeriod);
        Assert.That(received, Is.LessThan(queued), "without a keeper the queue waits for the program's next call");

        // The keeper's polls, one per period (what the keeper thread does), drain the queue into the window.
        int polled = 0;
        for (int i = 0; i < 100 && received < queued; i++)
        {
            if (_layer.KeepUp(KeeperPeriod)) polled++;
            RunPeer(connection, ref received, KeeperPeriod);
        }
        Assert.That(received, Is.EqualTo(queued), "every queued byte arrives while the program stays away");
        Assert.That(polled, Is.GreaterThan(0));
    }

    [Test]
    public void TheKeeperLeavesTheStackAloneWhileTheProgramPolls()
    {
        var connection = Connect(out _);
        long received = 0;
        RunPeer(connection, ref received, new TimeSpanMicros(0));
        var events = stackalloc PollFd[1];
        events[0] = new PollFd { Fd = _fd, Events = (short)EPOLLIN };
        Assert.That(_layer.Poll(events, 1, 0), Is.Zero, "a call of the program: it polls the stack");
        Assert.That(_layer.KeepUp(KeeperPeriod), Is.False, "polled just now: nothing for the keeper to do");
        _now += KeeperPeriod;
        Assert.That(_layer.KeepUp(KeeperPeriod), Is.True, "a whole period without a poll: the keeper polls");
        Assert.That(_layer.KeepUp(KeeperPeriod), Is.False, "and then not again until the next period");
    }
}

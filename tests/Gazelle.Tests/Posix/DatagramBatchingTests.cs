using Gazelle.Posix;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// Datagram batching (<see cref="PollPolicy.DatagramFlushMicros"/>): a datagram whose frame the stack holds in
/// its transmit burst leaves even when the program makes no further call (it may sleep in nanosleep, which the
/// layer never sees): the layer's flush thread sends it. The test thread touches the in-memory network (not
/// thread-safe) only once the flush thread has flushed, and makes no call into the layer meanwhile.
/// </summary>
[NonParallelizable]
public unsafe class DatagramBatchingTests : LayerOverStackFixture
{
    protected override PollPolicy Policy => new() { SpinMicros = 50, BlockMillis = 1, DatagramFlushMicros = 200 };

    private void RunPeer()
    {
        var now = MonotonicClock.Now();
        for (int i = 0; i < 4; i++)
        {
            _network.Poll(now);
            _peer.Poll(now);
            _network.Poll(now);
        }
    }

    /// <summary>Waits (generously: a loaded machine) until the flush thread has flushed <paramref name="n"/> batches.</summary>
    private void WaitForFlushThread(long n, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (_layer.FlushThreadFlushes < n)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"the flush thread never sent {what} (flushes {_layer.FlushThreadFlushes})");
            Thread.Sleep(1);
        }
    }

    [Test]
    public void ADatagramLeftHeldLeavesWhileTheProgramMakesNoFurtherCall()
    {
        Assert.That(_stack.BatchDatagrams, Is.True, "the layer turned batching on");
        int fd = _layer.Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        var local = Addr(IpA, 7100);
        Assert.That(_layer.Bind(fd, &local, 16), Is.Zero);
        Assert.That(_peer.Open(SocketKind.Udp, out var peer), Is.EqualTo(Errno.Ok));
        Assert.That(_peer.Bind(peer, new Ipv4Endpoint(IpB, 7101)), Is.EqualTo(Errno.Ok));
        var to = Addr(IpB, 7101);
        byte* first = stackalloc byte[] { (byte)'a' };
        byte* probe = stackalloc byte[] { (byte)'p', (byte)'r', (byte)'o', (byte)'b', (byte)'e' };

        // The first datagram waits for ARP; the peer answers; the receive polls: ARP learned, 'a' sent.
        Assert.That(_layer.SendTo(fd, first, 1, 0, &to, 16), Is.EqualTo(1));
        RunPeer();
        var buf = new byte[64];
        fixed (byte* b = buf) Assert.That(_layer.RecvFrom(fd, b, 64, 0, null, null), Is.EqualTo(-(long)Errno.EAGAIN));

        // The first send after a poll leaves at once (a request/response exchange holds nothing); the send right
        // after it is held in the burst, and the program now "sleeps": the test makes no call into the layer.
        Assert.That(_layer.SendTo(fd, first, 1, 0, &to, 16), Is.EqualTo(1));
        Assert.That(_stack.OutputPending, Is.False, "the first send after a poll is not held");
        Assert.That(_layer.SendTo(fd, probe, 5, 0, &to, 16), Is.EqualTo(5));
        Assert.That(_stack.OutputPending, Is.True, "a send right after a send is held");
        WaitForFlushThread(1, "the held datagram");
        RunPeer();
        var got = new List<string>();
        while (_peer.ReceiveFrom(peer, buf, MessageFlags.None, out int n, out _) == Errno.Ok) got.Add(System.Text.Encoding.ASCII.GetString(buf, 0, n));
        Assert.That(got, Is.EqualTo(new[] { "a", "a", "probe" }));
        _layer.Close(fd);
    }
}

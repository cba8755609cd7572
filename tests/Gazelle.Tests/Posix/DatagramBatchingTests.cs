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
/// Datagram batching (<see cref="PollPolicy.DatagramFlushMicros"/>): a datagram whose frame the stack holds in
/// its transmit burst leaves even when the program makes no further call (it may sleep in nanosleep, which the
/// layer never sees): the layer's flush thread sends it. The test thread touches the in-memory network (not
/// thread-safe) only once the flush thread has flushed, and makes no call into the layer meanwhile.
/// </summary>
[NonParallelizable]
public unsafe class DatagramBatchingTests
{
    private static readonly Ipv4Address IpA = Ipv4Address.Parse("10.62.0.1");
    private static readonly Ipv4Address IpB = Ipv4Address.Parse("10.62.0.2");
    private static readonly Ipv4Address Mask = Ipv4Address.Parse("255.255.255.0");

    private byte* _tableMemory;
    private InMemoryNetwork _network = null!;
    private NetStack _stack = null!, _peer = null!;
    private PosixLayer _layer = null!;

    [SetUp]
    public void SetUp()
    {
        _tableMemory = (byte*)NativeMemory.AllocZeroed(65536);
        _network = new InMemoryNetwork();
        _stack = new NetStack(new StackConfig { Address = IpA, Netmask = Mask, MaxUdpSockets = 16 },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:62:01"), Name = "layer" }));
        _peer = new NetStack(new StackConfig { Address = IpB, Netmask = Mask, MaxUdpSockets = 16 },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:62:02"), Name = "peer" }));
        _layer = new PosixLayer(_stack, new Territory(IpA, Mask, Ipv4Address.Any), new FdKindTable(_tableMemory, 65536),
            MonotonicClock.Now, new PollPolicy { SpinMicros = 50, BlockMillis = 1, DatagramFlushMicros = 200 });
    }

    [TearDown]
    public void TearDown()
    {
        _layer.Dispose();
        _stack.Shutdown();
        _peer.Shutdown();
        _network.Dispose();
        NativeMemory.Free(_tableMemory);
    }

    private static SockAddrIn Addr(Ipv4Address a, int port) => new()
    {
        Family = AF_INET,
        PortNetworkOrder = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)port),
        AddressNetworkOrder = a.NetworkOrder,
    };

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

        // The first datagram waits for ARP; the ARP request is the held frame, and no further call comes.
        Assert.That(_layer.SendTo(fd, first, 1, 0, &to, 16), Is.EqualTo(1));
        WaitForFlushThread(1, "the ARP request");
        RunPeer(); // the peer answers
        var buf = new byte[64];
        fixed (byte* b = buf) Assert.That(_layer.RecvFrom(fd, b, 64, 0, null, null), Is.EqualTo(-(long)Errno.EAGAIN)); // polls: ARP learned, 'a' sent

        // The probe is held in the burst; the program now "sleeps": the test makes no call into the layer.
        Assert.That(_layer.SendTo(fd, probe, 5, 0, &to, 16), Is.EqualTo(5));
        WaitForFlushThread(2, "the held datagram");
        RunPeer();
        var got = new List<string>();
        while (_peer.ReceiveFrom(peer, buf, MessageFlags.None, out int n, out _) == Errno.Ok) got.Add(System.Text.Encoding.ASCII.GetString(buf, 0, n));
        Assert.That(got, Is.EqualTo(new[] { "a", "probe" }));
        _layer.Close(fd);
    }
}

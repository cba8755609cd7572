using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>
/// Bulk TCP between two stacks on user-veths at jumbo and near-64 KiB MTUs (the long frames a memif link
/// carries between our stacks): every byte arrives in order and intact, both ways at once, and the
/// segments are as long as the MTU allows (MSS = MTU - 40 from the SYN options).
/// </summary>
public class LongFrameTransferTests
{
    [TestCase(9000)]
    [TestCase(65000)]
    public void BulkTransferBothWaysIsByteExactWithSegmentsOfTheMtu(int mtu) => Transfer(mtu, byReference: false, ringSize: 512);

    /// <summary>On a device that copies frames out as it transmits (net_memif), segments carry their payload by
    /// reference to the send ring (no copy into the packet buffer): every byte still arrives intact (the receiver
    /// verifies each checksum, summed where the payload lies), across ring wraps, and — with a device ring of 16
    /// slots that refuses most of each burst — through the retransmissions of what the device dropped.</summary>
    [TestCase(9000, 512)]
    [TestCase(1500, 512)]
    [TestCase(9000, 16)]
    public void BulkTransferWithPayloadByReferenceIsByteExact(int mtu, int ringSize) => Transfer(mtu, byReference: true, ringSize);

    private static void Transfer(int mtu, bool byReference, int ringSize)
    {
        int buffers = Math.Max(128, (4 << 20) / mtu); // a 1 MiB window in flight, and room to spare
        var options = new UserVethOptions
        {
            MacAddress = MacA, Name = "a", Mtu = mtu, BufferSize = mtu + 128 + 64, TxPoolSize = buffers, RxPoolSize = buffers, RingSize = ringSize,
            TxPayloadByReference = byReference,
        };
        using var va = new UserVeth(options);
        using var vb = new UserVeth(options with { MacAddress = MacB, Name = "b" });
        var bridge = new UserVbridge();
        bridge.AddPort(va);
        bridge.AddPort(vb);
        var a = new NetStack(ConfigFor(IpA) with { TcpSendBufferBytes = 1 << 20, TcpReceiveBufferBytes = 1 << 20 }, va);
        var b = new NetStack(ConfigFor(IpB) with { TcpSendBufferBytes = 1 << 20, TcpReceiveBufferBytes = 1 << 20 }, vb);
        var now = Instant.FromMilliseconds(1);
        void Step()
        {
            a.Poll(now);
            b.Poll(now);
            bridge.Pump(now);
            now += new TimeSpanMicros(10);
        }

        Assert.That(b.Open(SocketKind.Tcp, out var listener), Is.EqualTo(Errno.Ok));
        Assert.That(b.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, 7100)), Is.EqualTo(Errno.Ok));
        Assert.That(b.Listen(listener, 4), Is.EqualTo(Errno.Ok));
        Assert.That(a.Open(SocketKind.Tcp, out var client), Is.EqualTo(Errno.Ok));
        a.Connect(client, new Ipv4Endpoint(IpB, 7100));
        var server = SocketHandle.Invalid;
        for (int i = 0; i < 1000 && !server.IsValid; i++)
        {
            Step();
            if (b.Accept(listener, out var c, out _) == Errno.Ok) server = c;
        }
        Assert.That(server.IsValid, Is.True, "no connection");

        const int Total = 8 << 20;
        var ab = new Stream(a, client, b, server, Total, seed: 1);
        var ba = new Stream(b, server, a, client, Total, seed: 2);
        for (int i = 0; i < 200_000 && !(ab.Done && ba.Done); i++)
        {
            ab.Pump();
            ba.Pump();
            Step();
        }
        Assert.That((ab.Received, ba.Received), Is.EqualTo((Total, Total)), "all bytes arrived");
        Assert.That((ab.Mismatches, ba.Mismatches), Is.EqualTo((0, 0)), "byte-exact");
        // The segments were as long as the MTU allows: far fewer than at 1500.
        long segments = b.Tcp.Counters.SegmentsIn;
        Assert.That(segments, Is.LessThan(2 * Total / (mtu - 52) + 2000), "segments of the MTU");
        if (mtu > 1500) Assert.That(segments, Is.LessThan(Total / 1448), "longer than at MTU 1500");
        Assert.That(a.Counters.Tcp.BadChecksum + b.Counters.Tcp.BadChecksum, Is.Zero, "every segment's checksum verified");
        long byRef = a.Counters.Ip.PayloadsByReference + b.Counters.Ip.PayloadsByReference;
        if (byReference) Assert.That(byRef, Is.GreaterThan(2 * Total / (mtu - 52) / 2), "most segments went by reference");
        else Assert.That(byRef, Is.Zero, "a device that keeps frames never gets them by reference");
        if (ringSize < 64) Assert.That(a.Tcp.Counters.RetransmittedSegments, Is.GreaterThan(0), "the device dropped segments");

        a.Close(client);
        b.Close(server);
        b.Close(listener);
        for (int i = 0; i < 100; i++) Step();
        a.Shutdown();
        b.Shutdown();
        for (int i = 0; i < 4; i++) Step();
        Assert.That(va.TxPool.InUse + va.RxPool.InUse + vb.TxPool.InUse + vb.RxPool.InUse, Is.Zero, "pools back to baseline");
    }

    /// <summary>One direction of the transfer: writes a seeded pattern, reads it back and compares.</summary>
    private sealed class Stream(NetStack from, SocketHandle fromSocket, NetStack to, SocketHandle toSocket, int total, int seed)
    {
        private readonly byte[] _pattern = Pattern(seed);
        private readonly byte[] _buffer = new byte[60_000];
        private int _sent;
        public int Received;
        public int Mismatches;
        public bool Done => Received == total;

        private static byte[] Pattern(int seed)
        {
            var p = new byte[65521 * 2]; // a prime period: an offset error shows
            new Random(seed).NextBytes(p.AsSpan(0, 65521));
            p.AsSpan(0, 65521).CopyTo(p.AsSpan(65521));
            return p;
        }

        public void Pump()
        {
            while (_sent < total)
            {
                int chunk = Math.Min(50_000, total - _sent);
                if (from.Send(fromSocket, _pattern.AsSpan(_sent % 65521, chunk), MessageFlags.None, out int n) != Errno.Ok || n == 0) break;
                _sent += n;
            }
            while (to.Receive(toSocket, _buffer, MessageFlags.None, out int got) == Errno.Ok && got > 0)
            {
                if (!_buffer.AsSpan(0, got).SequenceEqual(_pattern.AsSpan(Received % 65521, got))) Mismatches++;
                Received += got;
            }
        }
    }
}

using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Transport.Tcp;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>Per-connection memory: rings are held only while bytes are queued and go back to a bounded
/// pool, so opening and closing many connections returns memory to its baseline.</summary>
[NonParallelizable] // reads the process's GC heap size
public class TcpMemoryTests
{
    private const int Connections = 200;
    private const int BytesEach = 50_000;
    private const long PoolLimit = 2L << 20;

    private static SimLink NewLink() => new(21, (a, s) => new StackConfig
    {
        Address = a, Netmask = new Ipv4Address(255, 255, 255, 0), Secret = s, MaxTcpConnections = Connections + 8,
        TcpSendBufferBytes = 256 * 1024, TcpReceiveBufferBytes = 256 * 1024, TcpRingPoolBytes = PoolLimit,
    }) { BytesPerMicro = 12_500, QueueLimitBytes = 1L << 30 }; // no congestion: this test is about memory

    private static long HeapBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static bool RunUntil(SimLink link, Func<bool> done, long micros)
    {
        long end = link.Now + micros;
        while (!done()) if (!link.Step() || link.Now > end) return done();
        return true;
    }

    [Test]
    public void OpeningAndClosingManyConnectionsReturnsMemoryToBaseline()
    {
        var link = NewLink();
        var a = link.A; var b = link.B;
        Assert.That(b.Open(SocketKind.Tcp, out var listener), Is.EqualTo(Errno.Ok));
        Assert.That(b.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, 80)), Is.EqualTo(Errno.Ok));
        Assert.That(b.Listen(listener, Connections), Is.EqualTo(Errno.Ok));
        var payload = new byte[BytesEach];
        new Random(5).NextBytes(payload);
        var sink = new byte[65536];
        var clients = new SocketHandle[Connections];
        var servers = new SocketHandle[Connections];
        long baseline = HeapBytes();

        for (int round = 0; round < 2; round++)
        {
            // Open every connection and queue data both ways that nobody reads yet: rings fill.
            for (int i = 0; i < Connections; i++)
            {
                Assert.That(a.Open(SocketKind.Tcp, out clients[i]), Is.EqualTo(Errno.Ok));
                Assert.That(a.Connect(clients[i], new Ipv4Endpoint(SimLink.AddrB, 80)), Is.EqualTo(Errno.EINPROGRESS));
            }
            int accepted = 0;
            Assert.That(RunUntil(link, () =>
            {
                while (accepted < Connections && b.Accept(listener, out servers[accepted], out _) == Errno.Ok) accepted++;
                return accepted == Connections;
            }, 5_000_000), Is.True, "all accepted");
            for (int i = 0; i < Connections; i++)
            {
                Assert.That(a.Send(clients[i], payload, MessageFlags.None, out int s1), Is.EqualTo(Errno.Ok));
                Assert.That(b.Send(servers[i], payload, MessageFlags.None, out int s2), Is.EqualTo(Errno.Ok));
                Assert.That(s1 + s2, Is.EqualTo(2 * BytesEach));
            }
            Assert.That(RunUntil(link, () =>
            {
                for (int i = 0; i < Connections; i++)
                {
                    a.Available(clients[i], out int x); b.Available(servers[i], out int y);
                    if (x != BytesEach || y != BytesEach) return false;
                }
                return true;
            }, 60_000_000), Is.True, "all data arrived");
            long full = a.RingBytesInUse + b.RingBytesInUse;
            Assert.That(full, Is.GreaterThanOrEqualTo(2L * Connections * BytesEach), "received bytes wait in rings");
            Assert.That(HeapBytes() - baseline, Is.GreaterThan(2L * Connections * BytesEach), "and they are on the heap");

            // Read everything: an idle connection holds no ring.
            for (int i = 0; i < Connections; i++)
            {
                int got = 0, n;
                while (b.Receive(servers[i], sink, MessageFlags.None, out n) == Errno.Ok && n > 0) got += n;
                Assert.That(got, Is.EqualTo(BytesEach));
                got = 0;
                while (a.Receive(clients[i], sink, MessageFlags.None, out n) == Errno.Ok && n > 0) got += n;
                Assert.That(got, Is.EqualTo(BytesEach));
            }
            Assert.That(RunUntil(link, () => a.RingBytesInUse + b.RingBytesInUse == 0, 5_000_000), Is.True,
                "idle established connections hold no ring");
            Assert.That(a.GetState(clients[0]), Is.EqualTo(TcpState.Established));

            for (int i = 0; i < Connections; i++) { a.Close(clients[i]); b.Close(servers[i]); }
            Assert.That(RunUntil(link, () => a.LiveConnections == 0 && b.LiveConnections == 1, 200_000_000), Is.True, "all closed");
            Assert.That(a.RingBytesInUse + b.RingBytesInUse, Is.Zero);
            Assert.That(a.RingBytesPooled, Is.LessThanOrEqualTo(PoolLimit));
            Assert.That(b.RingBytesPooled, Is.LessThanOrEqualTo(PoolLimit));
            long after = HeapBytes() - baseline;
            TestContext.Out.WriteLine($"round {round}: rings {full >> 20} MB while full; heap above baseline after close {after >> 10} KB");
            Assert.That(after, Is.LessThan(2 * PoolLimit + (4 << 20)), "memory back to baseline (plus the bounded pool)");
        }
        GC.KeepAlive(link);
    }

    /// <summary>A request/response connection empties its send ring, receive ring and RACK records at every
    /// message: it keeps them between messages (renting and returning them each time was ~4% of a ping-pong),
    /// and gives them back once idle for <see cref="Tcb.RingKeepMicros"/>.</summary>
    [Test]
    public void BusyConnectionKeepsItsRingsAndReturnsThemOnceIdle()
    {
        var link = NewLink();
        link.DelayMicros = 5;
        var a = link.A; var b = link.B;
        Assert.That(b.Open(SocketKind.Tcp, out var listener), Is.EqualTo(Errno.Ok));
        Assert.That(b.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, 80)), Is.EqualTo(Errno.Ok));
        Assert.That(b.Listen(listener, 4), Is.EqualTo(Errno.Ok));
        Assert.That(a.Open(SocketKind.Tcp, out var client), Is.EqualTo(Errno.Ok));
        Assert.That(a.Connect(client, new Ipv4Endpoint(SimLink.AddrB, 80)), Is.EqualTo(Errno.EINPROGRESS));
        SocketHandle server = default;
        Assert.That(RunUntil(link, () => b.Accept(listener, out server, out _) == Errno.Ok, 1_000_000), Is.True);
        var msg = new byte[64];
        var sink = new byte[256];
        for (int i = 0; i < 100; i++)
        {
            Assert.That(a.Send(client, msg, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
            Assert.That(RunUntil(link, () => b.Available(server, out int x) == Errno.Ok && x == msg.Length, 1_000_000), Is.True);
            Assert.That(b.Receive(server, sink, MessageFlags.None, out int n1), Is.EqualTo(Errno.Ok));
            Assert.That(b.Send(server, msg, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
            Assert.That(RunUntil(link, () => a.Available(client, out int x) == Errno.Ok && x == msg.Length, 1_000_000), Is.True);
            Assert.That(a.Receive(client, sink, MessageFlags.None, out int n2), Is.EqualTo(Errno.Ok));
            Assert.That(n1 + n2, Is.EqualTo(2 * msg.Length));
            Assert.That(a.RingBytesInUse, Is.GreaterThan(0), $"message {i}: the client's emptied rings stay between messages");
        }
        long idleFrom = link.Now;
        Assert.That(RunUntil(link, () => a.RingBytesInUse == 0, 1_000_000), Is.True, "an idle connection's rings go back to the pool");
        Assert.That(link.Now - idleFrom, Is.LessThanOrEqualTo(Tcb.RingKeepMicros + 1_000), "within the keep period");
        // The server's reply waits for the client's delayed ACK, then its ring is kept as long.
        Assert.That(RunUntil(link, () => a.RingBytesInUse + b.RingBytesInUse == 0, 1_000_000), Is.True);
        Assert.That(a.GetState(client), Is.EqualTo(TcpState.Established));
        Assert.That(a.RingBytesPooled, Is.GreaterThan(0), "kept by the pool for the next renter");
    }

    /// <summary>A receiver that empties its ring after every burst gives the ring back each time; the next
    /// burst rents the size the ring last had instead of doubling again from 4 KB, copying the held bytes at
    /// every size (that copy was a tenth of iperf3's receiver, perf). Same for a sender whose ring drains.</summary>
    [Test]
    public void RingsRentTheirLastSizeAfterEmptying()
    {
        var pool = new RingPool(4 << 20);
        var t = new Tcb(0, pool);
        t.Reset(256 * 1024, 256 * 1024);
        t.UserOwned = true; // an open connection keeps emptied rings until idle
        t.State = TcpState.Established;
        var segment = new byte[9000];
        var sink = new byte[65536];
        long afterFirstBurst = 0;
        for (int burst = 0; burst < 20; burst++)
        {
            for (int i = 0; i < 24; i++)
            {
                t.WriteReceive(0, segment);
                t.RcvReadable += segment.Length;
                Assert.That(t.AppendSend(segment), Is.EqualTo(segment.Length));
            }
            while (t.RcvReadable > 0) t.ReadReceive(sink, peek: false);
            t.ConsumeSend(t.SndCount);
            Assert.That(pool.InUseBytes, Is.GreaterThan(0), "empty rings stay with a busy connection");
            Assert.That(t.RingIdleDeadline, Is.EqualTo(pool.Now + new TimeSpanMicros(Tcb.RingKeepMicros)));
            t.ReleaseIdleRings(); // the idle deadline passed
            Assert.That(pool.InUseBytes, Is.Zero, "empty rings go back to the pool once idle");
            if (burst == 0) afterFirstBurst = t.Counters.RingRegrowBytes;
        }
        Assert.That(afterFirstBurst, Is.GreaterThan(0), "the first burst grows its rings");
        Assert.That(t.Counters.RingRegrowBytes, Is.EqualTo(afterFirstBurst), "later bursts start at the size the ring had");
    }
}

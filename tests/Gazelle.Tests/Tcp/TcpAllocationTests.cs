using System.Buffers.Binary;
using Gazelle.Transport.Tcp;

namespace Gazelle.Tests.Tcp;

/// <summary>The per-segment path allocates nothing on the GC heap once warmed up (DESIGN/STYLE item 5).</summary>
public class TcpAllocationTests
{
    [Test]
    public void BulkTransferAllocatesNothingPerSegment()
    {
        var link = new SimLink(3) { Loss = 0.01, Reorder = 0.01, Duplicate = 0.005 };
        var t = new Transfer(link, 3);
        Assert.That(t.Connect(), Is.True);
        Assert.That(t.Run(20_000_000, link.Now + 60_000_000), Is.True, "warm-up");
        long segmentsBefore = link.Delivered;
        bool ok = true;
        long total = 20_000_000; // Run's target counts from the connection's first byte
        long allocated = AllocationProbe.LeastAllocated(() => { total += 100_000_000; ok &= t.Run(total, link.Now + 600_000_000); }, out int rounds);
        long segments = (link.Delivered - segmentsBefore) / rounds;
        Assert.That(ok, Is.True);
        Assert.That(t.Mismatches, Is.Zero);
        Assert.That(link.WireErrors, Is.Zero);
        Assert.That(segments, Is.GreaterThanOrEqualTo(100_000));
        Assert.That(link.A.Counters.RetransmittedSegments, Is.GreaterThan(0), "recovery paths were exercised");
        Assert.That(allocated, Is.Zero, $"{allocated} bytes over {segments} segments");
    }

    [Test]
    public void RequestResponseAllocatesNothing()
    {
        var link = new SimLink(4);
        var t = new Transfer(link, 4);
        Assert.That(t.Connect(), Is.True);
        Span<byte> one = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(one, 1);
        link.A.SetOption(t.Client, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one);
        link.B.SetOption(t.Server, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one);
        for (int i = 0; i < 1000; i++) Assert.That(t.Exchange(64, 1_000_000), Is.True);
        int done = 0;
        long allocated = AllocationProbe.LeastAllocated(() => { for (int i = 0; i < 10_000; i++) if (t.Exchange(64, 1_000_000)) done++; }, out int rounds);
        Assert.That(done, Is.EqualTo(10_000 * rounds));
        Assert.That(t.Mismatches, Is.Zero);
        Assert.That(allocated, Is.Zero);
    }
}

public class TcpChurnTests
{
    /// <summary>Short connections (connect, request, response, close) reuse pooled TCBs and rings: no GC
    /// allocation per connection once every pooled object has been used once, and nothing leaks.</summary>
    [Test]
    public void ConnectionChurnAllocatesNothingAndLeaksNothing()
    {
        var link = new SimLink(9);
        var a = link.A; var b = link.B;
        Assert.That(b.Open(Gazelle.Sockets.SocketKind.Tcp, out var listener), Is.EqualTo(Gazelle.Sockets.Errno.Ok));
        b.Bind(listener, new Gazelle.Wire.Ipv4Endpoint(Gazelle.Wire.Ipv4Address.Any, 80));
        b.Listen(listener, 16);
        var buf = new byte[64];
        var endpoint = new Gazelle.Wire.Ipv4Endpoint(SimLink.AddrB, 80);

        bool Cycle()
        {
            if (a.Open(Gazelle.Sockets.SocketKind.Tcp, out var c) != Gazelle.Sockets.Errno.Ok) return false;
            if (a.Connect(c, endpoint) != Gazelle.Sockets.Errno.EINPROGRESS) return false;
            Gazelle.Sockets.SocketHandle s = default;
            long end = link.Now + 1_000_000;
            while (b.Accept(listener, out s, out _) != Gazelle.Sockets.Errno.Ok || a.GetState(c) != TcpState.Established)
                if (!link.Step() || link.Now > end) return false;
            a.Send(c, buf, Gazelle.Sockets.MessageFlags.None, out _);
            while (b.Receive(s, buf, Gazelle.Sockets.MessageFlags.None, out int n) != Gazelle.Sockets.Errno.Ok || n == 0)
                if (!link.Step() || link.Now > end) return false;
            b.Send(s, buf, Gazelle.Sockets.MessageFlags.None, out _);
            while (a.Receive(c, buf, Gazelle.Sockets.MessageFlags.None, out int n) != Gazelle.Sockets.Errno.Ok || n == 0)
                if (!link.Step() || link.Now > end) return false;
            a.Close(c); // the client closes first: its side goes to TIME_WAIT
            while (b.Receive(s, buf, Gazelle.Sockets.MessageFlags.None, out int n) != Gazelle.Sockets.Errno.Ok || n != 0)
                if (!link.Step() || link.Now > end) return false;
            b.Close(s);
            while (link.NextDelivery != long.MaxValue && link.Step()) { }
            return true;
        }

        for (int i = 0; i < 300; i++) Assert.That(Cycle(), Is.True, $"warm-up cycle {i}");
        int ok = 0, rounds;
        long allocated = AllocationProbe.LeastAllocated(() => { for (int i = 0; i < 2000; i++) if (Cycle()) ok++; }, out rounds);
        Assert.That(ok, Is.EqualTo(2000 * rounds));
        Assert.That(allocated, Is.Zero, "bytes allocated by 2000 connections");
        Assert.That(a.Counters.TimeWaitRecycled, Is.GreaterThan(0), "TIME_WAIT objects were recycled when the pool ran out");
        // Let every TIME_WAIT expire: only the listener remains.
        for (int i = 0; i < 100_000 && link.Step(); i++) { }
        Assert.That(a.LiveConnections, Is.Zero);
        Assert.That(b.LiveConnections, Is.EqualTo(1));
        Assert.That(a.FlowTableCount + b.FlowTableCount, Is.Zero);
    }
}

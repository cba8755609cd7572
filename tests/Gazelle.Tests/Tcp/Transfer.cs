using Gazelle.Sockets;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>A bulk transfer A → B over a <see cref="SimLink"/> with a byte-exact check of every byte received.</summary>
internal sealed class Transfer
{
    private const int PatternPeriod = 65521; // prime, so offset errors show up
    private readonly byte[] _pattern = new byte[PatternPeriod + 65536];
    private readonly byte[] _rx = new byte[65536];
    public readonly SimLink Link;
    public SocketHandle Client, Server, Listener;
    public long Sent, Received;
    public long Mismatches;
    public bool Trace { get; set; }
    /// <summary>Called after every step of <see cref="Run"/> (to watch counters as the transfer goes).</summary>
    public Action? EachStep { get; set; }
    public long TraceEvery { get; set; } = 20_000;
    private long _nextTrace;

    public Transfer(SimLink link, int seed = 1)
    {
        Link = link;
        var r = new Random(seed);
        for (int i = 0; i < PatternPeriod; i++) _pattern[i] = (byte)r.Next(256);
        for (int i = PatternPeriod; i < _pattern.Length; i++) _pattern[i] = _pattern[i - PatternPeriod];
    }

    /// <summary>Opens listener on B:80, connects from A, accepts; returns false if it does not connect.</summary>
    public bool Connect(string congestion = "cubic", long timeoutMicros = 10_000_000)
    {
        var a = Link.A; var b = Link.B;
        Assert.That(b.Open(SocketKind.Tcp, out Listener), Is.EqualTo(Errno.Ok));
        Assert.That(b.Bind(Listener, new Ipv4Endpoint(Ipv4Address.Any, 80)), Is.EqualTo(Errno.Ok));
        Assert.That(b.Listen(Listener, 16), Is.EqualTo(Errno.Ok));
        Assert.That(a.Open(SocketKind.Tcp, out Client), Is.EqualTo(Errno.Ok));
        Span<byte> cc = stackalloc byte[16];
        int n = System.Text.Encoding.ASCII.GetBytes(congestion, cc);
        Assert.That(a.SetOption(Client, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_CONGESTION, cc[..n]), Is.EqualTo(Errno.Ok));
        Assert.That(a.Connect(Client, new Ipv4Endpoint(SimLink.AddrB, 80)), Is.EqualTo(Errno.EINPROGRESS));
        long end = Link.Now + timeoutMicros;
        while (Link.Now < end)
        {
            if (b.Accept(Listener, out Server, out _) == Errno.Ok && a.GetState(Client) == TcpState.Established) return true;
            if (!Link.Step()) break;
        }
        return false;
    }

    /// <summary>Moves <paramref name="total"/> bytes; returns true when all arrived before the virtual deadline.</summary>
    public bool Run(long total, long deadlineMicros)
    {
        var a = Link.A; var b = Link.B;
        while (Link.Now < deadlineMicros)
        {
            while (Sent < total)
            {
                int chunk = (int)Math.Min(65536, total - Sent);
                int off = (int)(Sent % PatternPeriod);
                if (a.Send(Client, _pattern.AsSpan(off, chunk), MessageFlags.None, out int s) != Errno.Ok || s == 0) break;
                Sent += s;
            }
            while (true)
            {
                var e = b.Receive(Server, _rx, MessageFlags.None, out int got);
                if (e != Errno.Ok || got == 0) break;
                int off = (int)(Received % PatternPeriod);
                if (!_rx.AsSpan(0, got).SequenceEqual(_pattern.AsSpan(off, got))) Mismatches++;
                Received += got;
            }
            if (Received >= total) return true;
            if (Trace && Link.Now >= _nextTrace)
            {
                _nextTrace = Link.Now + TraceEvery;
                var tc = a.Peek(Client)!;
                TestContext.Out.WriteLine($"t={Link.Now / 1000}ms cwnd={tc.Cwnd / 1448} ssth={tc.Ssthresh / 1448} flight={tc.FlightSize / 1448} rec={tc.InRecovery} sacked={tc.SackedBytes / 1448} wnd={tc.SndWnd / 1448} rcvd={Received / 1000000}MB una={tc.SndUna.Value % 100000000} hr={tc.HighRxt.Value % 100000000} max={tc.SndMax.Value % 100000000} sc={tc.SackCount} rtos={a.Counters.RtoTimeouts} lr={a.Counters.LostRetransmits} rl={a.Counters.RackLost} rx={a.Counters.RetransmittedSegments}");
            }
            if (!Link.Step()) return false;
            EachStep?.Invoke();
        }
        return false;
    }

    /// <summary>One request (A → B) and response (B → A) of <paramref name="size"/> bytes each; false on timeout.</summary>
    public bool Exchange(int size, long timeoutMicros)
    {
        var a = Link.A; var b = Link.B;
        long end = Link.Now + timeoutMicros;
        if (a.Send(Client, _pattern.AsSpan(0, size), MessageFlags.None, out int s) != Errno.Ok || s != size) return false;
        int got = 0;
        while (got < size)
        {
            if (b.Receive(Server, _rx.AsSpan(got, size - got), MessageFlags.None, out int n) == Errno.Ok && n > 0) { got += n; continue; }
            if (Link.Now > end || !Link.Step()) return false;
        }
        if (b.Send(Server, _rx.AsSpan(0, size), MessageFlags.None, out s) != Errno.Ok || s != size) return false;
        got = 0;
        while (got < size)
        {
            if (a.Receive(Client, _rx.AsSpan(got, size - got), MessageFlags.None, out int n) == Errno.Ok && n > 0) { got += n; continue; }
            if (Link.Now > end || !Link.Step()) return false;
        }
        if (!_rx.AsSpan(0, size).SequenceEqual(_pattern.AsSpan(0, size))) Mismatches++;
        return true;
    }
}

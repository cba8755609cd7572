using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>Records every segment TCP emits.</summary>
internal sealed class RecordingOutput : ITcpOutput
{
    public readonly Queue<(TcpRepr Header, byte[] Payload)> Segments = new();
    public int Mtu = 1500;
    public bool Send(Ipv4Address local, Ipv4Address remote, in TcpRepr header, ReadOnlySpan<byte> p1, ReadOnlySpan<byte> p2, byte tos)
    {
        var p = new byte[p1.Length + p2.Length];
        p1.CopyTo(p);
        p2.CopyTo(p.AsSpan(p1.Length));
        Segments.Enqueue((header, p));
        return true;
    }
    public int PathMtu(Ipv4Address remote) => Mtu;
}

/// <summary>
/// TCP state fixture (STYLE.md item 7): one TcpLayer, a recording output, a virtual clock, and a scripted
/// peer at <see cref="Remote"/>:<see cref="RemotePort"/>.
/// </summary>
public abstract class TcpFixture
{
    protected static readonly Ipv4Address Local = new(10, 0, 0, 1);
    protected static readonly Ipv4Address Remote = new(10, 0, 0, 2);
    protected const ushort LocalPort = 80;
    protected const ushort RemotePort = 40000;
    protected const uint PeerIsn = 1000;

    internal RecordingOutput Out = null!;
    protected TcpLayer Tcp = null!;
    protected long NowUs;
    protected Instant Now => new(NowUs);
    /// <summary>The peer's next sequence number (what we should acknowledge).</summary>
    protected SeqNum PeerNxt;
    /// <summary>Our next sequence number as the peer has seen it.</summary>
    protected SeqNum OurNxt;
    protected uint PeerTs = 100;
    protected bool UseTimestamps;
    protected SocketHandle Listener = SocketHandle.Invalid;

    [SetUp]
    public void SetUpLayer()
    {
        Out = new RecordingOutput();
        NowUs = 10_000_000;
        Tcp = new TcpLayer(new StackConfig { Address = Local, Netmask = new Ipv4Address(255, 255, 255, 0), MaxTcpConnections = 16 }, Out);
        Tcp.QuickAcks = 0; // the scripted peers here expect delayed ACKs from the first segment
        Tcp.AckSoonEnabled = false; // ... and the ACK of a FIN or of a SYN-ACK in the same call
        UseTimestamps = false;
        PeerTs = 100;
        Listener = SocketHandle.Invalid;
    }

    /// <summary>Moves the clock forward from deadline to deadline (as a poll loop would), running timers on the way.</summary>
    protected void Advance(long ms)
    {
        long end = NowUs + ms * 1000;
        while (true)
        {
            long next = Tcp.Poll(Now).Microseconds;
            if (next > end) break;
            NowUs = Math.Max(next, NowUs + 1);
        }
        NowUs = end;
        Tcp.Poll(Now);
    }

    /// <summary>Leak check (lwIP-style): close every handle, let every timer run out; nothing may remain.</summary>
    [TearDown]
    public void NoLeaks()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status != NUnit.Framework.Interfaces.TestStatus.Passed) return;
        for (int i = 0; i < Tcp.PoolCapacity; i++) Tcp.Close(new SocketHandle(i));
        Advance(3_600_000);
        Assert.That(Tcp.LiveConnections, Is.Zero, "connection objects leaked");
        Assert.That(Tcp.FlowTableCount, Is.Zero, "flow table entries leaked");
    }

    protected TcpRepr Seg(TcpFlags flags, SeqNum seq, SeqNum ack = default, ushort window = 65535)
    {
        var r = new TcpRepr { SrcPort = RemotePort, DstPort = LocalPort, Seq = seq, Ack = ack, Flags = flags, Window = window, Options = TcpOptions.None };
        if (UseTimestamps) { r.Options.HasTimestamp = true; r.Options.TsVal = PeerTs; r.Options.TsEcr = 0; }
        return r;
    }

    protected void Send(TcpRepr r, ReadOnlySpan<byte> payload = default) => Tcp.Input(Remote, Local, r, payload, Now);

    /// <summary>Sends data from the peer at PeerNxt and advances PeerNxt.</summary>
    protected void SendData(int length, ushort window = 65535)
    {
        var p = new byte[length];
        for (int i = 0; i < length; i++) p[i] = (byte)(PeerNxt.Value + (uint)i);
        Send(Seg(TcpFlags.Ack | TcpFlags.Psh, PeerNxt, OurNxt, window), p);
        PeerNxt += length;
    }

    internal (TcpRepr Header, byte[] Payload) Expect(TcpFlags flags, SeqNum? seq = null, SeqNum? ack = null, int? length = null)
    {
        Assert.That(Out.Segments, Is.Not.Empty, $"expected a segment with {flags}");
        var s = Out.Segments.Dequeue();
        Assert.That(s.Header.Flags & ~TcpFlags.Psh, Is.EqualTo(flags & ~TcpFlags.Psh), "flags");
        if (seq is { } sq) Assert.That(s.Header.Seq, Is.EqualTo(sq), "seq");
        if (ack is { } ak) Assert.That(s.Header.Ack, Is.EqualTo(ak), "ack");
        if (length is { } l) Assert.That(s.Payload.Length, Is.EqualTo(l), "payload length");
        return s;
    }

    protected void ExpectNothing() =>
        Assert.That(Out.Segments, Is.Empty, () => $"unexpected segment {Out.Segments.Peek().Header.Flags} seq={Out.Segments.Peek().Header.Seq}");

    protected void ListenOn(int backlog = 8)
    {
        Assert.That(Tcp.Open(SocketKind.Tcp, out Listener), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Bind(Listener, new Ipv4Endpoint(Ipv4Address.Any, LocalPort)), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Listen(Listener, backlog), Is.EqualTo(Errno.Ok));
    }

    protected TcpRepr SynWithOptions(SeqNum seq, bool sack = true, byte wscale = 7)
    {
        var syn = Seg(TcpFlags.Syn, seq);
        syn.Options.Mss = 1460;
        syn.Options.WindowScale = wscale;
        syn.Options.SackPermitted = sack;
        return syn;
    }

    /// <summary>Passive open through a listener on port 80; returns the accepted connection.</summary>
    protected SocketHandle Established(bool timestamps = false, bool sack = true, byte wscale = TcpOptions.NoWindowScale)
    {
        UseTimestamps = timestamps;
        if (!Listener.IsValid) ListenOn();
        Send(SynWithOptions(new SeqNum(PeerIsn), sack, wscale));
        var synAck = Expect(TcpFlags.Syn | TcpFlags.Ack, ack: new SeqNum(PeerIsn + 1));
        PeerNxt = new SeqNum(PeerIsn + 1);
        OurNxt = synAck.Header.Seq + 1;
        Send(Seg(TcpFlags.Ack, PeerNxt, OurNxt));
        ExpectNothing();
        Assert.That(Tcp.Accept(Listener, out var c, out var remote), Is.EqualTo(Errno.Ok));
        Assert.That(remote, Is.EqualTo(new Ipv4Endpoint(Remote, RemotePort)));
        Assert.That(Tcp.GetState(c), Is.EqualTo(TcpState.Established));
        return c;
    }

    /// <summary>Active open to Remote:RemotePort... from our side; the scripted peer answers from port 80.</summary>
    protected SocketHandle ActiveEstablished(out ushort localPort)
    {
        Assert.That(Tcp.Open(SocketKind.Tcp, out var s), Is.EqualTo(Errno.Ok));
        Assert.That(Tcp.Connect(s, new Ipv4Endpoint(Remote, 80)), Is.EqualTo(Errno.EINPROGRESS));
        var syn = Out.Segments.Dequeue();
        Assert.That(syn.Header.Flags, Is.EqualTo(TcpFlags.Syn));
        localPort = syn.Header.SrcPort;
        var r = new TcpRepr { SrcPort = 80, DstPort = localPort, Seq = new SeqNum(PeerIsn), Ack = syn.Header.Seq + 1,
            Flags = TcpFlags.Syn | TcpFlags.Ack, Window = 65535, Options = TcpOptions.None };
        r.Options.Mss = 1460;
        Tcp.Input(Remote, Local, r, default, Now);
        Expect(TcpFlags.Ack, seq: syn.Header.Seq + 1, ack: new SeqNum(PeerIsn + 1));
        Assert.That(Tcp.GetState(s), Is.EqualTo(TcpState.Established));
        return s;
    }

    protected static byte[] Bytes(int n, int seed = 0)
    {
        var b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte)(i * 31 + seed);
        return b;
    }
}

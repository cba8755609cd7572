using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

using static Gazelle.Bench.BenchSetup;

namespace Gazelle.Bench;

/// <summary>
/// The TCP layer alone, against a scripted peer (no IP, no device): one established connection with
/// timestamps and SACK, the output going to a sink that only keeps the last header (the cost of IP and
/// Ethernet output is in <see cref="HeaderBenchmarks"/> and <see cref="StackRoundTripBenchmarks"/>).
/// <list type="bullet">
/// <item><see cref="FlowLookup"/>: the connection table's 4-tuple lookup, among 1,024 live flows.</item>
/// <item><see cref="InputInOrderData"/>: the receive fast path: an in-order 64-byte data segment, then the
/// application reads it (every second segment sends an ACK, RFC 9293 §3.8.6.3).</item>
/// <item><see cref="OutputSegmentThenPureAck"/>: the application sends 64 bytes (TCP_NODELAY: one data segment
/// out at once), then the peer's pure ACK for it comes in (the send fast path and the ACK fast path).</item>
/// <item><see cref="OutputBurstOf16"/>: 16 sends of 64 bytes (16 segments out), then one pure ACK; per segment.</item>
/// </list>
/// The virtual clock advances 1 µs per invocation.
/// </summary>
[MemoryDiagnoser]
public class TcpBenchmarks
{
    public const int PayloadLength = 64;
    private const int BurstSegments = 16;
    private static readonly Ipv4Address Local = Ipv4Address.Parse("10.0.0.1");
    private static readonly Ipv4Address Remote = Ipv4Address.Parse("10.0.0.2");
    private const ushort LocalPort = 80, RemotePort = 40_000;

    private readonly SinkOutput _out = new();
    private readonly TcpLayer _tcp;
    private readonly FlowTable _flows;
    private readonly SocketHandle _connection;
    private readonly byte[] _payload = new byte[PayloadLength];
    private readonly byte[] _buffer = new byte[4096];
    private SeqNum _peerNxt, _ourNxt;
    private uint _peerTs = 1000;
    private Instant _now = Instant.FromMilliseconds(10_000);

    public TcpBenchmarks()
    {
        _tcp = new TcpLayer(new StackConfig { Address = Local, Netmask = Ipv4Address.Parse("255.255.255.0"), MaxTcpConnections = 64 }, _out);
        Check(_tcp.Open(SocketKind.Tcp, out var listener));
        Check(_tcp.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, LocalPort)));
        Check(_tcp.Listen(listener, 8));
        var syn = Segment(TcpFlags.Syn, new SeqNum(5000), default);
        syn.Options.Mss = 1460;
        syn.Options.WindowScale = 7;
        syn.Options.SackPermitted = true;
        _tcp.Input(Remote, Local, syn, default, _now);
        if (_out.Count != 1 || _out.Last.Flags != (TcpFlags.Syn | TcpFlags.Ack)) throw new InvalidOperationException("no SYN-ACK");
        _peerNxt = new SeqNum(5001);
        _ourNxt = _out.Last.Seq + 1;
        _tcp.Input(Remote, Local, Segment(TcpFlags.Ack, _peerNxt, _ourNxt), default, _now);
        Check(_tcp.Accept(listener, out _connection, out _));
        Span<byte> one = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(one, 1);
        Check(_tcp.SetOption(_connection, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one));
        new Random(1).NextBytes(_payload);

        _flows = new FlowTable(1024, 0x5EED);
        for (int i = 0; i < 1024; i++)
            _flows.Add(Local, LocalPort, new Ipv4Address(0x0A01_0000u + (uint)i), (ushort)(10_000 + i), i);
    }

    public TcpLayer Layer => _tcp;
    public SocketHandle Connection => _connection;
    /// <summary>Segments the layer has emitted.</summary>
    public long SegmentsOut => _out.Count;
    /// <summary>Our send sequence as the peer has acknowledged it.</summary>
    public SeqNum PeerAcked => _ourNxt;

    [Benchmark]
    public int FlowLookup() => _flows.Find(Local, LocalPort, new Ipv4Address(0x0A01_0000u + 777), 10_777);

    /// <summary>Returns the bytes the application read (64 when the fast path delivered the segment).</summary>
    [Benchmark]
    public int InputInOrderData()
    {
        _now += new TimeSpanMicros(1);
        _tcp.Input(Remote, Local, Segment(TcpFlags.Ack | TcpFlags.Psh, _peerNxt, _ourNxt), _payload, _now);
        _peerNxt += PayloadLength;
        return _tcp.Receive(_connection, _buffer, MessageFlags.None, out int n) == Errno.Ok ? n : 0;
    }

    /// <summary>Returns the bytes sent and acknowledged.</summary>
    [Benchmark]
    public int OutputSegmentThenPureAck()
    {
        _now += new TimeSpanMicros(1);
        if (_tcp.Send(_connection, _payload, MessageFlags.None, out int sent) != Errno.Ok) return 0;
        _ourNxt += sent;
        _tcp.Input(Remote, Local, Segment(TcpFlags.Ack, _peerNxt, _ourNxt), default, _now);
        return sent;
    }

    [Benchmark(OperationsPerInvoke = BurstSegments)]
    public int OutputBurstOf16()
    {
        _now += new TimeSpanMicros(1);
        int total = 0;
        for (int i = 0; i < BurstSegments; i++)
        {
            if (_tcp.Send(_connection, _payload, MessageFlags.None, out int sent) != Errno.Ok) return 0;
            total += sent;
        }
        _ourNxt += total;
        _tcp.Input(Remote, Local, Segment(TcpFlags.Ack, _peerNxt, _ourNxt), default, _now);
        return total;
    }

    private TcpRepr Segment(TcpFlags flags, SeqNum seq, SeqNum ack)
    {
        var r = new TcpRepr { SrcPort = RemotePort, DstPort = LocalPort, Seq = seq, Ack = ack, Flags = flags, Window = 65535, Options = TcpOptions.None };
        r.Options.HasTimestamp = true;
        r.Options.TsVal = _peerTs++;
        r.Options.TsEcr = _out.Last.Options.TsVal;
        return r;
    }

    /// <summary>Keeps the last header and a count: what TCP emits, at no cost of its own.</summary>
    private sealed class SinkOutput : ITcpOutput
    {
        public TcpRepr Last;
        public long Count;
        public bool Send(Ipv4Address local, Ipv4Address remote, in TcpRepr header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2, byte tos)
        {
            Last = header;
            Count++;
            return true;
        }
        public int PathMtu(Ipv4Address remote) => 1500;
    }
}

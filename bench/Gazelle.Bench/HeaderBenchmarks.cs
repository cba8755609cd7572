using BenchmarkDotNet.Attributes;
using Gazelle.Wire;

namespace Gazelle.Bench;

/// <summary>
/// Header parse and emit over whole frames, the way the receive and transmit paths use the wire views:
/// Ethernet + IPv4 + TCP carrying timestamps, SACK-permitted-sized padding and two SACK blocks (a
/// 52-byte TCP header), and Ethernet + IPv4 + UDP; 64 bytes of payload each. Parsing validates every
/// view, verifies the IPv4 header checksum and the transport checksum (pseudo-header included) and
/// builds the Reprs; emitting writes every header with its checksums around a payload already in place.
/// </summary>
[MemoryDiagnoser]
public class HeaderBenchmarks
{
    public const int PayloadLength = 64;

    private static readonly MacAddress MacA = MacAddress.Parse("02:00:00:00:00:0a");
    private static readonly MacAddress MacB = MacAddress.Parse("02:00:00:00:00:0b");
    private static readonly Ipv4Address IpA = Ipv4Address.Parse("10.0.0.1");
    private static readonly Ipv4Address IpB = Ipv4Address.Parse("10.0.0.2");

    private readonly byte[] _tcpFrame;
    private readonly byte[] _udpFrame;
    private readonly byte[] _out = new byte[2048];
    private TcpRepr _tcp;

    public HeaderBenchmarks()
    {
        _tcp = new TcpRepr
        {
            SrcPort = 40_000,
            DstPort = 80,
            Seq = new SeqNum(0x1000_0000),
            Ack = new SeqNum(0x2000_0000),
            Flags = TcpFlags.Ack | TcpFlags.Psh,
            Window = 512,
            Options = TcpOptions.None,
        };
        _tcp.Options.HasTimestamp = true;
        _tcp.Options.TsVal = 123_456;
        _tcp.Options.TsEcr = 654_321;
        _tcp.Options.SackCount = 2;
        _tcp.Options.Sack[0] = new SackBlock(new SeqNum(0x2000_1000), new SeqNum(0x2000_2000));
        _tcp.Options.Sack[1] = new SackBlock(new SeqNum(0x2000_3000), new SeqNum(0x2000_4000));

        _tcpFrame = new byte[EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength + TcpHeader.EmittedLength(_tcp) + PayloadLength];
        _udpFrame = new byte[EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength + UdpDatagram.HeaderLength + PayloadLength];
        new Random(6).NextBytes(_out);
        EmitTcp(_tcpFrame);
        EmitUdp(_udpFrame);
    }

    /// <summary>The emitted frames (for the allocation test and for checking that parse accepts them).</summary>
    public ReadOnlySpan<byte> TcpFrame => _tcpFrame;
    public ReadOnlySpan<byte> UdpFrame => _udpFrame;

    [Benchmark]
    public uint ParseTcp()
    {
        if (!EthernetFrame.TryCreate(_tcpFrame, out var eth) || eth.EtherType != EtherType.Ipv4) return 0;
        var ethRepr = EthernetRepr.Parse(eth);
        if (!Ipv4Packet.TryCreate(eth.Payload, out var ip) || !ip.VerifyChecksum() || ip.Protocol != IpProtocol.Tcp) return 0;
        var ipRepr = Ipv4Repr.Parse(ip);
        if (!TcpHeader.TryCreate(ip.Payload, out var tcp) || !tcp.VerifyChecksum(ipRepr.Source, ipRepr.Destination)) return 0;
        if (!tcp.TryParse(out var repr)) return 0;
        return repr.Seq.Value ^ repr.Options.TsVal ^ repr.Options.Sack[1].Right.Value ^ (uint)tcp.Payload.Length ^ ethRepr.EtherType;
    }

    [Benchmark]
    public int EmitTcp() => EmitTcp(_out);

    [Benchmark]
    public uint ParseUdp()
    {
        if (!EthernetFrame.TryCreate(_udpFrame, out var eth) || eth.EtherType != EtherType.Ipv4) return 0;
        var ethRepr = EthernetRepr.Parse(eth);
        if (!Ipv4Packet.TryCreate(eth.Payload, out var ip) || !ip.VerifyChecksum() || ip.Protocol != IpProtocol.Udp) return 0;
        var ipRepr = Ipv4Repr.Parse(ip);
        if (!UdpDatagram.TryCreate(ip.Payload, out var udp) || !udp.VerifyChecksum(ipRepr.Source, ipRepr.Destination)) return 0;
        var repr = UdpRepr.Parse(udp);
        return ((uint)repr.SourcePort << 16 | repr.DestinationPort) ^ (uint)udp.Payload.Length ^ ethRepr.EtherType;
    }

    [Benchmark]
    public int EmitUdp() => EmitUdp(_out);

    private int EmitTcp(Span<byte> frame)
    {
        int tcpLength = TcpHeader.EmittedLength(_tcp) + PayloadLength;
        new EthernetRepr(MacB, MacA, EtherType.Ipv4).Emit(frame);
        new Ipv4Repr { Source = IpA, Destination = IpB, Protocol = IpProtocol.Tcp, Ttl = 64, DontFragment = true, PayloadLength = tcpLength }
            .Emit(frame[EthernetFrame.HeaderLength..]);
        var segment = frame.Slice(EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength, tcpLength);
        TcpHeader.Emit(_tcp, segment);
        TcpHeader.WriteChecksum(segment, IpA, IpB);
        return EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength + tcpLength;
    }

    private static int EmitUdp(Span<byte> frame)
    {
        int udpLength = UdpDatagram.HeaderLength + PayloadLength;
        new EthernetRepr(MacB, MacA, EtherType.Ipv4).Emit(frame);
        new Ipv4Repr { Source = IpA, Destination = IpB, Protocol = IpProtocol.Udp, Ttl = 64, PayloadLength = udpLength }
            .Emit(frame[EthernetFrame.HeaderLength..]);
        new UdpRepr(40_000, 53).Emit(frame.Slice(EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength, udpLength), IpA, IpB);
        return EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength + udpLength;
    }
}

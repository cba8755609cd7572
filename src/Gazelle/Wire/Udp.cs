using System.Buffers.Binary;

namespace Gazelle.Wire;

/// <summary>
/// A view over a UDP datagram (RFC 768): source port (0..1), destination port (2..3), length (4..5,
/// header included), checksum (6..7; 0 = none sent). Bytes past the length field are not part of it.
/// </summary>
public readonly ref struct UdpDatagram
{
    public const int SourcePortOffset = 0;
    public const int DestinationPortOffset = 2;
    public const int LengthOffset = 4;
    public const int ChecksumOffset = 6;
    public const int HeaderLength = 8;

    private readonly ReadOnlySpan<byte> _bytes;

    private UdpDatagram(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>Validates the length field against the bytes present; the view covers exactly that length.</summary>
    public static bool TryCreate(ReadOnlySpan<byte> bytes, out UdpDatagram datagram)
    {
        datagram = default;
        if (bytes.Length < HeaderLength) return false;
        int len = BinaryPrimitives.ReadUInt16BigEndian(bytes[LengthOffset..]);
        if (len < HeaderLength || len > bytes.Length) return false;
        datagram = new UdpDatagram(bytes[..len]);
        return true;
    }

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[SourcePortOffset..]);
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[DestinationPortOffset..]);
    public ushort Length => BinaryPrimitives.ReadUInt16BigEndian(_bytes[LengthOffset..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumOffset..]);
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>True when the checksum is absent (0, RFC 768) or verifies with the pseudo-header.</summary>
    public bool VerifyChecksum(Ipv4Address source, Ipv4Address destination)
    {
        if (Checksum == 0) return true;
        uint s = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(source, destination, IpProtocol.Udp, _bytes.Length), InternetChecksum.Sum(_bytes));
        return s == 0xFFFF;
    }
}

/// <summary>A parsed UDP header.</summary>
public readonly record struct UdpRepr(ushort SourcePort, ushort DestinationPort)
{
    public static UdpRepr Parse(in UdpDatagram d) => new(d.SourcePort, d.DestinationPort);

    /// <summary>Writes the header at the start of <paramref name="datagram"/> (header + payload already in
    /// place, its length = 8 + payload) and the checksum with the pseudo-header. A computed 0 is sent as
    /// 0xFFFF (RFC 768).</summary>
    public void Emit(Span<byte> datagram, Ipv4Address source, Ipv4Address destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(datagram[UdpDatagram.SourcePortOffset..], SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[UdpDatagram.DestinationPortOffset..], DestinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[UdpDatagram.LengthOffset..], (ushort)datagram.Length);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[UdpDatagram.ChecksumOffset..], 0);
        uint s = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(source, destination, IpProtocol.Udp, datagram.Length), InternetChecksum.Sum(datagram));
        ushort c = InternetChecksum.Finish(s);
        if (c == 0) c = 0xFFFF;
        BinaryPrimitives.WriteUInt16BigEndian(datagram[UdpDatagram.ChecksumOffset..], c);
    }
}

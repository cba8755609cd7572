using System.Buffers.Binary;

namespace Gazelle.Wire;

/// <summary>IP protocol numbers (IANA) this stack handles.</summary>
public static class IpProtocol
{
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
}

/// <summary>
/// A view over an IPv4 packet (RFC 791 §3.1): version/IHL (0), TOS (1), total length (2..3),
/// identification (4..5), flags/fragment offset (6..7), TTL (8), protocol (9), header checksum
/// (10..11), source (12..15), destination (16..19), options (20..IHL*4). Options are tolerated and
/// skipped. Bytes past the total length (Ethernet padding) are not part of the packet.
/// </summary>
public readonly ref struct Ipv4Packet
{
    public const int VersionIhlOffset = 0;
    public const int TosOffset = 1;
    public const int TotalLengthOffset = 2;
    public const int IdentificationOffset = 4;
    public const int FlagsFragmentOffset = 6;
    public const int TtlOffset = 8;
    public const int ProtocolOffset = 9;
    public const int ChecksumOffset = 10;
    public const int SourceOffset = 12;
    public const int DestinationOffset = 16;
    public const int MinHeaderLength = 20;
    public const int MaxHeaderLength = 60;
    public const ushort DontFragmentFlag = 0x4000;
    public const ushort MoreFragmentsFlag = 0x2000;
    public const ushort FragmentOffsetMask = 0x1FFF;

    private readonly ReadOnlySpan<byte> _bytes;

    private Ipv4Packet(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>Validates version, IHL and total length against the bytes present; the view then
    /// covers exactly the total length.</summary>
    public static bool TryCreate(ReadOnlySpan<byte> bytes, out Ipv4Packet packet)
    {
        packet = default;
        if (bytes.Length < MinHeaderLength) return false;
        byte vihl = bytes[VersionIhlOffset];
        if (vihl >> 4 != 4) return false;
        int ihl = (vihl & 0xF) * 4;
        if (ihl < MinHeaderLength || ihl > bytes.Length) return false;
        int total = BinaryPrimitives.ReadUInt16BigEndian(bytes[TotalLengthOffset..]);
        if (total < ihl || total > bytes.Length) return false;
        packet = new Ipv4Packet(bytes[..total]);
        return true;
    }

    /// <summary>For the datagram quoted in an ICMP error (RFC 792: header + at least 8 bytes): the
    /// header must be whole, but the total length may exceed the bytes present. The payload is what is
    /// present.</summary>
    public static bool TryCreateQuoted(ReadOnlySpan<byte> bytes, out Ipv4Packet packet)
    {
        packet = default;
        if (bytes.Length < MinHeaderLength) return false;
        byte vihl = bytes[VersionIhlOffset];
        if (vihl >> 4 != 4) return false;
        int ihl = (vihl & 0xF) * 4;
        if (ihl < MinHeaderLength || ihl > bytes.Length) return false;
        int total = BinaryPrimitives.ReadUInt16BigEndian(bytes[TotalLengthOffset..]);
        if (total < ihl) return false;
        packet = new Ipv4Packet(bytes[..Math.Min(total, bytes.Length)]);
        return true;
    }

    public int HeaderLength
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => (_bytes[VersionIhlOffset] & 0xF) * 4;
    }
    public byte Tos => _bytes[TosOffset];
    public ushort TotalLength => BinaryPrimitives.ReadUInt16BigEndian(_bytes[TotalLengthOffset..]);
    public ushort Identification => BinaryPrimitives.ReadUInt16BigEndian(_bytes[IdentificationOffset..]);
    private ushort FlagsFragment => BinaryPrimitives.ReadUInt16BigEndian(_bytes[FlagsFragmentOffset..]);
    public bool DontFragment => (FlagsFragment & DontFragmentFlag) != 0;
    public bool MoreFragments => (FlagsFragment & MoreFragmentsFlag) != 0;
    /// <summary>The reserved flag bit (must be zero, RFC 791).</summary>
    public bool ReservedFlag => (FlagsFragment & 0x8000) != 0;
    /// <summary>Fragment offset in bytes (the field counts 8-byte units).</summary>
    public int FragmentOffset => (FlagsFragment & FragmentOffsetMask) * 8;
    public bool IsFragment => MoreFragments || (FlagsFragment & FragmentOffsetMask) != 0;
    public byte Ttl => _bytes[TtlOffset];
    public byte Protocol => _bytes[ProtocolOffset];
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumOffset..]);
    public Ipv4Address Source => Ipv4Address.Read(_bytes[SourceOffset..]);
    public Ipv4Address Destination => Ipv4Address.Read(_bytes[DestinationOffset..]);
    public ReadOnlySpan<byte> Options => _bytes[MinHeaderLength..HeaderLength];
    public ReadOnlySpan<byte> Header => _bytes[..HeaderLength];
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];
    /// <summary>The bytes of the packet (total length, or what is present for a quoted one).</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>True when the header checksum verifies (the sum over the header, checksum included, is all ones).</summary>
    public bool VerifyChecksum() => InternetChecksum.Sum(Header) == 0xFFFF;
}

/// <summary>A parsed IPv4 header (options not represented; emitted headers carry none).</summary>
public struct Ipv4Repr
{
    public Ipv4Address Source;
    public Ipv4Address Destination;
    public byte Protocol;
    public byte Ttl;
    public byte Tos;
    public ushort Identification;
    public bool DontFragment;
    public bool MoreFragments;
    /// <summary>Fragment offset in bytes (a multiple of 8).</summary>
    public int FragmentOffset;
    /// <summary>Bytes after the header.</summary>
    public int PayloadLength;

    public const int HeaderLength = Ipv4Packet.MinHeaderLength;

    public static Ipv4Repr Parse(in Ipv4Packet p) => new()
    {
        Source = p.Source,
        Destination = p.Destination,
        Protocol = p.Protocol,
        Ttl = p.Ttl,
        Tos = p.Tos,
        Identification = p.Identification,
        DontFragment = p.DontFragment,
        MoreFragments = p.MoreFragments,
        FragmentOffset = p.FragmentOffset,
        PayloadLength = p.Payload.Length,
    };

    /// <summary>Writes a 20-byte header with its checksum into <paramref name="buffer"/>.</summary>
    public readonly void Emit(Span<byte> buffer)
    {
        var h = buffer[..HeaderLength];
        h[Ipv4Packet.VersionIhlOffset] = 0x45;
        h[Ipv4Packet.TosOffset] = Tos;
        BinaryPrimitives.WriteUInt16BigEndian(h[Ipv4Packet.TotalLengthOffset..], (ushort)(HeaderLength + PayloadLength));
        BinaryPrimitives.WriteUInt16BigEndian(h[Ipv4Packet.IdentificationOffset..], Identification);
        ushort ff = (ushort)((FragmentOffset >> 3) & Ipv4Packet.FragmentOffsetMask);
        if (DontFragment) ff |= Ipv4Packet.DontFragmentFlag;
        if (MoreFragments) ff |= Ipv4Packet.MoreFragmentsFlag;
        BinaryPrimitives.WriteUInt16BigEndian(h[Ipv4Packet.FlagsFragmentOffset..], ff);
        h[Ipv4Packet.TtlOffset] = Ttl;
        h[Ipv4Packet.ProtocolOffset] = Protocol;
        Source.Write(h[Ipv4Packet.SourceOffset..]);
        Destination.Write(h[Ipv4Packet.DestinationOffset..]);
        // RFC 1071 over the ten header words, added from the values just written (no second pass over the bytes).
        ulong sum = 0x4500u + Tos + (uint)(ushort)(HeaderLength + PayloadLength) + Identification + ff + ((uint)Ttl << 8) + Protocol
            + (Source.Value >> 16) + (Source.Value & 0xFFFF) + (Destination.Value >> 16) + (Destination.Value & 0xFFFF);
        BinaryPrimitives.WriteUInt16BigEndian(h[Ipv4Packet.ChecksumOffset..], InternetChecksum.Finish(InternetChecksum.Fold(sum)));
    }
}

using System.Buffers.Binary;

namespace Gazelle.Wire;

/// <summary>ICMPv4 message types (RFC 792).</summary>
public enum Icmpv4Type : byte
{
    EchoReply = 0,
    DestinationUnreachable = 3,
    EchoRequest = 8,
    TimeExceeded = 11,
}

/// <summary>Destination unreachable codes (RFC 792, RFC 1122 §3.2.2.1).</summary>
public static class Icmpv4UnreachableCode
{
    public const byte Network = 0;
    public const byte Host = 1;
    public const byte Protocol = 2;
    public const byte Port = 3;
    /// <summary>Fragmentation needed and DF set; bytes 6..7 carry the next-hop MTU (RFC 1191 §4).</summary>
    public const byte FragmentationNeeded = 4;
}

/// <summary>
/// A view over an ICMPv4 message: type (0), code (1), checksum (2..3), a 4-byte rest-of-header
/// (echo: identifier 4..5, sequence 6..7; frag-needed: unused 4..5, next-hop MTU 6..7), then data
/// (echo data, or the quoted IP header + first 8 bytes for errors).
/// </summary>
public readonly ref struct Icmpv4Packet
{
    public const int TypeOffset = 0;
    public const int CodeOffset = 1;
    public const int ChecksumOffset = 2;
    public const int IdentifierOffset = 4;
    public const int SequenceOffset = 6;
    public const int NextHopMtuOffset = 6;
    public const int HeaderLength = 8;

    private readonly ReadOnlySpan<byte> _bytes;

    private Icmpv4Packet(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public static bool TryCreate(ReadOnlySpan<byte> bytes, out Icmpv4Packet packet)
    {
        packet = default;
        if (bytes.Length < HeaderLength) return false;
        packet = new Icmpv4Packet(bytes);
        return true;
    }

    public byte Type => _bytes[TypeOffset];
    public byte Code => _bytes[CodeOffset];
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumOffset..]);
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_bytes[IdentifierOffset..]);
    public ushort Sequence => BinaryPrimitives.ReadUInt16BigEndian(_bytes[SequenceOffset..]);
    public ushort NextHopMtu => BinaryPrimitives.ReadUInt16BigEndian(_bytes[NextHopMtuOffset..]);
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];
    public ReadOnlySpan<byte> Bytes => _bytes;

    public bool VerifyChecksum() => InternetChecksum.Sum(_bytes) == 0xFFFF;
}

/// <summary>A parsed ICMPv4 header; the data (echo payload or quoted datagram) travels beside it.</summary>
public readonly record struct Icmpv4Repr(Icmpv4Type Type, byte Code, ushort Identifier = 0, ushort Sequence = 0, ushort NextHopMtu = 0)
{
    public static Icmpv4Repr EchoRequest(ushort id, ushort seq) => new(Icmpv4Type.EchoRequest, 0, id, seq);
    public static Icmpv4Repr EchoReply(ushort id, ushort seq) => new(Icmpv4Type.EchoReply, 0, id, seq);
    public static Icmpv4Repr Unreachable(byte code, ushort nextHopMtu = 0) => new(Icmpv4Type.DestinationUnreachable, code, 0, 0, nextHopMtu);
    /// <summary>Code 0: TTL exceeded in transit; 1: fragment reassembly time exceeded.</summary>
    public static Icmpv4Repr TimeExceeded(byte code) => new(Icmpv4Type.TimeExceeded, code);

    /// <summary>Fails for types this stack does not handle and for codes out of range.</summary>
    public static bool TryParse(in Icmpv4Packet p, out Icmpv4Repr repr)
    {
        repr = default;
        switch ((Icmpv4Type)p.Type)
        {
            case Icmpv4Type.EchoRequest:
            case Icmpv4Type.EchoReply:
                if (p.Code != 0) return false;
                repr = new Icmpv4Repr((Icmpv4Type)p.Type, 0, p.Identifier, p.Sequence);
                return true;
            case Icmpv4Type.DestinationUnreachable:
                if (p.Code > 15) return false;
                repr = new Icmpv4Repr(Icmpv4Type.DestinationUnreachable, p.Code, 0, 0,
                    p.Code == Icmpv4UnreachableCode.FragmentationNeeded ? p.NextHopMtu : (ushort)0);
                return true;
            case Icmpv4Type.TimeExceeded:
                if (p.Code > 1) return false;
                repr = new Icmpv4Repr(Icmpv4Type.TimeExceeded, p.Code);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Writes the 8-byte header at the start of <paramref name="message"/> and the checksum
    /// over the whole message (its data must already be in place after the header).</summary>
    public void Emit(Span<byte> message)
    {
        message[Icmpv4Packet.TypeOffset] = (byte)Type;
        message[Icmpv4Packet.CodeOffset] = Code;
        BinaryPrimitives.WriteUInt16BigEndian(message[Icmpv4Packet.ChecksumOffset..], 0);
        if (Type is Icmpv4Type.EchoRequest or Icmpv4Type.EchoReply)
        {
            BinaryPrimitives.WriteUInt16BigEndian(message[Icmpv4Packet.IdentifierOffset..], Identifier);
            BinaryPrimitives.WriteUInt16BigEndian(message[Icmpv4Packet.SequenceOffset..], Sequence);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(message[Icmpv4Packet.IdentifierOffset..], 0);
            BinaryPrimitives.WriteUInt16BigEndian(message[Icmpv4Packet.NextHopMtuOffset..], NextHopMtu);
        }
        BinaryPrimitives.WriteUInt16BigEndian(message[Icmpv4Packet.ChecksumOffset..], InternetChecksum.Compute(message));
    }
}

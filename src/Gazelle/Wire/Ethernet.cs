using System.Buffers.Binary;

namespace Gazelle.Wire;

/// <summary>EtherType values this stack knows (IEEE 802.3, IANA).</summary>
public static class EtherType
{
    public const ushort Ipv4 = 0x0800;
    public const ushort Arp = 0x0806;
    /// <summary>IEEE 802.1Q customer VLAN tag protocol identifier.</summary>
    public const ushort Vlan = 0x8100;
    public const ushort Ipv6 = 0x86DD;
}

/// <summary>
/// A view over an Ethernet II frame, with at most one IEEE 802.1Q tag: destination (0..5), source
/// (6..11), EtherType or TPID (12..13); when tagged, TCI (14..15) and the inner EtherType (16..17).
/// The FCS is not part of the data (devices strip it).
/// </summary>
public readonly ref struct EthernetFrame
{
    public const int DestinationOffset = 0;
    public const int SourceOffset = 6;
    public const int EtherTypeOffset = 12;
    public const int TciOffset = 14;
    public const int InnerEtherTypeOffset = 16;
    public const int HeaderLength = 14;
    public const int TaggedHeaderLength = 18;
    /// <summary>Smallest frame on the wire without FCS (IEEE 802.3: 64 with FCS); shorter frames are padded.</summary>
    public const int MinimumFrameLength = 60;

    private readonly ReadOnlySpan<byte> _bytes;

    private EthernetFrame(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>Validates that the whole (possibly tagged) header is present.</summary>
    public static bool TryCreate(ReadOnlySpan<byte> bytes, out EthernetFrame frame)
    {
        frame = default;
        if (bytes.Length < HeaderLength) return false;
        if (BinaryPrimitives.ReadUInt16BigEndian(bytes[EtherTypeOffset..]) == Wire.EtherType.Vlan && bytes.Length < TaggedHeaderLength)
            return false;
        frame = new EthernetFrame(bytes);
        return true;
    }

    public MacAddress Destination => MacAddress.Read(_bytes[DestinationOffset..]);
    public MacAddress Source => MacAddress.Read(_bytes[SourceOffset..]);
    public bool HasVlanTag
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[EtherTypeOffset..]) == Wire.EtherType.Vlan;
    }
    /// <summary>The 12-bit VLAN identifier, or 0 when untagged.</summary>
    public ushort VlanId => HasVlanTag ? (ushort)(BinaryPrimitives.ReadUInt16BigEndian(_bytes[TciOffset..]) & 0x0FFF) : (ushort)0;
    /// <summary>The 3-bit priority code point, or 0 when untagged.</summary>
    public byte Priority => HasVlanTag ? (byte)(_bytes[TciOffset] >> 5) : (byte)0;
    /// <summary>The EtherType of the payload (the inner one when tagged).</summary>
    public ushort EtherType => BinaryPrimitives.ReadUInt16BigEndian(_bytes[(HasVlanTag ? InnerEtherTypeOffset : EtherTypeOffset)..]);
    public int Length => HasVlanTag ? TaggedHeaderLength : HeaderLength;
    public ReadOnlySpan<byte> Payload => _bytes[Length..];
}

/// <summary>A parsed Ethernet header.</summary>
public readonly record struct EthernetRepr(MacAddress Destination, MacAddress Source, ushort EtherType, ushort VlanId = 0, bool HasVlanTag = false, byte Priority = 0)
{
    public int HeaderLength => HasVlanTag ? EthernetFrame.TaggedHeaderLength : EthernetFrame.HeaderLength;

    public static EthernetRepr Parse(in EthernetFrame frame) =>
        new(frame.Destination, frame.Source, frame.EtherType, frame.VlanId, frame.HasVlanTag, frame.Priority);

    /// <summary>Writes the header into the first <see cref="HeaderLength"/> bytes of <paramref name="buffer"/>.</summary>
    public void Emit(Span<byte> buffer)
    {
        Destination.Write(buffer[EthernetFrame.DestinationOffset..]);
        Source.Write(buffer[EthernetFrame.SourceOffset..]);
        if (HasVlanTag)
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer[EthernetFrame.EtherTypeOffset..], Wire.EtherType.Vlan);
            BinaryPrimitives.WriteUInt16BigEndian(buffer[EthernetFrame.TciOffset..], (ushort)((Priority << 13) | (VlanId & 0x0FFF)));
            BinaryPrimitives.WriteUInt16BigEndian(buffer[EthernetFrame.InnerEtherTypeOffset..], EtherType);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer[EthernetFrame.EtherTypeOffset..], EtherType);
        }
    }
}

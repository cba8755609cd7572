using System.Buffers.Binary;

namespace Gazelle.Wire;

public enum ArpOperation : ushort
{
    Request = 1,
    Reply = 2,
}

/// <summary>
/// A view over an ARP packet (RFC 826) for Ethernet hardware and IPv4 protocol addresses:
/// htype (0..1), ptype (2..3), hlen (4), plen (5), oper (6..7), SHA (8..13), SPA (14..17),
/// THA (18..23), TPA (24..27).
/// </summary>
public readonly ref struct ArpPacket
{
    public const int HardwareTypeOffset = 0;
    public const int ProtocolTypeOffset = 2;
    public const int HardwareLengthOffset = 4;
    public const int ProtocolLengthOffset = 5;
    public const int OperationOffset = 6;
    public const int SenderMacOffset = 8;
    public const int SenderIpOffset = 14;
    public const int TargetMacOffset = 18;
    public const int TargetIpOffset = 24;
    public const int Length = 28;
    public const ushort HardwareTypeEthernet = 1;

    private readonly ReadOnlySpan<byte> _bytes;

    private ArpPacket(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>Accepts only Ethernet/IPv4 ARP (hlen 6, plen 4) with all 28 bytes present.</summary>
    public static bool TryCreate(ReadOnlySpan<byte> bytes, out ArpPacket packet)
    {
        packet = default;
        if (bytes.Length < Length) return false;
        if (BinaryPrimitives.ReadUInt16BigEndian(bytes[HardwareTypeOffset..]) != HardwareTypeEthernet) return false;
        if (BinaryPrimitives.ReadUInt16BigEndian(bytes[ProtocolTypeOffset..]) != EtherType.Ipv4) return false;
        if (bytes[HardwareLengthOffset] != 6 || bytes[ProtocolLengthOffset] != 4) return false;
        packet = new ArpPacket(bytes);
        return true;
    }

    public ushort Operation => BinaryPrimitives.ReadUInt16BigEndian(_bytes[OperationOffset..]);
    public MacAddress SenderMac => MacAddress.Read(_bytes[SenderMacOffset..]);
    public Ipv4Address SenderIp => Ipv4Address.Read(_bytes[SenderIpOffset..]);
    public MacAddress TargetMac => MacAddress.Read(_bytes[TargetMacOffset..]);
    public Ipv4Address TargetIp => Ipv4Address.Read(_bytes[TargetIpOffset..]);
}

/// <summary>A parsed Ethernet/IPv4 ARP packet.</summary>
public readonly record struct ArpRepr(ArpOperation Operation, MacAddress SenderMac, Ipv4Address SenderIp, MacAddress TargetMac, Ipv4Address TargetIp)
{
    /// <summary>Fails for operations other than request and reply.</summary>
    public static bool TryParse(in ArpPacket packet, out ArpRepr repr)
    {
        repr = default;
        ushort op = packet.Operation;
        if (op != (ushort)ArpOperation.Request && op != (ushort)ArpOperation.Reply) return false;
        repr = new ArpRepr((ArpOperation)op, packet.SenderMac, packet.SenderIp, packet.TargetMac, packet.TargetIp);
        return true;
    }

    /// <summary>Writes the 28-byte packet.</summary>
    public void Emit(Span<byte> buffer)
    {
        BinaryPrimitives.WriteUInt16BigEndian(buffer[ArpPacket.HardwareTypeOffset..], ArpPacket.HardwareTypeEthernet);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[ArpPacket.ProtocolTypeOffset..], EtherType.Ipv4);
        buffer[ArpPacket.HardwareLengthOffset] = 6;
        buffer[ArpPacket.ProtocolLengthOffset] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[ArpPacket.OperationOffset..], (ushort)Operation);
        SenderMac.Write(buffer[ArpPacket.SenderMacOffset..]);
        SenderIp.Write(buffer[ArpPacket.SenderIpOffset..]);
        TargetMac.Write(buffer[ArpPacket.TargetMacOffset..]);
        TargetIp.Write(buffer[ArpPacket.TargetIpOffset..]);
    }
}

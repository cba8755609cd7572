using System.Buffers.Binary;
using Gazelle.Buffers;
using Gazelle.Wire;

namespace Gazelle.Tests.Devices;

/// <summary>Builds Ethernet frames for device tests (checksums are left zero: devices do not check them).</summary>
internal static class TestFrames
{
    public const int EthHeader = 14;
    public const int Ipv4Header = 20;

    /// <summary>Writes an Ethernet + IPv4 + 8-byte L4 header (ports first, as TCP and UDP have) + payload.</summary>
    public static int WriteIpv4(Span<byte> frame, MacAddress dst, MacAddress src, Ipv4Address srcIp, Ipv4Address dstIp,
        byte protocol, ushort srcPort, ushort dstPort, int payload = 0, ushort fragmentField = 0)
    {
        int l4 = protocol == 6 ? 20 : 8;
        int total = EthHeader + Ipv4Header + l4 + payload;
        frame[..total].Clear();
        dst.Write(frame);
        src.Write(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], 0x0800);
        var ip = frame[EthHeader..];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(Ipv4Header + l4 + payload));
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], fragmentField);
        ip[8] = 64;
        ip[9] = protocol;
        srcIp.Write(ip[12..]);
        dstIp.Write(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[20..], srcPort);
        BinaryPrimitives.WriteUInt16BigEndian(ip[22..], dstPort);
        for (int i = 0; i < payload; i++) frame[EthHeader + Ipv4Header + l4 + i] = (byte)(i * 7 + 1);
        return total;
    }

    /// <summary>A bare Ethernet frame with an arbitrary EtherType and a payload of recognisable bytes.</summary>
    public static int WriteRaw(Span<byte> frame, MacAddress dst, MacAddress src, ushort etherType, int payload, byte tag = 0)
    {
        dst.Write(frame);
        src.Write(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], etherType);
        for (int i = 0; i < payload; i++) frame[EthHeader + i] = (byte)(tag + i);
        return EthHeader + payload;
    }

    /// <summary>Rents a TX buffer from <paramref name="pool"/> and fills it with <paramref name="frame"/>.</summary>
    public static PacketBuffer Rent(IPacketPool pool, ReadOnlySpan<byte> frame)
    {
        var b = pool.Rent() ?? throw new InvalidOperationException("pool exhausted");
        frame.CopyTo(b.Append(frame.Length));
        return b;
    }
}

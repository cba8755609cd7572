using System.Buffers.Binary;
using Gazelle.Wire;

namespace Gazelle.Tests.Dpdk;

/// <summary>Hand-built Ethernet/ARP/IPv4/ICMP frames for the DPDK device tests (no stack involved).</summary>
internal static class TestFrames
{
    public const ushort EtherTypeIpv4 = 0x0800;
    public const ushort EtherTypeArp = 0x0806;
    public const int ArpFrameLength = 14 + 28;

    private static void Ethernet(Span<byte> f, MacAddress dst, MacAddress src, ushort type)
    {
        dst.Write(f);
        src.Write(f[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], type);
    }

    /// <summary>ARP (RFC 826) over Ethernet: request when <paramref name="op"/> is 1, reply when 2.</summary>
    public static void Arp(Span<byte> f, ushort op, MacAddress senderMac, Ipv4Address senderIp, MacAddress targetMac, Ipv4Address targetIp)
    {
        Ethernet(f, op == 1 ? MacAddress.Broadcast : targetMac, senderMac, EtherTypeArp);
        var a = f[14..];
        BinaryPrimitives.WriteUInt16BigEndian(a, 1);          // hardware: Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(a[2..], 0x0800); // protocol: IPv4
        a[4] = 6;
        a[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(a[6..], op);
        senderMac.Write(a[8..]);
        senderIp.Write(a[14..]);
        targetMac.Write(a[18..]);
        targetIp.Write(a[24..]);
    }

    public static int IcmpEchoLength(int payload) => 14 + 20 + 8 + payload;

    /// <summary>ICMP echo request (type 8) or reply (type 0), RFC 792, in an IPv4 packet without options.</summary>
    public static void IcmpEcho(Span<byte> f, byte type, MacAddress srcMac, MacAddress dstMac, Ipv4Address src, Ipv4Address dst,
        ushort id, ushort seq, ReadOnlySpan<byte> payload)
    {
        Ethernet(f, dstMac, srcMac, EtherTypeIpv4);
        var ip = f.Slice(14, 20 + 8 + payload.Length);
        ip.Clear();
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ip.Length);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], seq);
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 1;    // ICMP
        src.Write(ip[12..]);
        dst.Write(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip[..20]));
        var icmp = ip[20..];
        icmp[0] = type;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], seq);
        payload.CopyTo(icmp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp));
    }

    /// <summary>Internet checksum (RFC 1071).</summary>
    public static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) sum += (uint)data[i] << 8;
        while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    public static ushort EtherType(ReadOnlySpan<byte> f) => f.Length >= 14 ? BinaryPrimitives.ReadUInt16BigEndian(f[12..]) : (ushort)0;

    /// <summary>An ARP frame's operation, sender and target (false when not a well-formed Ethernet/IPv4 ARP).</summary>
    public static bool TryArp(ReadOnlySpan<byte> f, out ushort op, out MacAddress senderMac, out Ipv4Address senderIp, out Ipv4Address targetIp)
    {
        op = 0;
        senderMac = default;
        senderIp = default;
        targetIp = default;
        if (f.Length < ArpFrameLength || EtherType(f) != EtherTypeArp) return false;
        var a = f[14..];
        if (BinaryPrimitives.ReadUInt16BigEndian(a) != 1 || BinaryPrimitives.ReadUInt16BigEndian(a[2..]) != 0x0800 || a[4] != 6 || a[5] != 4) return false;
        op = BinaryPrimitives.ReadUInt16BigEndian(a[6..]);
        senderMac = MacAddress.Read(a[8..]);
        senderIp = Ipv4Address.Read(a[14..]);
        targetIp = Ipv4Address.Read(a[24..]);
        return true;
    }

    /// <summary>An ICMP echo's type, addresses, id, sequence and payload (false unless a checksummed IPv4 ICMP echo).</summary>
    public static bool TryIcmpEcho(ReadOnlySpan<byte> f, out byte type, out Ipv4Address src, out Ipv4Address dst, out ushort id, out ushort seq,
        out ReadOnlySpan<byte> payload)
    {
        type = 0;
        src = dst = default;
        id = seq = 0;
        payload = default;
        if (f.Length < 14 + 20 + 8 || EtherType(f) != EtherTypeIpv4) return false;
        var ip = f[14..];
        int ihl = (ip[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl + 8 || total > ip.Length || ip[9] != 1) return false;
        if (Checksum(ip[..ihl]) != 0) return false;
        var icmp = ip[ihl..total];
        if (Checksum(icmp) != 0) return false;
        type = icmp[0];
        if (type != 0 && type != 8) return false;
        src = Ipv4Address.Read(ip[12..]);
        dst = Ipv4Address.Read(ip[16..]);
        id = BinaryPrimitives.ReadUInt16BigEndian(icmp[4..]);
        seq = BinaryPrimitives.ReadUInt16BigEndian(icmp[6..]);
        payload = icmp[8..];
        return true;
    }
}

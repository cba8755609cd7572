using System.Buffers.Binary;

namespace Gazelle.Devices.Rss;

/// <summary>
/// Computes a frame's RSS hash the way a NIC configured for IPv4 + IPv4-TCP + IPv4-UDP hashing does:
/// the 4-tuple for unfragmented TCP/UDP over IPv4, the address pair for other IPv4 (including fragments,
/// whose later pieces carry no ports), and no hash (0, "not hashed") for anything else. One 802.1Q tag is
/// skipped. Reads only; never throws on malformed frames (they are simply "not hashed").
/// </summary>
public static class RssFrameHasher
{
    private const int EthHeaderLength = 14;
    private const int EthTypeOffset = 12;
    private const ushort EtherTypeIpv4 = 0x0800;
    private const ushort EtherTypeVlan = 0x8100;
    private const int VlanTagLength = 4;

    private const int Ipv4VersionIhlOffset = 0;
    private const int Ipv4FlagsFragOffset = 6;
    private const int Ipv4ProtocolOffset = 9;
    private const int Ipv4SourceOffset = 12;
    private const int Ipv4DestinationOffset = 16;
    private const int Ipv4MinHeader = 20;
    private const ushort Ipv4MoreFragments = 0x2000;
    private const ushort Ipv4FragmentOffsetMask = 0x1FFF;

    private const byte ProtocolTcp = 6;
    private const byte ProtocolUdp = 17;

    /// <summary>Hashes <paramref name="frame"/> (starting at the Ethernet header). Returns false (hash 0) when
    /// the frame is not IPv4 or too short to classify.</summary>
    public static bool TryHash(ReadOnlySpan<byte> frame, ToeplitzHash hasher, out uint hash)
    {
        hash = 0;
        if (frame.Length < EthHeaderLength) return false;
        int l3 = EthHeaderLength;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[EthTypeOffset..]);
        if (etherType == EtherTypeVlan)
        {
            if (frame.Length < EthHeaderLength + VlanTagLength) return false;
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[(EthTypeOffset + VlanTagLength)..]);
            l3 += VlanTagLength;
        }
        if (etherType != EtherTypeIpv4) return false;
        var ip = frame[l3..];
        if (ip.Length < Ipv4MinHeader) return false;
        byte versionIhl = ip[Ipv4VersionIhlOffset];
        int ihl = (versionIhl & 0x0F) * 4;
        if ((versionIhl >> 4) != 4 || ihl < Ipv4MinHeader || ip.Length < ihl) return false;

        uint src = BinaryPrimitives.ReadUInt32BigEndian(ip[Ipv4SourceOffset..]);
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(ip[Ipv4DestinationOffset..]);
        byte protocol = ip[Ipv4ProtocolOffset];
        ushort frag = BinaryPrimitives.ReadUInt16BigEndian(ip[Ipv4FlagsFragOffset..]);
        bool fragmented = (frag & (Ipv4MoreFragments | Ipv4FragmentOffsetMask)) != 0;
        if (!fragmented && (protocol == ProtocolTcp || protocol == ProtocolUdp) && ip.Length >= ihl + 4)
        {
            ushort sport = BinaryPrimitives.ReadUInt16BigEndian(ip[ihl..]);
            ushort dport = BinaryPrimitives.ReadUInt16BigEndian(ip[(ihl + 2)..]);
            hash = hasher.HashIpv4(src, dst, sport, dport);
        }
        else
        {
            hash = hasher.HashIpv4(src, dst);
        }
        return true;
    }
}

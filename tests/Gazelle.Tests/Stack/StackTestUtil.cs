using System.Buffers.Binary;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Stack;

internal static class StackTestUtil
{
    public static readonly MacAddress MacA = MacAddress.Parse("02:00:00:00:00:0a");
    public static readonly MacAddress MacB = MacAddress.Parse("02:00:00:00:00:0b");
    public static readonly MacAddress MacHost = MacAddress.Parse("02:00:00:00:00:99");
    public static readonly Ipv4Address IpA = Ipv4Address.Parse("10.0.0.1");
    public static readonly Ipv4Address IpB = Ipv4Address.Parse("10.0.0.2");
    public static readonly Ipv4Address IpHost = Ipv4Address.Parse("10.0.0.99");
    public static readonly Ipv4Address Mask = Ipv4Address.Parse("255.255.255.0");

    public static StackConfig ConfigFor(Ipv4Address a, Ipv4Address? gateway = null) =>
        new() { Address = a, Netmask = Mask, Gateway = gateway ?? Ipv4Address.Any, MaxUdpSockets = 64 };

    /// <summary>Polls both stacks until neither has frames waiting (bounded).</summary>
    public static void Settle(NetStack a, TestNic na, NetStack b, TestNic nb, Instant now)
    {
        for (int i = 0; i < 100 && (i == 0 || na.RxQueue.Count > 0 || nb.RxQueue.Count > 0); i++)
        {
            a.Poll(now);
            b.Poll(now);
        }
    }

    /// <summary>Builds an Ethernet + IPv4 frame with correct checksums around <paramref name="l4"/>.</summary>
    public static byte[] Ipv4Frame(MacAddress srcMac, MacAddress dstMac, Ipv4Address src, Ipv4Address dst, byte protocol, ReadOnlySpan<byte> l4,
                                   ushort id = 1, bool more = false, int fragOffset = 0)
    {
        var frame = new byte[14 + 20 + l4.Length];
        new EthernetRepr(dstMac, srcMac, EtherType.Ipv4).Emit(frame);
        new Ipv4Repr { Source = src, Destination = dst, Protocol = protocol, Ttl = 64, Identification = id, MoreFragments = more, FragmentOffset = fragOffset, PayloadLength = l4.Length }
            .Emit(frame.AsSpan(14));
        l4.CopyTo(frame.AsSpan(34));
        return frame;
    }

    public static byte[] Udp(Ipv4Address src, Ipv4Address dst, ushort sport, ushort dport, ReadOnlySpan<byte> payload)
    {
        var d = new byte[8 + payload.Length];
        payload.CopyTo(d.AsSpan(8));
        new UdpRepr(sport, dport).Emit(d, src, dst);
        return d;
    }

    public static byte[] EchoRequest(ushort id, ushort seq, ReadOnlySpan<byte> data)
    {
        var m = new byte[8 + data.Length];
        data.CopyTo(m.AsSpan(8));
        Icmpv4Repr.EchoRequest(id, seq).Emit(m);
        return m;
    }

    public static byte[] Arp(ArpOperation op, MacAddress srcMac, Ipv4Address srcIp, MacAddress dstMac, Ipv4Address targetIp, MacAddress frameDst)
    {
        var f = new byte[14 + 28];
        new EthernetRepr(frameDst, srcMac, EtherType.Arp).Emit(f);
        new ArpRepr(op, srcMac, srcIp, dstMac, targetIp).Emit(f.AsSpan(14));
        return f;
    }

    public static ushort ReadU16(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt16BigEndian(b[offset..]);
}

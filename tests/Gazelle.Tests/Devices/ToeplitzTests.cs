using Gazelle.Devices.InMemory;
using Gazelle.Devices.Rss;
using Gazelle.Wire;

namespace Gazelle.Tests.Devices;

public class ToeplitzTests
{
    // The RSS verification suite published with Microsoft's RSS specification ("Verifying the RSS Hash
    // Calculation") and repeated in Intel's 82599 datasheet (7.1.2.8.3), for the 40-byte Microsoft key.
    // Columns: source, destination, source port, destination port, IPv4-only hash, IPv4 with TCP hash.
    private static readonly object[][] Vectors =
    [
        ["66.9.149.187", "161.142.100.80", (ushort)2794, (ushort)1766, 0x323e8fc2u, 0x51ccc178u],
        ["199.92.111.2", "65.69.140.83", (ushort)14230, (ushort)4739, 0xd718262au, 0xc626b0eau],
        ["24.19.198.95", "12.22.207.184", (ushort)12898, (ushort)38024, 0xd2d0a5deu, 0x5c2b394au],
        ["38.27.205.30", "209.142.163.6", (ushort)48228, (ushort)2217, 0x82989176u, 0xafc7327fu],
        ["153.39.163.191", "202.188.127.2", (ushort)44251, (ushort)1303, 0x5d1809c5u, 0x10e828a2u],
    ];

    [TestCaseSource(nameof(Vectors))]
    public void TableHashMatchesVerificationSuite(string src, string dst, ushort sport, ushort dport, uint ipOnly, uint withPorts)
    {
        var h = ToeplitzHash.CreateDefault();
        uint s = Ipv4Address.Parse(src).Value, d = Ipv4Address.Parse(dst).Value;
        Assert.Multiple(() =>
        {
            Assert.That(h.HashIpv4(s, d), Is.EqualTo(ipOnly), "2-tuple");
            Assert.That(h.HashIpv4(s, d, sport, dport), Is.EqualTo(withPorts), "4-tuple");
        });
    }

    [TestCaseSource(nameof(Vectors))]
    public void SoftRssReferenceMatchesVerificationSuite(string src, string dst, ushort sport, ushort dport, uint ipOnly, uint withPorts)
    {
        uint s = Ipv4Address.Parse(src).Value, d = Ipv4Address.Parse(dst).Value;
        // rte_ipv4_tuple layout: src_addr, dst_addr, then sport in the high half and dport in the low half.
        uint[] l3 = [s, d];
        uint[] l4 = [s, d, ((uint)sport << 16) | dport];
        Assert.Multiple(() =>
        {
            Assert.That(ToeplitzHash.SoftRss(l3, ToeplitzHash.MicrosoftKey), Is.EqualTo(ipOnly));
            Assert.That(ToeplitzHash.SoftRss(l4, ToeplitzHash.MicrosoftKey), Is.EqualTo(withPorts));
        });
    }

    [TestCaseSource(nameof(Vectors))]
    public void FrameHasherUsesFourTupleForUdpAndTcpAndTwoTupleForFragments(string src, string dst, ushort sport, ushort dport, uint ipOnly, uint withPorts)
    {
        var h = ToeplitzHash.CreateDefault();
        Span<byte> f = stackalloc byte[128];
        var a = MacAddress.Parse("02:00:00:00:00:01");
        var b = MacAddress.Parse("02:00:00:00:00:02");
        var s = Ipv4Address.Parse(src);
        var d = Ipv4Address.Parse(dst);

        int n = TestFrames.WriteIpv4(f, a, b, s, d, 6, sport, dport);
        Assert.That(RssFrameHasher.TryHash(f[..n], h, out uint tcp), Is.True);
        n = TestFrames.WriteIpv4(f, a, b, s, d, 17, sport, dport);
        Assert.That(RssFrameHasher.TryHash(f[..n], h, out uint udp), Is.True);
        n = TestFrames.WriteIpv4(f, a, b, s, d, 1, sport, dport);
        Assert.That(RssFrameHasher.TryHash(f[..n], h, out uint icmp), Is.True);
        n = TestFrames.WriteIpv4(f, a, b, s, d, 17, sport, dport, fragmentField: 0x2000); // MF set
        Assert.That(RssFrameHasher.TryHash(f[..n], h, out uint frag), Is.True);

        Assert.Multiple(() =>
        {
            Assert.That(tcp, Is.EqualTo(withPorts));
            Assert.That(udp, Is.EqualTo(withPorts));
            Assert.That(icmp, Is.EqualTo(ipOnly));
            Assert.That(frag, Is.EqualTo(ipOnly));
        });
    }

    [Test]
    public void NonIpv4AndTruncatedFramesAreNotHashed()
    {
        var h = ToeplitzHash.CreateDefault();
        Span<byte> f = stackalloc byte[64];
        int n = TestFrames.WriteRaw(f, MacAddress.Broadcast, new MacAddress(0x0200_0000_0001), 0x0806, 28);
        Assert.That(RssFrameHasher.TryHash(f[..n], h, out uint arp), Is.False);
        Assert.That(arp, Is.Zero);
        Assert.That(RssFrameHasher.TryHash(f[..10], h, out _), Is.False);
        n = TestFrames.WriteIpv4(f, MacAddress.Broadcast, MacAddress.Zero, new Ipv4Address(1, 2, 3, 4), new Ipv4Address(5, 6, 7, 8), 17, 1, 2);
        Assert.That(RssFrameHasher.TryHash(f[..(14 + 19)], h, out _), Is.False, "IPv4 header cut short");
        f[14] = 0x46; // IHL 24 bytes, but only 20 + 8 present: still hashed, ports at offset 24
        Assert.That(RssFrameHasher.TryHash(f[..n], h, out _), Is.True);
        f[14] = 0x44; // IHL below minimum
        Assert.That(RssFrameHasher.TryHash(f[..n], h, out _), Is.False);
    }

    [Test]
    public void VlanTaggedFramesHashLikeUntaggedOnes()
    {
        var h = ToeplitzHash.CreateDefault();
        Span<byte> plain = stackalloc byte[128];
        int n = TestFrames.WriteIpv4(plain, MacAddress.Broadcast, new MacAddress(0x0200_0000_0001),
            Ipv4Address.Parse("66.9.149.187"), Ipv4Address.Parse("161.142.100.80"), 6, 2794, 1766);
        Span<byte> tagged = stackalloc byte[132];
        plain[..12].CopyTo(tagged);
        tagged[12] = 0x81; tagged[13] = 0x00; tagged[14] = 0x00; tagged[15] = 0x05; // 802.1Q, VID 5
        plain[12..n].CopyTo(tagged[16..]);
        Assert.That(RssFrameHasher.TryHash(tagged[..(n + 4)], h, out uint hash), Is.True);
        Assert.That(hash, Is.EqualTo(0x51ccc178u));
    }

    [Test]
    public void RandomBytesNeverThrow()
    {
        var h = ToeplitzHash.CreateDefault();
        var rng = new Random(77);
        var buf = new byte[80];
        int hashed = 0;
        for (int i = 0; i < 20_000; i++)
        {
            rng.NextBytes(buf);
            if (i % 2 == 0) { buf[12] = 0x08; buf[13] = 0x00; buf[14] = (byte)(0x40 | (buf[14] & 0x0F)); }
            if (RssFrameHasher.TryHash(buf.AsSpan(0, rng.Next(buf.Length + 1)), h, out _)) hashed++;
        }
        Assert.That(hashed, Is.GreaterThan(1000), "the IPv4-looking half is mostly hashed");
    }

    [Test]
    public void TableHashAgreesWithBitwiseReferenceOnRandomTuplesAndOtherKeys()
    {
        var rng = new Random(1234);
        var key = new byte[40];
        rng.NextBytes(key);
        var h = new ToeplitzHash(key);
        Span<byte> bytes = stackalloc byte[12];
        for (int i = 0; i < 2000; i++)
        {
            uint s = (uint)rng.NextInt64(), d = (uint)rng.NextInt64();
            ushort sp = (ushort)rng.Next(65536), dp = (ushort)rng.Next(65536);
            uint[] tuple = [s, d, ((uint)sp << 16) | dp];
            uint expected = ToeplitzHash.SoftRss(tuple, key);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes, s);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes[4..], d);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(bytes[8..], sp);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(bytes[10..], dp);
            Assert.That(h.HashIpv4(s, d, sp, dp), Is.EqualTo(expected));
            Assert.That(h.Hash(bytes), Is.EqualTo(expected));
        }
    }

    [Test]
    public void RedirectionTableIndexesLowBitsAndFillsRoundRobin()
    {
        var reta = new RedirectionTable(3, 128);
        Assert.Multiple(() =>
        {
            Assert.That(reta.QueueOf(0x51ccc178), Is.EqualTo(0x78 % 3)); // low 7 bits = 120
            Assert.That(reta.QueueOf(0xc626b0ea), Is.EqualTo(0x6a % 3)); // low 7 bits = 106
            Assert.That(reta[127], Is.EqualTo(127 % 3));
        });
        var h = ToeplitzHash.CreateDefault();
        Assert.That(reta.QueueOfFlow(h, Ipv4Address.Parse("66.9.149.187"), Ipv4Address.Parse("161.142.100.80"), 2794, 1766),
            Is.EqualTo(0x78 % 3), "the spec's first 4-tuple hashes to 0x51ccc178");
        reta.Set(0x78, 2);
        Assert.That(reta.QueueOf(0x51ccc178), Is.EqualTo(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => reta.Set(0, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new RedirectionTable(2, 100));
    }

    [TestCaseSource(nameof(Vectors))]
    public void UserVethSpreadsFlowsToTheQueueTheSpecHashSelects(string src, string dst, ushort sport, ushort dport, uint ipOnly, uint withPorts)
    {
        const int queues = 4;
        using var veth = new UserVeth(new UserVethOptions { MacAddress = new MacAddress(0x0200_0000_0002), QueueCount = queues });
        Span<byte> f = stackalloc byte[128];
        int n = TestFrames.WriteIpv4(f, veth.MacAddress, new MacAddress(0x0200_0000_0001),
            Ipv4Address.Parse(src), Ipv4Address.Parse(dst), 6, sport, dport);
        Assert.That(veth.DeliverFromWire(f[..n]), Is.True);
        n = TestFrames.WriteIpv4(f, veth.MacAddress, new MacAddress(0x0200_0000_0001),
            Ipv4Address.Parse(src), Ipv4Address.Parse(dst), 1, 0, 0);
        Assert.That(veth.DeliverFromWire(f[..n]), Is.True);

        // Default RETA: 128 entries filled round-robin, indexed by the hash's low 7 bits.
        int tcpQueue = (int)(withPorts & 127) % queues;
        int icmpQueue = (int)(ipOnly & 127) % queues;
        var got = new Gazelle.Buffers.PacketBuffer[2];
        int total = 0;
        for (int q = 0; q < queues; q++)
        {
            int k = veth.Receive(q, got);
            for (int i = 0; i < k; i++)
            {
                var b = got[i];
                Assert.That(b.Queue, Is.EqualTo(q));
                if (b.Data[23] == 6)
                {
                    Assert.That(q, Is.EqualTo(tcpQueue));
                    Assert.That(b.RssHash, Is.EqualTo(withPorts));
                }
                else
                {
                    Assert.That(q, Is.EqualTo(icmpQueue));
                    Assert.That(b.RssHash, Is.EqualTo(ipOnly));
                }
                b.Release();
            }
            total += k;
        }
        Assert.That(total, Is.EqualTo(2));
        Assert.That(veth.RxPool.InUse, Is.Zero);
    }
}

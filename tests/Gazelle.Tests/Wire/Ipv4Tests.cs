using Gazelle.Wire;
using static Gazelle.Tests.Wire.WireTestUtil;

namespace Gazelle.Tests.Wire;

public class Ipv4Tests
{
    // 192.168.1.10 -> 192.168.1.20, UDP 40000 -> 7777 "hello gazelle!", DF, id 0x1234, TTL 64.
    // Checksums (ip a520, udp ca6a) computed independently of this code base.
    internal static readonly byte[] UdpFrame = Hex(
        "020000000002020000000001 0800" +
        "4500002a123440004011a520c0a8010ac0a80114" +
        "9c401e610016ca6a 68656c6c6f2067617a656c6c6521");

    private static byte[] IpPart => UdpFrame[14..];

    [Test]
    public void ParseFieldsAndReEmit()
    {
        Assert.That(Ipv4Packet.TryCreate(IpPart, out var p), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(p.HeaderLength, Is.EqualTo(20));
            Assert.That(p.TotalLength, Is.EqualTo(42));
            Assert.That(p.Identification, Is.EqualTo(0x1234));
            Assert.That(p.DontFragment, Is.True);
            Assert.That(p.MoreFragments, Is.False);
            Assert.That(p.FragmentOffset, Is.EqualTo(0));
            Assert.That(p.IsFragment, Is.False);
            Assert.That(p.Ttl, Is.EqualTo(64));
            Assert.That(p.Protocol, Is.EqualTo(IpProtocol.Udp));
            Assert.That(p.Checksum, Is.EqualTo(0xA520));
            Assert.That(p.VerifyChecksum(), Is.True);
            Assert.That(p.Source, Is.EqualTo(Ipv4Address.Parse("192.168.1.10")));
            Assert.That(p.Destination, Is.EqualTo(Ipv4Address.Parse("192.168.1.20")));
            Assert.That(p.Payload.Length, Is.EqualTo(22));
        }
        var r = Ipv4Repr.Parse(p);
        var outBuf = new byte[20];
        r.Emit(outBuf);
        Assert.That(outBuf, Is.EqualTo(IpPart[..20]));
    }

    [Test]
    public void KnownHeaderRoundTrip()
    {
        var h = Hex("4500007300004000 4011b861c0a80001c0a800c7");
        var pkt = new byte[0x73];
        h.CopyTo(pkt, 0);
        Assert.That(Ipv4Packet.TryCreate(pkt, out var p), Is.True);
        Assert.That(p.VerifyChecksum(), Is.True);
        var outBuf = new byte[20];
        Ipv4Repr.Parse(p).Emit(outBuf);
        Assert.That(outBuf, Is.EqualTo(h));
    }

    [Test]
    public void EthernetPaddingIsNotPayload()
    {
        var padded = new byte[IpPart.Length + 18];
        IpPart.CopyTo(padded, 0);
        Assert.That(Ipv4Packet.TryCreate(padded, out var p), Is.True);
        Assert.That(p.Payload.Length, Is.EqualTo(22));
    }

    [Test]
    public void OptionsAreSkipped()
    {
        // IHL 6 with a 4-byte option (NOP NOP NOP EOL), payload 4 bytes.
        var h = Hex("46000028000100004006 0000 0a000001 0a000002 01010100 deadbeef 0000");
        h = h[..28];
        h[2] = 0; h[3] = 28;
        var c = InternetChecksum.Compute(h.AsSpan(0, 24));
        h[10] = (byte)(c >> 8); h[11] = (byte)c;
        Assert.That(Ipv4Packet.TryCreate(h, out var p), Is.True);
        Assert.That(p.HeaderLength, Is.EqualTo(24));
        Assert.That(p.VerifyChecksum(), Is.True);
        Assert.That(p.Options.ToArray(), Is.EqualTo(Hex("01010100")));
        Assert.That(p.Payload.ToArray(), Is.EqualTo(Hex("deadbeef")));
    }

    [Test]
    public void FragmentFields()
    {
        var r = new Ipv4Repr { Source = new(10, 0, 0, 1), Destination = new(10, 0, 0, 2), Protocol = 17, Ttl = 9, MoreFragments = true, FragmentOffset = 1480, PayloadLength = 8, Identification = 77 };
        var buf = new byte[28];
        r.Emit(buf);
        Assert.That(Ipv4Packet.TryCreate(buf, out var p), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(p.MoreFragments, Is.True);
            Assert.That(p.FragmentOffset, Is.EqualTo(1480));
            Assert.That(p.IsFragment, Is.True);
            Assert.That(p.VerifyChecksum(), Is.True);
            Assert.That(buf[6], Is.EqualTo(0x20 | (185 >> 8)));
            Assert.That(buf[7], Is.EqualTo(185 & 0xFF));
        }
    }

    [Test]
    public void TruncatedPrefixesRejected()
    {
        for (int n = 0; n < IpPart.Length; n++)
            Assert.That(Ipv4Packet.TryCreate(IpPart.AsSpan(0, n), out _), Is.False, $"len {n}");
    }

    [TestCase(0, 0x55, TestName = "version 5")]
    [TestCase(0, 0x44, TestName = "IHL 4")]
    [TestCase(0, 0x4F, TestName = "IHL beyond packet")]
    [TestCase(3, 0x13, TestName = "total length below IHL")]
    [TestCase(3, 0x2B, TestName = "total length beyond bytes")]
    public void BadLengthsRejected(int index, int value)
    {
        var bad = (byte[])IpPart.Clone();
        bad[index] = (byte)value;
        Assert.That(Ipv4Packet.TryCreate(bad, out _), Is.False);
    }

    [Test]
    public void CorruptedHeaderFailsChecksum()
    {
        var bad = (byte[])IpPart.Clone();
        bad[8] = 63;
        Assert.That(Ipv4Packet.TryCreate(bad, out var p), Is.True);
        Assert.That(p.VerifyChecksum(), Is.False);
    }

    [Test]
    public void QuotedDatagramMayBeTruncated()
    {
        var quoted = IpPart[..28];
        Assert.That(Ipv4Packet.TryCreate(quoted, out _), Is.False);
        Assert.That(Ipv4Packet.TryCreateQuoted(quoted, out var q), Is.True);
        Assert.That(q.Payload.Length, Is.EqualTo(8));
        Assert.That(Ipv4Packet.TryCreateQuoted(quoted[..19], out _), Is.False);
    }
}

using Gazelle.Wire;
using static Gazelle.Tests.Wire.WireTestUtil;

namespace Gazelle.Tests.Wire;

public class Icmpv4Tests
{
    // Echo request id beef seq 3 with 37 bytes of data (odd length); checksum b0a6 computed independently.
    private static readonly byte[] Echo = Hex("0800b0a6beef0003101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334");

    [Test]
    public void EchoRoundTrip()
    {
        Assert.That(Icmpv4Packet.TryCreate(Echo, out var p), Is.True);
        Assert.That(p.VerifyChecksum(), Is.True);
        Assert.That(Icmpv4Repr.TryParse(p, out var r), Is.True);
        Assert.That(r, Is.EqualTo(Icmpv4Repr.EchoRequest(0xBEEF, 3)));
        Assert.That(p.Payload.Length, Is.EqualTo(37));
        var outBuf = new byte[Echo.Length];
        Echo.AsSpan(8).CopyTo(outBuf.AsSpan(8));
        r.Emit(outBuf);
        Assert.That(outBuf, Is.EqualTo(Echo));
    }

    [Test]
    public void FragmentationNeededCarriesNextHopMtuAndQuotedDatagram()
    {
        var quoted = Ipv4Tests.UdpFrame.AsSpan(14, 28).ToArray();
        var msg = new byte[8 + quoted.Length];
        quoted.CopyTo(msg, 8);
        Icmpv4Repr.Unreachable(Icmpv4UnreachableCode.FragmentationNeeded, 1400).Emit(msg);
        Assert.That(msg[..8], Is.EqualTo(new byte[] { 3, 4, msg[2], msg[3], 0, 0, 0x05, 0x78 }));
        Assert.That(WireTestUtil.ReferenceChecksum(msg), Is.EqualTo(0));
        Assert.That(Icmpv4Packet.TryCreate(msg, out var p), Is.True);
        Assert.That(Icmpv4Repr.TryParse(p, out var r), Is.True);
        Assert.That(r.NextHopMtu, Is.EqualTo(1400));
        Assert.That(Ipv4Packet.TryCreateQuoted(p.Payload, out var q), Is.True);
        Assert.That(q.Destination, Is.EqualTo(Ipv4Address.Parse("192.168.1.20")));
    }

    [TestCase(8, 1, false)]
    [TestCase(0, 0, true)]
    [TestCase(3, 3, true)]
    [TestCase(11, 0, true)]
    [TestCase(11, 2, false)]
    [TestCase(13, 0, false)]
    public void TypesAndCodes(int type, int code, bool accepted)
    {
        var msg = new byte[8];
        msg[0] = (byte)type; msg[1] = (byte)code;
        Assert.That(Icmpv4Packet.TryCreate(msg, out var p), Is.True);
        Assert.That(Icmpv4Repr.TryParse(p, out _), Is.EqualTo(accepted));
    }

    [Test]
    public void TruncatedRejectedAndCorruptionDetected()
    {
        for (int n = 0; n < 8; n++) Assert.That(Icmpv4Packet.TryCreate(Echo.AsSpan(0, n), out _), Is.False);
        var bad = (byte[])Echo.Clone();
        bad[^1] ^= 1;
        Assert.That(Icmpv4Packet.TryCreate(bad, out var p), Is.True);
        Assert.That(p.VerifyChecksum(), Is.False);
    }
}

public class UdpTests
{
    private static readonly Ipv4Address Src = Ipv4Address.Parse("192.168.1.10");
    private static readonly Ipv4Address Dst = Ipv4Address.Parse("192.168.1.20");
    private static byte[] Udp => Ipv4Tests.UdpFrame[34..];

    [Test]
    public void RoundTrip()
    {
        Assert.That(UdpDatagram.TryCreate(Udp, out var d), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(d.SourcePort, Is.EqualTo(40000));
            Assert.That(d.DestinationPort, Is.EqualTo(7777));
            Assert.That(d.Length, Is.EqualTo(22));
            Assert.That(d.Checksum, Is.EqualTo(0xCA6A));
            Assert.That(d.VerifyChecksum(Src, Dst), Is.True);
            Assert.That(d.VerifyChecksum(Src, new Ipv4Address(Dst.Value + 1)), Is.False);
            Assert.That(System.Text.Encoding.ASCII.GetString(d.Payload), Is.EqualTo("hello gazelle!"));
        }
        var outBuf = new byte[Udp.Length];
        Udp.AsSpan(8).CopyTo(outBuf.AsSpan(8));
        UdpRepr.Parse(d).Emit(outBuf, Src, Dst);
        Assert.That(outBuf, Is.EqualTo(Udp));
    }

    [Test]
    public void ZeroChecksumMeansNone()
    {
        var u = Udp;
        u[6] = 0; u[7] = 0;
        u[^1] ^= 0x55;
        Assert.That(UdpDatagram.TryCreate(u, out var d), Is.True);
        Assert.That(d.VerifyChecksum(Src, Dst), Is.True);
    }

    [Test]
    public void ComputedZeroIsSentAsAllOnes()
    {
        // Find a payload word that makes the checksum compute to 0; it must go out as ffff (RFC 768).
        var buf = new byte[10];
        for (int w = 0; w < 65536; w++)
        {
            buf[8] = (byte)(w >> 8); buf[9] = (byte)w;
            new UdpRepr(1, 2).Emit(buf, Src, Dst);
            if (buf[6] == 0xFF && buf[7] == 0xFF)
            {
                Assert.That(UdpDatagram.TryCreate(buf, out var d) && d.VerifyChecksum(Src, Dst), Is.True);
                return;
            }
            Assert.That(buf[6] | buf[7], Is.Not.Zero);
        }
        Assert.Fail("no payload produced a zero checksum");
    }

    [Test]
    public void BadLengthsRejected()
    {
        for (int n = 0; n < Udp.Length; n++) Assert.That(UdpDatagram.TryCreate(Udp.AsSpan(0, n), out _), Is.False, $"len {n}");
        foreach (int len in new[] { 0, 7, 23, 0xFFFF })
        {
            var u = Udp;
            u[4] = (byte)(len >> 8); u[5] = (byte)len;
            Assert.That(UdpDatagram.TryCreate(u, out _), Is.False, $"length field {len}");
        }
        var shortLen = Udp;
        shortLen[5] = 8;
        Assert.That(UdpDatagram.TryCreate(shortLen, out var empty), Is.True);
        Assert.That(empty.Payload.Length, Is.Zero);
    }
}

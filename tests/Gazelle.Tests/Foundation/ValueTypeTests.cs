using Gazelle.Wire;

namespace Gazelle.Tests.Foundation;

public class SeqNumTests
{
    [TestCase(1u, 2u, true)]
    [TestCase(0xFFFF_FFF0u, 0x10u, true)]     // wraps: 0x10 is after 0xFFFFFFF0
    [TestCase(0x10u, 0xFFFF_FFF0u, false)]
    [TestCase(5u, 5u, false)]
    public void LessThanIsModular(uint a, uint b, bool expected) =>
        Assert.That(new SeqNum(a) < new SeqNum(b), Is.EqualTo(expected));

    [Test]
    public void DistanceAcrossWrap()
    {
        Assert.That(new SeqNum(0x10) - new SeqNum(0xFFFF_FFF0), Is.EqualTo(0x20));
        Assert.That((new SeqNum(0xFFFF_FFFF) + 2).Value, Is.EqualTo(1u));
    }
}

public class AddressTests
{
    [Test]
    public void Ipv4RoundTripsThroughTextAndBytes()
    {
        var a = Ipv4Address.Parse("192.168.7.42");
        Assert.That(a.ToString(), Is.EqualTo("192.168.7.42"));
        Span<byte> b = stackalloc byte[4];
        a.Write(b);
        Assert.That(b.ToArray(), Is.EqualTo(new byte[] { 192, 168, 7, 42 }));
        Assert.That(Ipv4Address.Read(b), Is.EqualTo(a));
        Assert.That(a.InSubnet(Ipv4Address.Parse("192.168.7.0"), Ipv4Address.Parse("255.255.255.0")), Is.True);
    }

    [TestCase("1.2.3")]
    [TestCase("1.2.3.256")]
    [TestCase("1.2.3.4.5")]
    [TestCase("a.b.c.d")]
    [TestCase("1..2.3")]
    public void Ipv4RejectsMalformedText(string s) => Assert.That(Ipv4Address.TryParse(s, out _), Is.False);

    [Test]
    public void MacRoundTrips()
    {
        var m = MacAddress.Parse("02:00:5e:10:00:01");
        Assert.That(m.ToString(), Is.EqualTo("02:00:5e:10:00:01"));
        Assert.That(m.IsMulticast, Is.False);
        Assert.That(MacAddress.Parse("01:00:5e:00:00:01").IsMulticast, Is.True);
        Assert.That(MacAddress.TryParse("02:00:5e:10:00", out _), Is.False);
    }
}

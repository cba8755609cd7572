using Gazelle.Network;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Network;

public class PathMtuTableTests
{
    private static readonly Ipv4Address D = new(192, 0, 2, 1);

    [TestCase(1400, 1500, 1400)]
    [TestCase(0, 1500, 1492)]  // RFC 1191 §7 plateau below 1500
    [TestCase(0, 1000, 508)]
    [TestCase(20, 1500, 68)]   // clamped to the RFC 791 minimum
    [TestCase(1600, 1500, 1500)] // never raised
    public void Updates(int reported, int quotedTotal, int expected)
    {
        var t = new PathMtuTable(1500);
        t.Update(D, reported, quotedTotal, Instant.Zero);
        Assert.That(t.Get(D, Instant.Zero), Is.EqualTo(expected));
    }

    [Test]
    public void BoundedWithEviction()
    {
        var t = new PathMtuTable(1500, capacity: 3);
        for (uint i = 0; i < 5; i++) t.Update(new Ipv4Address(i + 1), 1000, 1500, Instant.FromMilliseconds(i));
        Assert.That(t.Count, Is.EqualTo(3));
        Assert.That(t.Get(new Ipv4Address(1), Instant.FromMilliseconds(10)), Is.EqualTo(1500), "oldest evicted");
        Assert.That(t.Get(new Ipv4Address(5), Instant.FromMilliseconds(10)), Is.EqualTo(1000));
    }
}

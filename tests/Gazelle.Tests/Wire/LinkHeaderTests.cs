using Gazelle.Wire;
using static Gazelle.Tests.Wire.WireTestUtil;

namespace Gazelle.Tests.Wire;

public class EthernetTests
{
    private static readonly byte[] Untagged = Hex("020000000002 020000000001 0800 4500");
    private static readonly byte[] Tagged = Hex("ffffffffffff 0a0b0c0d0e0f 8100 a064 0806 0001");

    [Test]
    public void UntaggedRoundTrip()
    {
        Assert.That(EthernetFrame.TryCreate(Untagged, out var f), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(f.Destination, Is.EqualTo(MacAddress.Parse("02:00:00:00:00:02")));
            Assert.That(f.Source, Is.EqualTo(MacAddress.Parse("02:00:00:00:00:01")));
            Assert.That(f.EtherType, Is.EqualTo(EtherType.Ipv4));
            Assert.That(f.HasVlanTag, Is.False);
            Assert.That(f.VlanId, Is.EqualTo(0));
            Assert.That(f.Payload.ToArray(), Is.EqualTo(new byte[] { 0x45, 0x00 }));
        }
        var repr = EthernetRepr.Parse(f);
        var outBuf = new byte[repr.HeaderLength];
        repr.Emit(outBuf);
        Assert.That(outBuf, Is.EqualTo(Untagged[..14]));
    }

    [Test]
    public void VlanTagExposesIdPriorityAndInnerType()
    {
        Assert.That(EthernetFrame.TryCreate(Tagged, out var f), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(f.Destination.IsBroadcast, Is.True);
            Assert.That(f.HasVlanTag, Is.True);
            Assert.That(f.VlanId, Is.EqualTo(100));
            Assert.That(f.Priority, Is.EqualTo(5));
            Assert.That(f.EtherType, Is.EqualTo(EtherType.Arp));
            Assert.That(f.Length, Is.EqualTo(18));
            Assert.That(f.Payload.ToArray(), Is.EqualTo(new byte[] { 0x00, 0x01 }));
        }
        var repr = EthernetRepr.Parse(f);
        var outBuf = new byte[repr.HeaderLength];
        repr.Emit(outBuf);
        Assert.That(outBuf, Is.EqualTo(Tagged[..18]));
    }

    [Test]
    public void TruncatedHeadersRejected()
    {
        for (int n = 0; n < 14; n++) Assert.That(EthernetFrame.TryCreate(Untagged.AsSpan(0, n), out _), Is.False, $"untagged {n}");
        for (int n = 0; n < 18; n++) Assert.That(EthernetFrame.TryCreate(Tagged.AsSpan(0, n), out _), Is.False, $"tagged {n}");
        Assert.That(EthernetFrame.TryCreate(Tagged.AsSpan(0, 18), out _), Is.True);
    }
}

public class ArpTests
{
    // Who has 192.168.1.20? Tell 192.168.1.10 (02:00:00:00:00:01).
    private static readonly byte[] Request = Hex("0001 0800 06 04 0001 020000000001 c0a8010a 000000000000 c0a80114");

    [Test]
    public void RequestRoundTrip()
    {
        Assert.That(ArpPacket.TryCreate(Request, out var p), Is.True);
        Assert.That(ArpRepr.TryParse(p, out var r), Is.True);
        Assert.That(r, Is.EqualTo(new ArpRepr(ArpOperation.Request, MacAddress.Parse("02:00:00:00:00:01"),
            Ipv4Address.Parse("192.168.1.10"), MacAddress.Zero, Ipv4Address.Parse("192.168.1.20"))));
        var outBuf = new byte[ArpPacket.Length];
        r.Emit(outBuf);
        Assert.That(outBuf, Is.EqualTo(Request));
    }

    [Test]
    public void TruncatedAndForeignRejected()
    {
        for (int n = 0; n < 28; n++) Assert.That(ArpPacket.TryCreate(Request.AsSpan(0, n), out _), Is.False, $"len {n}");
        foreach (var (index, value) in new[] { (1, (byte)6), (2, (byte)0x86), (4, (byte)8), (5, (byte)16) })
        {
            var bad = (byte[])Request.Clone();
            bad[index] = value;
            Assert.That(ArpPacket.TryCreate(bad, out _), Is.False, $"byte {index}");
        }
        var badOp = (byte[])Request.Clone();
        badOp[7] = 3;
        Assert.That(ArpPacket.TryCreate(badOp, out var p), Is.True);
        Assert.That(ArpRepr.TryParse(p, out _), Is.False);
    }
}

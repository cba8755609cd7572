using Gazelle.Network;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Network;

public class ReassemblerTests
{
    private static readonly Ipv4Address Src = new(10, 0, 0, 9), Dst = new(10, 0, 0, 1);

    private static byte[] Fragment(ushort id, int offset, ReadOnlySpan<byte> data, bool more, Ipv4Address? src = null)
    {
        var b = new byte[20 + data.Length];
        new Ipv4Repr { Source = src ?? Src, Destination = Dst, Protocol = 17, Ttl = 64, Identification = id, FragmentOffset = offset, MoreFragments = more, PayloadLength = data.Length }.Emit(b);
        data.CopyTo(b.AsSpan(20));
        return b;
    }

    private static bool Add(Ipv4Reassembler r, byte[] frag, Instant now, out byte[] payload)
    {
        Assert.That(Ipv4Packet.TryCreate(frag, out var p), Is.True);
        bool done = r.TryAdd(p, now, out var span);
        payload = span.ToArray();
        return done;
    }

    private static byte[] Data(int n, int seed)
    {
        var d = new byte[n];
        new Random(seed).NextBytes(d);
        return d;
    }

    [Test]
    public void AnyOrderReassembles()
    {
        var data = Data(3000, 1);
        var perms = new[] { new[] { 0, 1, 2, 3 }, new[] { 3, 2, 1, 0 }, new[] { 2, 0, 3, 1 }, new[] { 1, 3, 0, 2 } };
        foreach (var order in perms)
        {
            var c = new Ipv4Counters();
            var r = new Ipv4Reassembler(c);
            int[] starts = { 0, 800, 1600, 2400 };
            byte[]? result = null;
            for (int k = 0; k < 4; k++)
            {
                int i = order[k];
                int len = i == 3 ? 600 : 800;
                bool done = Add(r, Fragment(7, starts[i], data.AsSpan(starts[i], len), more: i != 3), Instant.Zero, out var p);
                Assert.That(done, Is.EqualTo(k == 3), $"order {string.Join(",", order)} step {k}");
                if (done) result = p;
            }
            Assert.That(result, Is.EqualTo(data));
            Assert.That((c.FragmentsStored, c.Reassembled, r.InProgress), Is.EqualTo((3L, 1L, 0)));
        }
    }

    [TestCase(400, 800, TestName = "partial overlap")]
    [TestCase(792, 16, TestName = "straddling edge")]
    public void OverlapDiscardsTheDatagram(int offset, int length)
    {
        var c = new Ipv4Counters();
        var r = new Ipv4Reassembler(c);
        var data = Data(2000, 2);
        Assert.That(Add(r, Fragment(1, 0, data.AsSpan(0, 800), true), Instant.Zero, out _), Is.False);
        Assert.That(Add(r, Fragment(1, offset, data.AsSpan(offset, length), true), Instant.Zero, out _), Is.False);
        Assert.That(c.FragmentOverlaps, Is.EqualTo(1));
        Assert.That(r.InProgress, Is.Zero);
        // The rest alone no longer completes anything.
        Assert.That(Add(r, Fragment(1, 800, data.AsSpan(800, 1200), false), Instant.Zero, out _), Is.False);
    }

    [Test]
    public void ExactDuplicateIsDroppedAlone()
    {
        var c = new Ipv4Counters();
        var r = new Ipv4Reassembler(c);
        var data = Data(1600, 3);
        Assert.That(Add(r, Fragment(1, 0, data.AsSpan(0, 800), true), Instant.Zero, out _), Is.False);
        Assert.That(Add(r, Fragment(1, 0, data.AsSpan(0, 800), true), Instant.Zero, out _), Is.False);
        Assert.That(c.FragmentDuplicates, Is.EqualTo(1));
        Assert.That(Add(r, Fragment(1, 800, data.AsSpan(800, 800), false), Instant.Zero, out var whole), Is.True);
        Assert.That(whole, Is.EqualTo(data));
    }

    [Test]
    public void InvalidFragmentsRejected()
    {
        var c = new Ipv4Counters();
        var r = new Ipv4Reassembler(c);
        Add(r, Fragment(2, 0, new byte[13], true), Instant.Zero, out _); // not a multiple of 8
        Add(r, Fragment(3, 65528, new byte[16], false), Instant.Zero, out _); // past 65535
        Add(r, Fragment(4, 0, new byte[16], false, null), Instant.Zero, out _); // last: ends at 16 — alone it completes
        Assert.That(c.FragmentInvalid, Is.EqualTo(2));
        Add(r, Fragment(5, 64, new byte[8], false), Instant.Zero, out _);
        Add(r, Fragment(5, 80, new byte[8], true), Instant.Zero, out _); // beyond the known end
        Assert.That(c.FragmentInvalid, Is.EqualTo(3));
        Assert.That(r.InProgress, Is.Zero);
    }

    [Test]
    public void TimeoutAndBoundedSlots()
    {
        var c = new Ipv4Counters();
        var r = new Ipv4Reassembler(c, slots: 2, timeout: TimeSpanMicros.FromSeconds(30));
        Add(r, Fragment(1, 0, new byte[8], true), Instant.Zero, out _);
        Add(r, Fragment(2, 0, new byte[8], true), Instant.FromMilliseconds(10), out _);
        Assert.That(r.Poll(Instant.FromMilliseconds(20)), Is.EqualTo(Instant.FromMilliseconds(30_000)));
        Add(r, Fragment(3, 0, new byte[8], true), Instant.FromMilliseconds(20), out _); // evicts id 1
        Assert.That(c.ReassemblyEvictions, Is.EqualTo(1));
        Assert.That(r.InProgress, Is.EqualTo(2));
        r.Poll(Instant.FromMilliseconds(30_010));
        Assert.That(c.ReassemblyTimeouts, Is.EqualTo(1));
        r.Poll(Instant.FromMilliseconds(30_020));
        Assert.That(c.ReassemblyTimeouts, Is.EqualTo(2));
        Assert.That(r.InProgress, Is.Zero);
        Assert.That(r.Poll(Instant.FromMilliseconds(40_000)), Is.EqualTo(Instant.Never));
    }

    [Test]
    public void TooManyFragmentsRejected()
    {
        var c = new Ipv4Counters();
        var r = new Ipv4Reassembler(c, maxFragments: 4);
        for (int i = 0; i < 5; i++) Add(r, Fragment(9, i * 8, new byte[8], true), Instant.Zero, out _);
        Assert.That(c.FragmentTooMany, Is.EqualTo(1));
        Assert.That(r.InProgress, Is.Zero);
    }
}

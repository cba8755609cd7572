using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>
/// The send ring's block sums (taken as bytes are copied in) give every segment's payload sum exactly as summing its
/// bytes would: at any offset and length, odd or even, across the ring's wrap, after the head moved into a block and
/// the tail came round behind it, after the ring grew; a short ring keeps none.
/// </summary>
public class SendRingSumTests
{
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void SegmentSumsMatchTheBytesAtEveryOffset(int seed)
    {
        var rng = new Random(seed);
        var pool = new RingPool(16 << 20);
        var t = new Tcb(0, pool);
        t.Reset(256 * 1024, 64 * 1024);
        var data = new byte[70_000];
        int checkedSums = 0;
        for (int round = 0; round < 400; round++)
        {
            // Appends of every shape (odd lengths put later writes mid-word and mid-block) ...
            rng.NextBytes(data);
            int n = rng.Next(4) == 0 ? rng.Next(1, 8) : rng.Next(1, data.Length);
            t.AppendSend(data.AsSpan(0, n));
            // ... then segments anywhere in what the ring holds, as output cuts them (a few past 64 KiB are never cut).
            for (int k = 0; k < 8 && t.SndCount > 0; k++)
            {
                int offset = rng.Next(t.SndCount);
                int length = Math.Min(t.SndCount - offset, rng.Next(1, 65_000));
                bool kept = t.TrySendSum(offset, length, out uint sum);
                Assert.That(kept, Is.EqualTo(t.SndBuf.Length >= Tcb.SumMinRing), "a long ring keeps sums, a short one none");
                if (!kept) continue;
                t.SendSlice(offset, length, out var a, out var b);
                uint expected = InternetChecksum.Add(InternetChecksum.Sum(a), InternetChecksum.SumAt(b, a.Length));
                Assert.That(InternetChecksum.Finish(sum), Is.EqualTo(InternetChecksum.Finish(expected)),
                    $"round {round}: sum of [{offset}, +{length}) of {t.SndCount} (ring {t.SndBuf.Length}, head {t.SndHead})");
                checkedSums++;
            }
            // ACKs free an odd share from the front, leaving the head mid-block.
            if (t.SndCount > 100_000 || rng.Next(3) == 0) t.ConsumeSend(rng.Next(t.SndCount + 1) | 1);
        }
        Assert.That(checkedSums, Is.GreaterThan(2000));
        Assert.That(t.SndBuf.Length, Is.GreaterThanOrEqualTo(Tcb.SumMinRing), "the ring grew past the size that keeps sums");
    }

    [Test]
    public void AShortRingKeepsNoSums()
    {
        var t = new Tcb(0, new RingPool(1 << 20));
        t.Reset(16 * 1024, 16 * 1024);
        t.AppendSend(new byte[5000]);
        Assert.That(t.TrySendSum(0, 1000, out _), Is.False);
    }
}

using Gazelle.Wire;
using static Gazelle.Tests.Wire.WireTestUtil;

namespace Gazelle.Tests.Wire;

public class InternetChecksumTests
{
    [Test]
    public void KnownIpv4HeaderChecksum()
    {
        // A commonly quoted IPv4 header whose checksum field is b861.
        var h = Hex("45000073000040004011 0000 c0a80001c0a800c7");
        Assert.That(InternetChecksum.Compute(h), Is.EqualTo(0xB861));
        h[10] = 0xB8; h[11] = 0x61;
        Assert.That(InternetChecksum.Sum(h), Is.EqualTo(0xFFFFu));
    }

    [Test]
    public void Rfc1071ExampleSum()
    {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        Assert.That(InternetChecksum.Sum(Hex("0001f203f4f5f6f7")), Is.EqualTo(0xDDF2u));
    }

    [Test]
    public void VectorPathMatchesScalarReferenceOnRandomLengthsAndAlignments()
    {
        var rng = new Random(1071);
        var buf = new byte[3000 + 64];
        for (int iter = 0; iter < 4000; iter++)
        {
            int len = iter < 3001 ? iter : rng.Next(0, 3001);
            int off = rng.Next(0, 64);
            rng.NextBytes(buf);
            // Occasionally all ones, to stress carries in every lane.
            if (iter % 7 == 0) buf.AsSpan(off, len).Fill(0xFF);
            var data = buf.AsSpan(off, len);
            Assert.That(InternetChecksum.Compute(data), Is.EqualTo(ReferenceChecksum(data)), $"len {len} off {off}");
        }
    }

    [TestCase(true, true)]
    [TestCase(true, false)]
    [TestCase(false, true)]
    [TestCase(false, false)]
    public void EveryPathMatchesTheReference(bool v256, bool v128)
    {
        var rng = new Random(v256 ? 256 : v128 ? 128 : 64);
        var buf = new byte[3100];
        for (int len = 0; len <= 3000; len += 1 + (len > 200 ? 13 : 0))
        {
            int off = rng.Next(0, 64);
            rng.NextBytes(buf);
            if (len % 5 == 0) buf.AsSpan(off, len).Fill(0xFF);
            var data = buf.AsSpan(off, len);
            Assert.That(InternetChecksum.Finish(InternetChecksum.Sum(data, v256, v128)), Is.EqualTo(ReferenceChecksum(data)), $"len {len} off {off}");
        }
    }

    [Test]
    public void LargeAllOnesBufferDoesNotOverflow()
    {
        var data = new byte[65535 * 3];
        Array.Fill(data, (byte)0xFF);
        Assert.That(InternetChecksum.Compute(data), Is.EqualTo(ReferenceChecksum(data)));
    }

    [Test]
    public void ChunkedSumsCombineIncludingOddSplits()
    {
        var rng = new Random(7);
        var data = new byte[777];
        rng.NextBytes(data);
        ushort whole = ReferenceChecksum(data);
        foreach (int split in new[] { 0, 1, 2, 3, 100, 101, 776, 777 })
        {
            uint s = InternetChecksum.Add(InternetChecksum.SumAt(data.AsSpan(0, split), 0), InternetChecksum.SumAt(data.AsSpan(split), split));
            Assert.That(InternetChecksum.Finish(s), Is.EqualTo(whole), $"split {split}");
        }
    }

    [Test]
    public void PseudoHeaderSumMatchesExplicitBytes()
    {
        var src = new Ipv4Address(192, 168, 1, 10);
        var dst = new Ipv4Address(10, 255, 0, 1);
        var bytes = Hex("c0a8010a 0aff0001 0011 05dc");
        Assert.That(InternetChecksum.PseudoHeaderSum(src, dst, IpProtocol.Udp, 0x05DC), Is.EqualTo(InternetChecksum.Sum(bytes)));
    }

    [Test]
    public void IncrementalUpdateMatchesRecompute()
    {
        var rng = new Random(1624);
        var data = new byte[40];
        for (int i = 0; i < 1000; i++)
        {
            rng.NextBytes(data);
            data[10] = 0; data[11] = 0;
            ushort c = InternetChecksum.Compute(data);
            int w = rng.Next(0, 20) * 2;
            if (w == 10) continue;
            ushort oldWord = (ushort)((data[w] << 8) | data[w + 1]);
            ushort newWord = (ushort)rng.Next(0, 65536);
            data[w] = (byte)(newWord >> 8); data[w + 1] = (byte)newWord;
            ushort expect = InternetChecksum.Compute(data);
            ushort got = InternetChecksum.Update(c, oldWord, newWord);
            // 0x0000 and 0xFFFF are the same one's complement value (RFC 1624 §3).
            Assert.That(got == expect || (got ^ expect) == 0xFFFF && (got == 0 || expect == 0), Is.True, $"{got:x4} vs {expect:x4}");
        }
    }

    [Test]
    public void CopyAndSumCopiesAndSumsLikeSumForEveryLengthAndAlignment()
    {
        var r = new Random(7);
        var src = new byte[4200];
        r.NextBytes(src);
        var dst = new byte[4300];
        foreach (int len in new[] { 0, 1, 2, 3, 63, 64, 65, 1023, 1024, 1025, 1087, 1448, 1449, 2048, 4095, 4096, 4100 })
        {
            for (int off = 0; off < 3; off++)
            {
                foreach (bool narrow in new[] { false, true }) // the vector width of the JIT, and the 128-bit loop NativeAOT runs
                {
                    Array.Fill(dst, (byte)0xCC);
                    uint got = narrow ? InternetChecksum.CopyAndSum128(src.AsSpan(off, len), dst.AsSpan(off + 1)) : InternetChecksum.CopyAndSum(src.AsSpan(off, len), dst.AsSpan(off + 1));
                    Assert.That(got, Is.EqualTo(InternetChecksum.Sum(src.AsSpan(off, len))), $"sum, len {len} off {off} narrow {narrow}");
                    Assert.That(dst.AsSpan(off + 1, len).SequenceEqual(src.AsSpan(off, len)), Is.True, $"copy, len {len} off {off}");
                    Assert.That(dst[off], Is.EqualTo((byte)0xCC), "nothing written before");
                    Assert.That(dst[off + 1 + len], Is.EqualTo((byte)0xCC), "nothing written after");
                }
            }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => InternetChecksum.CopyAndSum(src.AsSpan(0, 10), dst.AsSpan(0, 9)));
    }

    /// <summary>The 128-bit loop's 32-bit lane accumulators take at most 0xFFFF a step: past a megabyte of all-ones words
    /// (the most a lane can gain) the sum still matches, so they are folded before they could overflow.</summary>
    [Test]
    public void CopyAndSumOfMegabytesOfOnesDoesNotOverflow()
    {
        var src = new byte[3 << 20];
        Array.Fill(src, (byte)0xFF);
        src[12345] = 0x12;
        var dst = new byte[src.Length];
        Assert.That(InternetChecksum.Finish(InternetChecksum.CopyAndSum128(src, dst)), Is.EqualTo(InternetChecksum.Finish(InternetChecksum.Sum(src))));
        Assert.That(InternetChecksum.Finish(InternetChecksum.CopyAndSum128(src.AsSpan(1), dst)), Is.EqualTo(InternetChecksum.Finish(InternetChecksum.Sum(src.AsSpan(1)))));
    }
}

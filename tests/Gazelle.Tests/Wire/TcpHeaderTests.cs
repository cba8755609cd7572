using Gazelle.Wire;
using static Gazelle.Tests.Wire.WireTestUtil;

namespace Gazelle.Tests.Wire;

public class TcpHeaderTests
{
    private static readonly Ipv4Address Src = Ipv4Address.Parse("192.168.1.10");
    private static readonly Ipv4Address Dst = Ipv4Address.Parse("192.168.1.20");

    // SYN 40001 -> 80, seq deadbeef, win 65535, options MSS 1460, NOP WS 7, SACK-permitted, TS 0x01020304/0.
    // Checksum 865c computed independently (pseudo-header 192.168.1.10 -> 192.168.1.20).
    private static readonly byte[] Syn = Hex("9c410050deadbeef00000000a002ffff865c0000 020405b4 01030307 0402080a 01020304 00000000");

    // PSH|ACK 80 -> 40001 seq 1 ack 2 win 1024, NOP NOP TS 1000/2000, NOP NOP SACK (100,200) (300,400), "abcde".
    private static readonly byte[] DataAck = Hex("00509c410000000100000002d0180400c31e0000 0101080a000003e8000007d0 01010512 00000064000000c80000012c00000190 6162636465");

    [Test]
    public void SynRoundTrip()
    {
        Assert.That(TcpHeader.TryCreate(Syn, out var h), Is.True);
        Assert.That(h.VerifyChecksum(Src, Dst), Is.True);
        Assert.That(h.TryParse(out var r), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.SrcPort, Is.EqualTo(40001));
            Assert.That(r.DstPort, Is.EqualTo(80));
            Assert.That(r.Seq.Value, Is.EqualTo(0xDEADBEEF));
            Assert.That(r.Flags, Is.EqualTo(TcpFlags.Syn));
            Assert.That(r.Window, Is.EqualTo(65535));
            Assert.That(r.Options.Mss, Is.EqualTo(1460));
            Assert.That(r.Options.WindowScale, Is.EqualTo(7));
            Assert.That(r.Options.SackPermitted, Is.True);
            Assert.That(r.Options.HasTimestamp, Is.True);
            Assert.That(r.Options.TsVal, Is.EqualTo(0x01020304));
            Assert.That(r.Options.TsEcr, Is.EqualTo(0));
            Assert.That(r.Options.SackCount, Is.EqualTo(0));
            Assert.That(h.Payload.Length, Is.Zero);
        }
        Assert.That(TcpHeader.EmittedLength(r), Is.EqualTo(40));
        var outBuf = new byte[Syn.Length];
        Assert.That(TcpHeader.Emit(r, outBuf), Is.EqualTo(40));
        TcpHeader.WriteChecksum(outBuf, Src, Dst);
        Assert.That(outBuf, Is.EqualTo(Syn));
    }

    [Test]
    public void DataWithSackRoundTrip()
    {
        Assert.That(TcpHeader.TryCreate(DataAck, out var h), Is.True);
        Assert.That(h.VerifyChecksum(Src, Dst), Is.True);
        Assert.That(h.TryParse(out var r), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.Flags, Is.EqualTo(TcpFlags.Psh | TcpFlags.Ack));
            Assert.That(r.Options.Mss, Is.Zero);
            Assert.That(r.Options.HasWindowScale, Is.False);
            Assert.That(r.Options.TsVal, Is.EqualTo(1000));
            Assert.That(r.Options.TsEcr, Is.EqualTo(2000));
            Assert.That(r.Options.SackCount, Is.EqualTo(2));
            Assert.That(r.Options.Sack[0], Is.EqualTo(new SackBlock(new SeqNum(100), new SeqNum(200))));
            Assert.That(r.Options.Sack[1], Is.EqualTo(new SackBlock(new SeqNum(300), new SeqNum(400))));
            Assert.That(System.Text.Encoding.ASCII.GetString(h.Payload), Is.EqualTo("abcde"));
        }
        var outBuf = new byte[DataAck.Length];
        DataAck.AsSpan(52).CopyTo(outBuf.AsSpan(52));
        Assert.That(TcpHeader.Emit(r, outBuf), Is.EqualTo(52));
        TcpHeader.WriteChecksum(outBuf, Src, Dst);
        Assert.That(outBuf, Is.EqualTo(DataAck));
    }

    [Test]
    public void LinuxSynLayoutParses()
    {
        // MSS 1460, SACK-permitted, TS, NOP, WS 7: the layout Linux sends.
        var opts = Hex("020405b4 0402 080a 0000aaaa 00000000 01 030307");
        var o = TcpOptions.None;
        Assert.That(TcpHeader.TryParseOptions(opts, ref o), Is.True);
        Assert.That((o.Mss, o.SackPermitted, o.HasTimestamp, o.TsVal, o.WindowScale), Is.EqualTo(((ushort)1460, true, true, 0xAAAAu, (byte)7)));
    }

    private static IEnumerable<TestCaseData> OptionCases()
    {
        yield return new TestCaseData("", true, "none").SetName("empty");
        yield return new TestCaseData("00 02 04 05b4", true, "none").SetName("EOL ends the list");
        yield return new TestCaseData("01 01 01 01", true, "none").SetName("NOPs");
        yield return new TestCaseData("020405b4", true, "mss=1460").SetName("MSS");
        yield return new TestCaseData("030309", true, "ws=9").SetName("window scale");
        yield return new TestCaseData("03031e", true, "ws=14").SetName("window scale clamped to 14");
        yield return new TestCaseData("0402", true, "sackok").SetName("SACK permitted");
        yield return new TestCaseData("080a 00000001 00000002", true, "ts=1/2").SetName("timestamps");
        yield return new TestCaseData("0101080a 00000003 00000004", true, "ts=3/4").SetName("NOP NOP timestamps (the predicted layout)");
        yield return new TestCaseData("0101080a 00000003 000000", false, "").SetName("predicted layout cut short");
        yield return new TestCaseData("0101080b 00000003 0000000400", false, "").SetName("NOP NOP timestamps of length 11");
        yield return new TestCaseData("050a 00000001 00000002", true, "sack=1").SetName("one SACK block");
        yield return new TestCaseData("0522" + string.Concat(Enumerable.Repeat("0000000100000002", 4)), true, "sack=4").SetName("four SACK blocks");
        yield return new TestCaseData("fe04 abcd 020405b4", true, "mss=1460").SetName("unknown option skipped by length");
        yield return new TestCaseData("1e02 0402", true, "sackok").SetName("unknown 2-byte option skipped");
        yield return new TestCaseData("02", false, "").SetName("missing length byte");
        yield return new TestCaseData("0201", false, "").SetName("length 1");
        yield return new TestCaseData("0200", false, "").SetName("length 0 (would loop)");
        yield return new TestCaseData("fe08 0000", false, "").SetName("length past end");
        yield return new TestCaseData("020505b400", false, "").SetName("MSS wrong length");
        yield return new TestCaseData("030207", false, "").SetName("WS wrong length");
        yield return new TestCaseData("0403 00", false, "").SetName("SACK-permitted wrong length");
        yield return new TestCaseData("0509 0000000100000002 00", false, "").SetName("SACK length not 2+8n");
        yield return new TestCaseData("0502", false, "").SetName("SACK with no blocks");
        yield return new TestCaseData("052a" + string.Concat(Enumerable.Repeat("0000000100000002", 5)), false, "").SetName("five SACK blocks");
        yield return new TestCaseData("0808 000000010000", false, "").SetName("timestamps wrong length");
    }

    [TestCaseSource(nameof(OptionCases))]
    public void OptionTable(string hex, bool ok, string expect)
    {
        var o = TcpOptions.None;
        bool parsed = TcpHeader.TryParseOptions(Hex(hex), ref o);
        Assert.That(parsed, Is.EqualTo(ok));
        if (!ok) return;
        var parts = new List<string>();
        if (o.Mss != 0) parts.Add($"mss={o.Mss}");
        if (o.HasWindowScale) parts.Add($"ws={o.WindowScale}");
        if (o.SackPermitted) parts.Add("sackok");
        if (o.HasTimestamp) parts.Add($"ts={o.TsVal}/{o.TsEcr}");
        if (o.SackCount != 0) parts.Add($"sack={o.SackCount}");
        Assert.That(parts.Count == 0 ? "none" : string.Join(",", parts), Is.EqualTo(expect));
    }

    [Test]
    public void EmitPadsEveryCombinationAndRoundTrips()
    {
        for (int mask = 0; mask < 32; mask++)
        {
            for (int sacks = 0; sacks <= 4; sacks++)
            {
                var r = new TcpRepr { SrcPort = 1, DstPort = 2, Seq = new SeqNum(5), Ack = new SeqNum(6), Flags = TcpFlags.Ack, Window = 100, Options = TcpOptions.None };
                if ((mask & 1) != 0) r.Options.Mss = 536;
                if ((mask & 2) != 0) r.Options.WindowScale = 3;
                if ((mask & 4) != 0) r.Options.SackPermitted = true;
                if ((mask & 8) != 0) { r.Options.HasTimestamp = true; r.Options.TsVal = 11; r.Options.TsEcr = 12; }
                r.Options.SackCount = (byte)sacks;
                for (int b = 0; b < sacks; b++) r.Options.Sack[b] = new SackBlock(new SeqNum((uint)(10 * b)), new SeqNum((uint)(10 * b + 5)));

                var buf = new byte[60];
                int len = TcpHeader.Emit(r, buf);
                Assert.That(len % 4, Is.Zero);
                Assert.That(len, Is.InRange(20, 60));
                Assert.That(TcpHeader.TryCreate(buf.AsSpan(0, len), out var h), Is.True);
                Assert.That(h.HeaderLength, Is.EqualTo(len));
                Assert.That(h.TryParse(out var back), Is.True);
                int fit = TcpHeader.SackBlocksThatFit(r.Options);
                using (Assert.EnterMultipleScope())
                {
                    Assert.That(back.Options.Mss, Is.EqualTo(r.Options.Mss));
                    Assert.That(back.Options.WindowScale, Is.EqualTo(r.Options.WindowScale));
                    Assert.That(back.Options.SackPermitted, Is.EqualTo(r.Options.SackPermitted));
                    Assert.That(back.Options.HasTimestamp, Is.EqualTo(r.Options.HasTimestamp));
                    Assert.That(back.Options.TsVal, Is.EqualTo(r.Options.TsVal));
                    Assert.That(back.Options.SackCount, Is.EqualTo(fit));
                    for (int b = 0; b < fit; b++) Assert.That(back.Options.Sack[b], Is.EqualTo(r.Options.Sack[b]));
                }
                if ((mask & 8) != 0) Assert.That(fit, Is.LessThanOrEqualTo(3), "with timestamps only 3 SACK blocks fit");
                else if (sacks > 0 && (mask & 3) == 0) Assert.That(fit, Is.EqualTo(Math.Min(sacks, 4)));
            }
        }
    }

    [Test]
    public void TruncatedAndBadOffsetsRejected()
    {
        for (int n = 0; n < 40; n++) Assert.That(TcpHeader.TryCreate(Syn.AsSpan(0, n), out _), Is.False, $"len {n}");
        var bad = (byte[])Syn.Clone();
        bad[12] = 0x40; // data offset 4 words
        Assert.That(TcpHeader.TryCreate(bad, out _), Is.False);
        bad[12] = 0xF0; // 60 bytes, only 40 present
        Assert.That(TcpHeader.TryCreate(bad, out _), Is.False);
        var corrupt = (byte[])Syn.Clone();
        corrupt[5] ^= 0x10;
        Assert.That(TcpHeader.TryCreate(corrupt, out var h) && !h.VerifyChecksum(Src, Dst), Is.True);
    }
}

using System.Buffers.Binary;
using System.Diagnostics;
using Gazelle.Buffers;
using Gazelle.Devices.Capture;
using Gazelle.Devices.InMemory;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Devices;

public class CaptureNicTests
{
    private static readonly MacAddress MacA = MacAddress.Parse("02:00:00:00:00:0a");
    private static readonly MacAddress MacB = MacAddress.Parse("02:00:00:00:00:0b");
    private static readonly Ipv4Address IpA = new(10, 0, 0, 1);
    private static readonly Ipv4Address IpB = new(10, 0, 0, 2);

    private string _path = null!;

    [SetUp]
    public void SetUp() => _path = Path.Combine(Path.GetTempPath(), $"gazelle-capture-{Guid.NewGuid():N}.pcap");

    [TearDown]
    public void TearDown()
    {
        if (File.Exists(_path)) File.Delete(_path);
    }

    private readonly record struct Record(long Seconds, long Micros, int Captured, int Original, byte[] Data);

    /// <summary>An independent reader of the classic pcap format (little-endian, as the writer emits it).</summary>
    private static (uint Magic, ushort Major, ushort Minor, uint Snap, uint LinkType, List<Record> Records) ReadPcap(byte[] file)
    {
        var s = file.AsSpan();
        Assert.That(s.Length, Is.GreaterThanOrEqualTo(24));
        var records = new List<Record>();
        int at = 24;
        while (at < s.Length)
        {
            Assert.That(s.Length - at, Is.GreaterThanOrEqualTo(16), "truncated record header");
            uint sec = BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);
            uint usec = BinaryPrimitives.ReadUInt32LittleEndian(s[(at + 4)..]);
            int incl = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(at + 8)..]);
            int orig = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(at + 12)..]);
            at += 16;
            Assert.That(s.Length - at, Is.GreaterThanOrEqualTo(incl), "truncated record data");
            records.Add(new Record(sec, usec, incl, orig, s.Slice(at, incl).ToArray()));
            at += incl;
        }
        return (BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt16LittleEndian(s[4..]),
            BinaryPrimitives.ReadUInt16LittleEndian(s[6..]), BinaryPrimitives.ReadUInt32LittleEndian(s[16..]),
            BinaryPrimitives.ReadUInt32LittleEndian(s[20..]), records);
    }

    private static string? FindTshark()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':'))
        {
            var p = Path.Combine(dir, "tshark");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>A's side is captured; A sends three UDP datagrams to B and B answers one, at virtual times.</summary>
    private void WriteScenario()
    {
        using var a = new UserVeth(new UserVethOptions { MacAddress = MacA });
        using var b = new UserVeth(new UserVethOptions { MacAddress = MacB });
        var bridge = new UserVbridge();
        bridge.AddPort(a);
        bridge.AddPort(b);
        using (var writer = PcapWriter.Create(_path))
        {
            var cap = new CaptureNic(a, writer);
            Span<byte> f = stackalloc byte[256];
            var one = new PacketBuffer[1];
            for (int i = 0; i < 3; i++)
            {
                cap.AdvanceTo(new Instant(1_700_000_000_000_000 + i * 1_500)); // 1.5 ms apart
                int n = TestFrames.WriteIpv4(f, MacB, MacA, IpA, IpB, 17, (ushort)(5000 + i), 53, payload: 10 * i);
                one[0] = TestFrames.Rent(cap.TxPool, f[..n]);
                Assert.That(cap.Transmit(0, one), Is.EqualTo(1));
            }
            bridge.Pump();
            var rx = new PacketBuffer[8];
            int got = b.Receive(0, rx);
            Assert.That(got, Is.EqualTo(3));
            for (int i = 0; i < got; i++) rx[i].Release();

            int m = TestFrames.WriteIpv4(f, MacA, MacB, IpB, IpA, 17, 53, 5000, payload: 7);
            one[0] = TestFrames.Rent(b.TxPool, f[..m]);
            b.Transmit(0, one);
            bridge.Pump();
            cap.AdvanceTo(new Instant(1_700_000_001_000_000));
            Assert.That(cap.Receive(0, rx), Is.EqualTo(1));
            rx[0].Release();
            Assert.That(writer.Records, Is.EqualTo(4));
        }
        Assert.That(a.TxPool.InUse + a.RxPool.InUse + b.TxPool.InUse + b.RxPool.InUse, Is.Zero);
    }

    [Test]
    public void CaptureFileHasClassicHeaderAndOneRecordPerFrameBothWays()
    {
        WriteScenario();
        var (magic, major, minor, snap, linkType, records) = ReadPcap(File.ReadAllBytes(_path));
        Assert.Multiple(() =>
        {
            Assert.That(magic, Is.EqualTo(0xA1B2C3D4));
            Assert.That((major, minor), Is.EqualTo(((ushort)2, (ushort)4)));
            Assert.That(snap, Is.EqualTo(65535));
            Assert.That(linkType, Is.EqualTo(1), "LINKTYPE_ETHERNET");
            Assert.That(records, Has.Count.EqualTo(4));
        });
        Assert.Multiple(() =>
        {
            Assert.That((records[0].Seconds, records[0].Micros), Is.EqualTo((1_700_000_000L, 0L)));
            Assert.That((records[1].Seconds, records[1].Micros), Is.EqualTo((1_700_000_000L, 1_500L)));
            Assert.That((records[3].Seconds, records[3].Micros), Is.EqualTo((1_700_000_001L, 0L)));
            Assert.That(records[0].Original, Is.EqualTo(14 + 20 + 8));
            Assert.That(records[2].Original, Is.EqualTo(14 + 20 + 8 + 20));
            Assert.That(MacAddress.Read(records[3].Data), Is.EqualTo(MacA), "the received frame");
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(records[1].Data.AsSpan(34)), Is.EqualTo(5001));
        });
    }

    [Test]
    public void TsharkReadsTheCapture()
    {
        var tshark = FindTshark();
        if (tshark is null) Assert.Ignore("tshark not installed (make deps installs it); the header test covers the format");
        WriteScenario();
        var psi = new ProcessStartInfo(tshark)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-r", _path, "-T", "fields", "-E", "separator=,", "-e", "frame.time_epoch", "-e", "frame.len",
                     "-e", "eth.src", "-e", "ip.dst", "-e", "udp.srcport", "-e", "udp.dstport" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderrTask = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        Assert.That(p.WaitForExit(30_000), Is.True, "tshark hung");
        Assert.That(p.ExitCode, Is.Zero, stderrTask.Result);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.EqualTo(new[]
        {
            "1700000000.000000000,42,02:00:00:00:00:0a,10.0.0.2,5000,53",
            "1700000000.001500000,52,02:00:00:00:00:0a,10.0.0.2,5001,53",
            "1700000000.003000000,62,02:00:00:00:00:0a,10.0.0.2,5002,53",
            "1700000001.000000000,49,02:00:00:00:00:0b,10.0.0.1,53,5000",
        }));
    }

    [Test]
    public void SnapLengthCutsFramesButKeepsTheirOriginalLength()
    {
        var ms = new MemoryStream();
        using (var w = new PcapWriter(ms, snapLength: 20, ownsStream: false))
        {
            w.Write(new Instant(2_000_001), new byte[60]);
            w.Write(new Instant(3_000_000), new byte[10]);
        }
        var (_, _, _, snap, _, records) = ReadPcap(ms.ToArray());
        Assert.Multiple(() =>
        {
            Assert.That(snap, Is.EqualTo(20));
            Assert.That((records[0].Captured, records[0].Original), Is.EqualTo((20, 60)));
            Assert.That((records[1].Captured, records[1].Original), Is.EqualTo((10, 10)));
            Assert.That((records[0].Seconds, records[0].Micros), Is.EqualTo((2L, 1L)));
        });
    }

    [Test]
    public void FramesTheDeviceRefusesAreNotRecordedAndCaptureAllocatesNothing()
    {
        using var a = new UserVeth(new UserVethOptions { MacAddress = MacA, RingSize = 4 });
        using var w = new PcapWriter(Stream.Null);
        var cap = new CaptureNic(a, w);
        Span<byte> f = stackalloc byte[64];
        int n = TestFrames.WriteRaw(f, MacB, MacA, 0x88B5, 46);
        var frames = new PacketBuffer[6];
        for (int i = 0; i < frames.Length; i++) frames[i] = TestFrames.Rent(a.TxPool, f[..n]);
        Assert.That(cap.Transmit(0, frames), Is.EqualTo(4));
        Assert.That(w.Records, Is.EqualTo(4));
        frames[4].Release();
        frames[5].Release();

        var drained = new PacketBuffer[8];
        var one = new PacketBuffer[1];
        void Round()
        {
            int k;
            while ((k = a.DrainTransmitted(drained)) > 0) for (int i = 0; i < k; i++) drained[i].Release();
            var b = a.TxPool.Rent()!;
            b.Append(60);
            one[0] = b;
            cap.Transmit(0, one);
            a.DeliverFromWire(b.Data);
            while ((k = cap.Receive(0, drained)) > 0) for (int i = 0; i < k; i++) drained[i].Release();
        }
        for (int i = 0; i < 100; i++) Round();
        Assert.That(AllocationProbe.LeastAllocated(() => { for (int i = 0; i < 5000; i++) Round(); }, out int rounds), Is.Zero);
        Assert.That(w.Records, Is.EqualTo(4 + 2 * (100 + 5000 * rounds)));
        int m;
        while ((m = a.DrainTransmitted(drained)) > 0) for (int i = 0; i < m; i++) drained[i].Release();
        Assert.That(a.TxPool.InUse + a.RxPool.InUse, Is.Zero);
    }
}

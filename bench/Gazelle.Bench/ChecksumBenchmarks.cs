using BenchmarkDotNet.Attributes;
using Gazelle.Wire;

namespace Gazelle.Bench;

/// <summary>
/// The Internet checksum (RFC 1071) over the sizes a stack meets: a minimum frame, the classic IPv4
/// minimum MTU, an Ethernet MTU, a jumbo frame, an IPv4 header (20 B) and 256 B (where the 256-bit loop
/// gets level with the 128-bit one). <see cref="Vector"/> is what
/// the stack calls (128-bit vectors below <c>InternetChecksum.Vector256MinLength</c>, 256-bit from it);
/// <see cref="Vector256From64"/> forces the 256-bit loop from 64 bytes (the old rule), and
/// <see cref="Vector128Only"/> and <see cref="Scalar"/> force the narrower paths of the same routine, the
/// scalar one being the reference the vector paths must match. <see cref="Legacy"/> is the routine before
/// the hot-path pass, to compare old and new in one run.
/// The GB/s column divides <see cref="Size"/> by the mean time.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ThroughputConfig))]
public class ChecksumBenchmarks
{
    private byte[] _data = [];
    private byte[] _copy = [];

    [Params(20, 64, 256, 576, 1500, 9000)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        _copy = new byte[Size];
        new Random(Size).NextBytes(_data);
    }

    [Benchmark(Baseline = true)]
    public uint Scalar() => InternetChecksum.Sum(_data, useVector256: false, useVector128: false);

    [Benchmark]
    public uint Vector128Only() => InternetChecksum.Sum(_data, useVector256: false, useVector128: true);

    [Benchmark]
    public uint Vector256From64() => InternetChecksum.Sum(_data, vector256From: 64, useVector128: true);

    [Benchmark]
    public uint Vector() => InternetChecksum.Sum(_data);

    /// <summary>Copy and checksum in one pass (how TCP and UDP output fill a packet buffer).</summary>
    [Benchmark]
    public uint CopyAndSum() => InternetChecksum.CopyAndSum(_data, _copy);

    /// <summary>The routine <see cref="Vector"/> replaced (see <see cref="LegacyChecksum"/>).</summary>
    [Benchmark]
    public uint Legacy() => LegacyChecksum.Sum(_data);
}

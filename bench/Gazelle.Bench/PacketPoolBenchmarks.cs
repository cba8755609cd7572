using BenchmarkDotNet.Attributes;
using Gazelle.Buffers;

namespace Gazelle.Bench;

/// <summary>Renting, filling and releasing a packet buffer: the cost every packet pays once.</summary>
[MemoryDiagnoser]
public class PacketPoolBenchmarks : IDisposable
{
    private readonly NativePacketPool _pool = new(1024);

    [Benchmark]
    public int RentPrependRelease()
    {
        var b = _pool.Rent()!;
        b.Append(64).Fill(0xAB);
        b.Prepend(14)[0] = 1;
        int len = b.Length;
        b.Release();
        return len;
    }

    public void Dispose() => _pool.Dispose();
}

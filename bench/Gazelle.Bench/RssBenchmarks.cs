using BenchmarkDotNet.Attributes;
using Gazelle.Devices.Rss;
using Gazelle.Wire;

namespace Gazelle.Bench;

/// <summary>
/// Software RSS (what the user-veth does per received frame, and what a stack uses to pick the queue of
/// an outgoing connection): the table-driven Toeplitz hash of an IPv4 4-tuple, the bit-by-bit
/// <c>rte_softrss</c>-style reference on the same tuple, and the frame hasher (locate the tuple in an
/// Ethernet + IPv4 + TCP frame, then hash it).
/// </summary>
[MemoryDiagnoser]
public class RssBenchmarks
{
    private readonly ToeplitzHash _hasher = ToeplitzHash.CreateDefault();
    private readonly byte[] _key = ToeplitzHash.MicrosoftKey.ToArray();
    private readonly uint[] _tuple;
    private readonly byte[] _frame;
    private const uint Source = 0x0A00_0001, Destination = 0x0A00_0002;
    private const ushort SourcePort = 40_000, DestinationPort = 80;

    public RssBenchmarks()
    {
        _tuple = [Source, Destination, (uint)SourcePort << 16 | DestinationPort];
        _frame = new HeaderBenchmarks().TcpFrame.ToArray();
    }

    [Benchmark(Baseline = true)]
    public uint ToeplitzIpv4Tuple() => _hasher.HashIpv4(Source, Destination, SourcePort, DestinationPort);

    [Benchmark]
    public uint SoftRssReference() => ToeplitzHash.SoftRss(_tuple, _key);

    [Benchmark]
    public uint FrameHasher() => RssFrameHasher.TryHash(_frame, _hasher, out uint hash) ? hash : 0;
}

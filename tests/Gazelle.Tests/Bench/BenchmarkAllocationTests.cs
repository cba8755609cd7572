using System.Reflection;
using BenchmarkDotNet.Attributes;
using Gazelle.Bench;
using Gazelle.Devices.Rss;
using Gazelle.Wire;

namespace Gazelle.Tests.Bench;

/// <summary>
/// Runs the body of every micro-benchmark in Gazelle.Bench (every [Params] combination) many times after
/// a warm-up and asserts that it allocated nothing on the GC heap, so a regression on a packet path fails
/// the test suite, not just a benchmark table someone has to read. Also checks that each body does the
/// work it claims (a benchmark that silently bails out early would be fast and allocation-free).
/// No timings here: those belong to the benchmarks.
/// </summary>
public class BenchmarkAllocationTests
{
    private const int Warmup = 2_000;
    private const int Iterations = 10_000;
    private const int Rounds = 3;

    private static readonly MethodInfo MeasureMethod =
        typeof(BenchmarkAllocationTests).GetMethod(nameof(Measure), BindingFlags.NonPublic | BindingFlags.Static)!;

    public static IEnumerable<Type> BenchmarkClasses() =>
        typeof(ChecksumBenchmarks).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false, IsPublic: true })
            .Where(t => t.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkAttribute))))
            .OrderBy(t => t.Name);

    [Test]
    public void TheBenchmarkAssemblyHasTheExpectedClasses() =>
        Assert.That(BenchmarkClasses().Select(t => t.Name), Is.SupersetOf(new[]
        {
            nameof(ChecksumBenchmarks), nameof(HeaderBenchmarks), nameof(RssBenchmarks), nameof(StackRoundTripBenchmarks),
            nameof(PacketPoolBenchmarks), nameof(TcpBenchmarks), nameof(ConnectionBenchmarks),
        }));

    [TestCaseSource(nameof(BenchmarkClasses))]
    public void EveryBenchmarkBodyAllocatesNothing(Type type)
    {
        var offenders = new List<string>();
        int measured = 0;
        foreach (var assignment in ParameterCombinations(type))
        {
            object instance = Activator.CreateInstance(type)!;
            try
            {
                foreach (var (property, value) in assignment) property.SetValue(instance, value);
                InvokeAll<GlobalSetupAttribute>(instance);
                foreach (var method in type.GetMethods().Where(m => m.IsDefined(typeof(BenchmarkAttribute))).OrderBy(m => m.Name))
                {
                    long allocated = MeasureBody(instance, method);
                    measured++;
                    if (allocated != 0)
                        offenders.Add($"{type.Name}.{method.Name}({string.Join(", ", assignment.Select(a => $"{a.Property.Name}={a.Value}"))}): {allocated} B over {Iterations} calls");
                }
            }
            finally
            {
                InvokeAll<GlobalCleanupAttribute>(instance);
                if (instance is IDisposable d && !type.GetMethods().Any(m => m.IsDefined(typeof(GlobalCleanupAttribute)) && m.Name == nameof(IDisposable.Dispose)))
                    d.Dispose();
            }
        }
        Assert.That(measured, Is.GreaterThan(0));
        Assert.That(offenders, Is.Empty, "benchmark bodies that allocate on the GC heap");
    }

    [TestCase(20), TestCase(64), TestCase(576), TestCase(1023), TestCase(1024), TestCase(1500), TestCase(9000), TestCase(9001)]
    public void ChecksumVectorPathsMatchTheScalarReference(int size)
    {
        var b = new ChecksumBenchmarks { Size = size };
        b.Setup();
        uint scalar = b.Scalar();
        Assert.That((b.Vector128Only(), b.Vector256From64(), b.Vector(), b.Legacy()), Is.EqualTo((scalar, scalar, scalar, scalar)));
        Assert.That(scalar, Is.Not.Zero);
    }

    [Test]
    public void HeaderBenchmarksParseWhatTheyEmit()
    {
        var b = new HeaderBenchmarks();
        Assert.That(b.EmitTcp(), Is.EqualTo(b.TcpFrame.Length));
        Assert.That(b.EmitUdp(), Is.EqualTo(b.UdpFrame.Length));
        Assert.That(b.TcpFrame.Length, Is.EqualTo(14 + 20 + 52 + HeaderBenchmarks.PayloadLength), "TCP header with timestamps and two SACK blocks");
        Assert.That(b.ParseTcp(), Is.Not.Zero, "the TCP frame parses and both checksums verify");
        Assert.That(b.ParseUdp(), Is.Not.Zero, "the UDP frame parses and both checksums verify");
    }

    [Test]
    public void RssBenchmarksAgreeWithTheReference()
    {
        var b = new RssBenchmarks();
        uint reference = b.SoftRssReference();
        Assert.That(b.ToeplitzIpv4Tuple(), Is.EqualTo(reference));
        Assert.That(b.FrameHasher(), Is.EqualTo(reference), "the frame hasher finds the same 4-tuple in the frame");
        Assert.That(reference, Is.EqualTo(ToeplitzHash.SoftRss([0x0A00_0001, 0x0A00_0002, 40_000u << 16 | 80], ToeplitzHash.MicrosoftKey)));
    }

    [Test]
    public void EveryRoundTripIsEchoedInFull()
    {
        using var b = new StackRoundTripBenchmarks();
        for (int i = 0; i < 1000; i++)
        {
            Assert.That(b.UdpRoundTrip(), Is.EqualTo(StackRoundTripBenchmarks.PayloadLength), $"UDP round trip {i}");
            Assert.That(b.TcpRoundTrip(), Is.EqualTo(StackRoundTripBenchmarks.PayloadLength), $"TCP round trip {i}");
        }
        Assert.That(b.Client.Tcp.Counters.RetransmittedSegments + b.Server.Tcp.Counters.RetransmittedSegments, Is.Zero);
        Assert.That(b.Client.Counters.SumOfFrameOutcomes(), Is.EqualTo(b.Client.Counters.Link.FramesReceived));
        Assert.That(b.Network.InFlight, Is.Zero);
    }

    [Test]
    public void EveryShortConnectionCompletesAndRecyclesOneTimeWait()
    {
        var b = new ConnectionBenchmarks { PoolSize = 64 };
        try
        {
            b.Setup();
            long recycled = b.Server.Tcp.Counters.TimeWaitRecycled;
            for (int i = 0; i < 1000; i++) Assert.That(b.ShortConnection(), Is.EqualTo(64), $"connection {i}");
            Assert.That(b.Server.Tcp.Counters.TimeWaitRecycled - recycled, Is.EqualTo(1000), "each new connection took the oldest TIME_WAIT");
            Assert.That(b.Server.Tcp.Counters.SynCookiesSent, Is.Zero, "SYN queue entries, never cookies");
            Assert.That(b.Client.Tcp.Counters.RetransmittedSegments + b.Server.Tcp.Counters.RetransmittedSegments, Is.Zero);
            Assert.That(b.Server.Tcp.LiveConnections, Is.EqualTo(64), "the listener and 63 TIME_WAITs");
            Assert.That(b.Client.Tcp.LiveConnections, Is.Zero, "the client's side of every connection is gone");
        }
        finally
        {
            b.Dispose();
        }
    }

    [Test]
    public void TcpBenchmarksStayOnTheFastPath()
    {
        // A fresh instance per method, as BenchmarkDotNet runs them.
        Assert.That(new TcpBenchmarks().FlowLookup(), Is.EqualTo(777), "the 778th flow added is found");

        var input = new TcpBenchmarks();
        long before = input.SegmentsOut;
        for (int i = 0; i < 1000; i++)
            Assert.That(input.InputInOrderData(), Is.EqualTo(TcpBenchmarks.PayloadLength), $"data segment {i} delivered");
        Assert.That(input.SegmentsOut - before, Is.InRange(1, 1000), "ACKs went out, at most one per segment");

        var single = new TcpBenchmarks();
        before = single.SegmentsOut;
        for (int i = 0; i < 1000; i++)
            Assert.That(single.OutputSegmentThenPureAck(), Is.EqualTo(TcpBenchmarks.PayloadLength), $"send {i}");
        Assert.That(single.SegmentsOut - before, Is.EqualTo(1000), "one segment per send (TCP_NODELAY)");

        var burst = new TcpBenchmarks();
        before = burst.SegmentsOut;
        for (int i = 0; i < 1000; i++)
            Assert.That(burst.OutputBurstOf16(), Is.EqualTo(16 * TcpBenchmarks.PayloadLength), $"burst {i}");
        Assert.That(burst.SegmentsOut - before, Is.EqualTo(16_000), "every segment of every burst goes out at once");

        foreach (var b in new[] { input, single, burst })
        {
            Assert.That(b.Layer.GetState(b.Connection), Is.EqualTo(Gazelle.Transport.Tcp.TcpState.Established));
            Assert.That(b.Layer.Counters.RetransmittedSegments, Is.Zero);
        }
    }

    private static long MeasureBody(object instance, MethodInfo method)
    {
        if (method.GetParameters().Length != 0) throw new NotSupportedException($"{method.Name} takes arguments");
        if (method.ReturnType == typeof(void))
        {
            var action = method.CreateDelegate<Action>(instance);
            return Measure(() => { action(); return 0; });
        }
        var func = method.CreateDelegate(typeof(Func<>).MakeGenericType(method.ReturnType), instance);
        return (long)MeasureMethod.MakeGenericMethod(method.ReturnType).Invoke(null, [func])!;
    }

    /// <summary>Bytes allocated by this thread across <see cref="Iterations"/> calls after <see cref="Warmup"/> calls
    /// (enough for tiered compilation to have settled): the least of up to <see cref="Rounds"/> measurements.
    /// A per-call allocation shows in every round (at least <see cref="Iterations"/> bytes); a one-off
    /// allocation by the runtime under load (seen in the full suite: 1-4 KB once, in tests of other
    /// areas too) does not fail the test.</summary>
    private static long Measure<T>(Func<T> body)
    {
        for (int i = 0; i < Warmup; i++) body();
        long least = long.MaxValue;
        for (int round = 0; round < Rounds && least != 0; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < Iterations; i++) body();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return least;
    }

    private static void InvokeAll<TAttribute>(object instance) where TAttribute : Attribute
    {
        foreach (var m in instance.GetType().GetMethods().Where(m => m.IsDefined(typeof(TAttribute))))
            m.Invoke(instance, null);
    }

    /// <summary>Cartesian product of the values of every [Params] property (one empty assignment when there are none).</summary>
    private static IEnumerable<List<(PropertyInfo Property, object? Value)>> ParameterCombinations(Type type)
    {
        IEnumerable<List<(PropertyInfo, object?)>> result = [[]];
        foreach (var p in type.GetProperties().Where(p => p.IsDefined(typeof(ParamsAttribute))))
        {
            var values = p.GetCustomAttribute<ParamsAttribute>()!.Values;
            result = result.SelectMany(a => values.Select(v => new List<(PropertyInfo, object?)>(a) { (p, v) })).ToList();
        }
        return result;
    }
}

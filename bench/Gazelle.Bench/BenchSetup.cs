using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;

namespace Gazelle.Bench;

/// <summary>What the benchmarks over real stacks on the in-memory network share.</summary>
internal static class BenchSetup
{
    /// <summary>Fails a benchmark's setup when a call into the stack did not succeed.</summary>
    public static void Check(Errno e)
    {
        if (e != Errno.Ok) throw new InvalidOperationException($"setup call failed: {e}");
    }

    /// <summary>Polls both stacks and switches frames until the bridge has nothing left (bounded).</summary>
    public static void RunUntilQuiet(NetStack a, NetStack b, InMemoryNetwork network, Instant now)
    {
        for (int i = 0; i < 8; i++)
        {
            a.Poll(now);
            b.Poll(now);
            if (network.Poll(now) == 0 && i > 0) break;
        }
    }
}

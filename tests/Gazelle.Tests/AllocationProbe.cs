namespace Gazelle.Tests;

/// <summary>Measures GC bytes allocated on this thread by a steady-state round of work.</summary>
internal static class AllocationProbe
{
    /// <summary>Runs <paramref name="round"/> up to <paramref name="maxRounds"/> times, stopping at the
    /// first that allocates nothing, and returns the least any round allocated. A per-call allocation
    /// shows in every round and fails the test. A one-off allocation made on this thread by the
    /// runtime, not by the code measured, does not: seen under CPU load in full-suite runs only, 1-4 KB
    /// once (ConnectionChurnAllocatesNothingAndLeaksNothing: 1752 and 1880 B in 2 of 3 loaded runs, 0 B
    /// alone), the size of a refill of the runtime's process-wide lookup caches (casts, virtual
    /// resolution) that other threads' work can evict. Each discarded round is written to the test's output.</summary>
    public static long LeastAllocated(Action round, out int roundsRun, int maxRounds = 3)
    {
        long least = long.MaxValue;
        roundsRun = 0;
        while (roundsRun < maxRounds && least != 0)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            round();
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            least = Math.Min(least, allocated);
            roundsRun++;
            if (allocated != 0)
                TestContext.Out.WriteLine($"allocation probe: round {roundsRun} allocated {allocated} B" +
                    (roundsRun < maxRounds ? "; measuring again (a one-off by the runtime is not the code's)" : ""));
        }
        return least;
    }
}

namespace Gazelle.Tests;

/// <summary>Measures GC bytes allocated on this thread by a steady-state round of work.</summary>
internal static class AllocationProbe
{
    /// <summary>Runs <paramref name="round"/> up to <paramref name="maxRounds"/> times, stopping at the
    /// first that allocates nothing, and returns the least any round allocated. A per-call allocation
    /// shows in every round; a one-off allocation by the runtime under load (seen in full-suite runs:
    /// 1-4 KB once) does not fail a test.</summary>
    public static long LeastAllocated(Action round, out int roundsRun, int maxRounds = 3)
    {
        long least = long.MaxValue;
        roundsRun = 0;
        while (roundsRun < maxRounds && least != 0)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            round();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
            roundsRun++;
        }
        return least;
    }
}

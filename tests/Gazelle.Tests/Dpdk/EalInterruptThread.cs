using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Gazelle.Tests.Dpdk;

/// <summary>
/// EAL's interrupt thread (eal-intr-thread) runs device callbacks one at a time: memif's control
/// channel, alarms. <see cref="Drain"/> queues an alarm there and waits for it to run, so that
/// whatever that thread was doing when it was called has finished.
/// </summary>
internal static unsafe partial class EalInterruptThread
{
    [LibraryImport("librte_eal.so.23")]
    private static partial int rte_eal_alarm_set(ulong microseconds, delegate* unmanaged<void*, void> callback, void* arg);

    [UnmanagedCallersOnly]
    private static void Ran(void* flag) => Volatile.Write(ref *(int*)flag, 1);

    /// <summary>True once an alarm set now has run on the interrupt thread; false if it has not within
    /// <paramref name="timeout"/>.</summary>
    public static bool Drain(TimeSpan timeout)
    {
        // Freed only after the callback ran: on a timeout it may still run later, so it is left.
        int* flag = (int*)NativeMemory.AllocZeroed(sizeof(int));
        Assert.That(rte_eal_alarm_set(1, &Ran, flag), Is.Zero, "rte_eal_alarm_set");
        var sw = Stopwatch.StartNew();
        while (Volatile.Read(ref *flag) == 0)
        {
            if (sw.Elapsed > timeout) return false;
            Thread.Sleep(1);
        }
        NativeMemory.Free(flag);
        return true;
    }
}

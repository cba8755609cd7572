namespace Gazelle.Devices.Dpdk;

/// <summary>The CPU's time-stamp counter through the DPDK glue (rte_rdtsc), for <see cref="Gazelle.Time.TscClock"/>.</summary>
public static class DpdkTsc
{
    public static ulong Read() => DpdkNative.gz_dpdk_tsc();
}

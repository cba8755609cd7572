namespace Gazelle.Devices.Dpdk;

/// <summary>What went wrong when starting DPDK or a port (a one-line message says which and why).</summary>
public enum DpdkError
{
    /// <summary>DPDK's libraries or the glue library (libgazelle-dpdk.so) could not be loaded.</summary>
    LibraryMissing,
    /// <summary>The glue was built for another ABI than this code expects.</summary>
    GlueMismatch,
    /// <summary>rte_eal_init rejected dpdk_args.</summary>
    BadArguments,
    /// <summary>EAL was already initialised in this process (rte_eal_init runs once per process).</summary>
    AlreadyInitialized,
    /// <summary>Not enough (huge)page memory for EAL or for a packet buffer pool.</summary>
    NoMemory,
    /// <summary>The port asked for does not exist, or no port exists at all.</summary>
    NoDevice,
    /// <summary>The device cannot do what was asked (queues, MTU, RSS key size ...).</summary>
    Unsupported,
    /// <summary>Any other failure of a DPDK call (the message names the call and rte_errno).</summary>
    Failed,
}

/// <summary>A start-up failure of DPDK (control path only; the data path reports through counters).</summary>
public sealed class DpdkException : Exception
{
    public DpdkException(DpdkError error, string message, int errno = 0, string? ealLog = null) : base(message)
    {
        Error = error;
        Errno = errno;
        EalLog = ealLog;
    }

    public DpdkError Error { get; }
    /// <summary>rte_errno / negative return of the failing call, as a positive errno (0 if none).</summary>
    public int Errno { get; }
    /// <summary>What EAL logged during rte_eal_init, when the failure came from there.</summary>
    public string? EalLog { get; }
}

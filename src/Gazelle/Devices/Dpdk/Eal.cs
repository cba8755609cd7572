using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Text;

namespace Gazelle.Devices.Dpdk;

/// <summary>
/// DPDK's Environment Abstraction Layer, started from <c>dpdk_args</c> (the lstack.conf key).
/// </summary>
/// <remarks>
/// <para><b>Once per process.</b> rte_eal_init can succeed only once in a process's life, and
/// rte_eal_cleanup does not make it callable again: a second <see cref="Start"/> fails with
/// <see cref="DpdkError.AlreadyInitialized"/>. Create one <see cref="Eal"/> at start-up and hand it
/// to every <see cref="DpdkPort"/>; it is the proof that EAL is up. The only process-wide state is
/// DPDK's own; this class keeps none.</para>
/// <para>A failed start because of bad arguments leaves EAL startable again (DPDK resets its guard);
/// failures after argument parsing (memory, devices) do not.</para>
/// <para>rte_eal_init binds the calling thread to the main lcore's CPU set. A program's own thread
/// (the preloaded, shared-thread model) must not be pinned behind its back: start with
/// <c>keepCallerAffinity</c> and its CPU set is restored after init.</para>
/// </remarks>
public sealed unsafe class Eal : IDisposable
{
    private const int LogCapacity = 16 * 1024;
    private bool _disposed;

    private Eal(string[] args, string initLog)
    {
        Args = args;
        InitLog = initLog;
        MainLcore = (int)DpdkNative.rte_get_main_lcore();
        LcoreCount = (int)DpdkNative.rte_lcore_count();
        MbufHeadroom = DpdkNative.gz_dpdk_pktmbuf_headroom();
    }

    /// <summary>The dpdk_args EAL was started with (without argv[0]).</summary>
    public IReadOnlyList<string> Args { get; }
    /// <summary>What EAL logged while starting.</summary>
    public string InitLog { get; }
    public int MainLcore { get; }
    public int LcoreCount { get; }
    /// <summary>RTE_PKTMBUF_HEADROOM of the DPDK build (bytes in front of a fresh mbuf's data).</summary>
    public int MbufHeadroom { get; }
    /// <summary>Ethernet ports currently available (probed at start or hot-plugged).</summary>
    public int PortCount { get { ThrowIfDisposed(); return DpdkNative.rte_eth_dev_count_avail(); } }
    public bool IsDisposed => _disposed;

    /// <summary>Starts EAL; throws <see cref="DpdkException"/> with a one-line reason.</summary>
    public static Eal Start(IReadOnlyList<string> dpdkArgs, bool keepCallerAffinity = false)
    {
        if (!TryStart(dpdkArgs, out var eal, out var error, keepCallerAffinity)) throw error;
        return eal;
    }

    /// <summary>Starts EAL, reporting failure as an exception object instead of throwing it.</summary>
    public static bool TryStart(IReadOnlyList<string> dpdkArgs, [NotNullWhen(true)] out Eal? eal, [NotNullWhen(false)] out DpdkException? error,
        bool keepCallerAffinity = false)
    {
        ArgumentNullException.ThrowIfNull(dpdkArgs);
        eal = null;
        error = CheckLibraries();
        if (error != null) return false;

        var args = dpdkArgs.ToArray();
        // argv[0] plus the arguments, in native memory that is never freed: EAL permutes argv and
        // may keep pointers into it for the life of the process (a few hundred bytes, once).
        var argv = (byte**)NativeMemory.AllocZeroed((nuint)(args.Length + 2), (nuint)sizeof(byte*));
        argv[0] = (byte*)Marshal.StringToCoTaskMemUTF8("gazelle");
        for (int i = 0; i < args.Length; i++) argv[i + 1] = (byte*)Marshal.StringToCoTaskMemUTF8(args[i]);

        var log = (byte*)NativeMemory.AllocZeroed(LogCapacity);
        try
        {
            int rteErrno;
            int rc = DpdkNative.gz_dpdk_eal_init(args.Length + 1, argv, log, LogCapacity, &rteErrno, keepCallerAffinity ? 1 : 0);
            var logText = Marshal.PtrToStringUTF8((nint)log) ?? "";
            if (rc < 0)
            {
                error = InitError(rteErrno, args, logText);
                return false;
            }
            eal = new Eal(args, logText);
            return true;
        }
        finally
        {
            NativeMemory.Free(log);
        }
    }

    /// <summary>Hot-plugs a device (e.g. <c>net_af_packet1,iface=veth0</c>) after start; returns its port name.</summary>
    public void ProbeDevice(string devargs)
    {
        ThrowIfDisposed();
        int rc = DpdkNative.rte_dev_probe(devargs);
        if (rc < 0)
            throw new DpdkException(rc == -DpdkNative.EEXIST ? DpdkError.Failed : DpdkError.NoDevice,
                $"rte_dev_probe(\"{devargs}\") failed: {DpdkNative.StrError(rc)}", -rc);
    }

    /// <summary>Removes a hot-plugged device (close its port first). Returns false if it was not there.</summary>
    public bool RemoveDevice(string deviceName, string bus = "vdev")
    {
        ThrowIfDisposed();
        return DpdkNative.rte_eal_hotplug_remove(bus, deviceName) == 0;
    }

    /// <summary>Makes the calling thread an EAL thread (an lcore id, so mempool per-lcore caches work).
    /// Call from each stack thread; returns false when all lcore ids are taken.</summary>
    public bool RegisterCurrentThread()
    {
        ThrowIfDisposed();
        return DpdkNative.gz_dpdk_thread_register() == 0;
    }

    public void UnregisterCurrentThread()
    {
        ThrowIfDisposed();
        DpdkNative.gz_dpdk_thread_unregister();
    }

    /// <summary>The calling thread's lcore id, or uint.MaxValue (LCORE_ID_ANY) for a non-EAL thread.</summary>
    public uint CurrentLcoreId => DpdkNative.gz_dpdk_lcore_id();

    /// <summary>Releases EAL's resources (rte_eal_cleanup). Close every port first. EAL cannot be
    /// started again in this process.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        DpdkNative.rte_eal_cleanup();
    }

    internal void ThrowIfDisposed()
    {
        if (_disposed) ThrowHelpers.InvalidOperation("EAL was cleaned up (rte_eal_cleanup); it cannot be used or restarted in this process");
    }

    /// <summary>Loads DPDK's libraries and the glue and checks the glue's ABI; null when all is well.</summary>
    internal static DpdkException? CheckLibraries() =>
        CheckLibraries([DpdkNative.EalLib, DpdkNative.EthdevLib, DpdkNative.MempoolLib, DpdkNative.MbufLib, DpdkNative.RingLib]);

    internal static DpdkException? CheckLibraries(ReadOnlySpan<string> dpdkLibraries)
    {
        foreach (var lib in dpdkLibraries)
        {
            if (!NativeLibrary.TryLoad(lib, out _))
                return new DpdkException(DpdkError.LibraryMissing,
                    $"DPDK 22.11 libraries not found: cannot load {lib} (install DPDK 22.11, e.g. 'apt-get install dpdk', or add its directory to LD_LIBRARY_PATH)");
        }
        DpdkNative.EnsureResolver();
        int version;
        try
        {
            version = DpdkNative.gz_dpdk_abi_version();
        }
        catch (DllNotFoundException)
        {
            return new DpdkException(DpdkError.LibraryMissing,
                $"Gazelle DPDK glue not found: no loadable {DpdkNative.GlueFile} in [{string.Join(", ", DpdkNative.GlueCandidates())}] " +
                $"(build it with 'make -f shim/dpdk.mk BUILD=build' or set {DpdkNative.GlueEnv})");
        }
        if (version != DpdkNative.GlueAbiVersion)
            return new DpdkException(DpdkError.GlueMismatch,
                $"Gazelle DPDK glue ABI {version} does not match the stack's ABI {DpdkNative.GlueAbiVersion}: rebuild {DpdkNative.GlueFile}");
        var expected = DpdkNative.ExpectedAbiSizes;
        for (int which = 1; which < expected.Length; which++)
        {
            int native = DpdkNative.gz_dpdk_abi_size(which);
            if (native != expected[which] || DpdkNative.ManagedAbiSize(which) != expected[which])
                return new DpdkException(DpdkError.GlueMismatch,
                    $"Gazelle DPDK glue struct #{which} is {native} bytes, the stack expects {expected[which]}: rebuild {DpdkNative.GlueFile}");
        }
        return null;
    }

    private static DpdkException InitError(int rteErrno, string[] args, string log)
    {
        var reason = LastLogLine(log);
        var argText = string.Join(' ', args);
        var (kind, hint) = rteErrno switch
        {
            DpdkNative.EALREADY => (DpdkError.AlreadyInitialized,
                "EAL is already initialised in this process: rte_eal_init runs once per process, share the first Eal"),
            DpdkNative.EINVAL => (DpdkError.BadArguments, "invalid dpdk_args"),
            DpdkNative.ENOMEM => (DpdkError.NoMemory,
                "not enough memory: reserve hugepages, or use --no-huge with a smaller -m"),
            DpdkNative.EACCES => (DpdkError.Failed, "permission denied: run as root or grant access to hugepages and /dev/vfio"),
            DpdkNative.ENODEV => (DpdkError.NoDevice, "no usable device"),
            DpdkNative.ENOTSUP => (DpdkError.Unsupported, "unsupported on this machine"),
            _ => (DpdkError.Failed, "EAL start failed"),
        };
        var sb = new StringBuilder();
        sb.Append("rte_eal_init failed: ").Append(hint).Append(" (rte_errno ").Append(rteErrno).Append(": ")
          .Append(DpdkNative.StrError(rteErrno)).Append(')');
        if (reason.Length > 0) sb.Append("; EAL said: ").Append(reason);
        sb.Append("; dpdk_args: ").Append(argText.Length == 0 ? "(none)" : argText);
        return new DpdkException(kind, sb.ToString(), rteErrno, log);
    }

    /// <summary>The last non-empty line EAL logged (usually the reason), trimmed.</summary>
    private static string LastLogLine(string log)
    {
        var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (lines.Length == 0) return "";
        var last = lines[^1];
        // EAL's final generic complaint is less useful than the specific line before it.
        // (EAL's "Detected CPU lcores / NUMA nodes" lines come before argument parsing: not a reason.)
        if (lines.Length > 1 && last.Contains("Invalid 'command line' arguments", StringComparison.Ordinal)
            && !lines[^2].Contains("Detected ", StringComparison.Ordinal))
            return lines[^2] + " / " + last;
        return last;
    }
}

using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Gazelle.Devices.Dpdk;

/// <summary>
/// Native entry points: DPDK 22.11's exported functions (by versioned soname) and the glue library
/// libgazelle-dpdk.so (shim/dpdk_glue.c), which exports what DPDK only has as <c>static inline</c>
/// and owns the big configuration structs. Every declaration is <c>[LibraryImport]</c> with
/// blittable arguments: no marshalling, no allocation.
/// </summary>
/// <remarks>
/// The glue's path is resolved by <see cref="Resolve"/>, registered as the Gazelle assembly's
/// DllImport resolver (one per assembly: any other library of this assembly that needs a resolver
/// must be added there). Order: <c>$GAZELLE_DPDK_GLUE</c> (a file), then next to the loaded stack
/// library (libgazelle*.so found in /proc/self/maps), then the application's base directory, then
/// the loader's default search.
/// </remarks>
internal static unsafe partial class DpdkNative
{
    internal const string GlueName = "gazelle-dpdk";
    internal const string GlueFile = "libgazelle-dpdk.so";
    internal const string GlueEnv = "GAZELLE_DPDK_GLUE";
    internal const string EalLib = "librte_eal.so.23";
    internal const string EthdevLib = "librte_ethdev.so.23";
    internal const string MempoolLib = "librte_mempool.so.23";
    internal const string MbufLib = "librte_mbuf.so.23";
    internal const string RingLib = "librte_ring.so.23";

    /// <summary>Glue ABI this code was written against (GZ_DPDK_ABI_VERSION).</summary>
    internal const int GlueAbiVersion = 2;

    static DpdkNative()
    {
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(DpdkNative).Assembly, Resolve);
        }
        catch (InvalidOperationException)
        {
            // Another part of the assembly took the resolver slot: fall back to the load context's
            // event, which runs after the default search fails (so $GAZELLE_DPDK_GLUE no longer wins
            // over a libgazelle-dpdk.so on the default search path).
            System.Runtime.Loader.AssemblyLoadContext.Default.ResolvingUnmanagedDll +=
                (assembly, name) => assembly == typeof(DpdkNative).Assembly ? Resolve(name, assembly, null) : IntPtr.Zero;
        }
    }

    /// <summary>Ensures the resolver is registered (touching the class runs its static constructor).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void EnsureResolver() { }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName != GlueName) return IntPtr.Zero; // everything else: the default search
        foreach (var candidate in GlueCandidates())
        {
            if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out var handle)) return handle;
        }
        return IntPtr.Zero;
    }

    /// <summary>Where the glue is looked for, in order (also quoted in the not-found error).</summary>
    internal static List<string> GlueCandidates()
    {
        var list = new List<string>(4);
        var env = Environment.GetEnvironmentVariable(GlueEnv);
        if (!string.IsNullOrEmpty(env)) list.Add(env);
        var stackDir = LoadedStackLibraryDirectory();
        if (stackDir != null) list.Add(Path.Combine(stackDir, GlueFile));
        if (!string.IsNullOrEmpty(AppContext.BaseDirectory)) list.Add(Path.Combine(AppContext.BaseDirectory, GlueFile));
        return list;
    }

    /// <summary>Directory of a mapped libgazelle*.so other than the glue (the preload or NativeAOT library).</summary>
    private static string? LoadedStackLibraryDirectory()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/', StringComparison.Ordinal);
                if (slash < 0) continue;
                var path = line[slash..];
                var file = Path.GetFileName(path);
                if (file.StartsWith("libgazelle", StringComparison.Ordinal) && file.EndsWith(".so", StringComparison.Ordinal)
                    && file != GlueFile)
                    return Path.GetDirectoryName(path);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    // ------------------------------------------------------------------ glue: ABI, EAL

    [LibraryImport(GlueName)] internal static partial int gz_dpdk_abi_version();
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_abi_size(int which);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_eal_init(int argc, byte** argv, byte* log, nuint loglen, int* rteErrno, int keepAffinity);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_pktmbuf_headroom();
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_errno();
    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_lcore_id();
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_thread_register();
    [LibraryImport(GlueName)] internal static partial void gz_dpdk_thread_unregister();
    // Before every rx and tx burst: a thread-local compare in the glue, so the GC transition (a __tls_get_addr
    // in a shared library, ~2% of a TCP ping-pong) is skipped.
    [LibraryImport(GlueName), SuppressGCTransition] internal static partial void gz_dpdk_act_as_lcore(uint id);

    // ------------------------------------------------------------------ glue: ethdev control

    [LibraryImport(GlueName)] internal static partial int gz_dpdk_port_next(ushort from);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_dev_info(ushort port, DevInfo* info);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_port_setup(ushort port, PortConf* conf, byte* err, nuint errlen);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_link_get(ushort port, LinkInfo* link, int wait);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_stats_get(ushort port, PortStats* stats);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_reta_update(ushort port, ushort* queues, ushort retaSize);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_reta_query(ushort port, ushort* queues, ushort retaSize);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_rss_hash_update(ushort port, byte* key, uint keyLen, ulong rssHf);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_rss_hash_conf_get(ushort port, byte* key, uint keyLen, ulong* rssHf);
    [LibraryImport(GlueName, StringMarshalling = StringMarshalling.Utf8)] internal static partial int gz_dpdk_devargs_contain(string devName, string needle);

    // ------------------------------------------------------------------ glue: fast path

    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_rx_burst(ushort port, ushort queue, nint* mbufs, ushort n);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_tx_burst(ushort port, ushort queue, nint* mbufs, ushort n);
    // Called on every poll and flush: the GC transition (a thread-state store and, in a shared library, a
    // __tls_get_addr per call) cost as much as an empty memif burst. Both return promptly: memif copies,
    // af_packet's TX kick is one non-blocking sendto.
    [LibraryImport(GlueName), SuppressGCTransition]
    internal static partial ushort gz_dpdk_rx_burst_views(ushort port, ushort queue, nint* mbufs, MbufView* views, ushort n, RxCounters* counters);
    [LibraryImport(GlueName), SuppressGCTransition]
    internal static partial ushort gz_dpdk_tx_burst_views(ushort port, ushort queue, TxView* views, nint* scratch, ushort n, ulong* copied);

    // Per-packet calls: short, non-blocking memory operations, so the GC transition is skipped.
    [LibraryImport(GlueName), SuppressGCTransition] internal static partial nint gz_dpdk_pktmbuf_alloc(nint mempool);
    [LibraryImport(GlueName), SuppressGCTransition] internal static partial nint gz_dpdk_pktmbuf_alloc_view(nint mempool, MbufView* view);
    [LibraryImport(GlueName), SuppressGCTransition] internal static partial int gz_dpdk_pktmbuf_alloc_bulk(nint mempool, nint* mbufs, uint n);
    [LibraryImport(GlueName), SuppressGCTransition] internal static partial int gz_dpdk_pktmbuf_alloc_bulk_views(nint mempool, MbufView* views, uint n);
    [LibraryImport(GlueName), SuppressGCTransition] internal static partial void gz_dpdk_pktmbuf_free(nint mbuf);
    [LibraryImport(GlueName), SuppressGCTransition] internal static partial void gz_dpdk_pktmbuf_free_bulk(nint* mbufs, uint n);

    [LibraryImport(GlueName)] internal static partial void gz_dpdk_mbuf_view(nint mbuf, MbufView* view);
    [LibraryImport(GlueName)] internal static partial byte* gz_dpdk_mbuf_data(nint mbuf);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_mbuf_data_len(nint mbuf);
    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_mbuf_pkt_len(nint mbuf);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_mbuf_data_off(nint mbuf);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_mbuf_buf_len(nint mbuf);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_mbuf_nb_segs(nint mbuf);
    [LibraryImport(GlueName)] internal static partial nint gz_dpdk_mbuf_next(nint mbuf);
    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_mbuf_rss_hash(nint mbuf);
    [LibraryImport(GlueName)] internal static partial ulong gz_dpdk_mbuf_ol_flags(nint mbuf);
    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_mbuf_packet_type(nint mbuf);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_mbuf_headroom(nint mbuf);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_mbuf_tailroom(nint mbuf);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_mbuf_refcnt(nint mbuf);
    [LibraryImport(GlueName)] internal static partial nint gz_dpdk_mbuf_pool(nint mbuf);
    [LibraryImport(GlueName)] internal static partial byte* gz_dpdk_mbuf_prepend(nint mbuf, ushort len);
    [LibraryImport(GlueName)] internal static partial byte* gz_dpdk_mbuf_append(nint mbuf, ushort len);
    [LibraryImport(GlueName)] internal static partial byte* gz_dpdk_mbuf_adj(nint mbuf, ushort len);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_mbuf_trim(nint mbuf, ushort len);
    [LibraryImport(GlueName)] internal static partial int gz_dpdk_mbuf_chain(nint head, nint tail);
    [LibraryImport(GlueName)]
    internal static partial void gz_dpdk_mbuf_set_tx_offload(nint mbuf, ulong olFlags, ushort l2Len, ushort l3Len, ushort l4Len, ushort tsoSegsz);

    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_mempool_avail_count(nint mempool);
    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_mempool_in_use_count(nint mempool);
    [LibraryImport(GlueName)] internal static partial ushort gz_dpdk_mempool_data_room(nint mempool);

    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_ring_enqueue_burst(nint ring, nint* objs, uint n, uint* freeSpace);
    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_ring_dequeue_burst(nint ring, nint* objs, uint n, uint* available);
    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_ring_count(nint ring);
    [LibraryImport(GlueName)] internal static partial uint gz_dpdk_ring_free_count(nint ring);

    // ------------------------------------------------------------------ DPDK's own exports

    [LibraryImport(EalLib)] internal static partial byte* rte_strerror(int errnum);
    [LibraryImport(EalLib)] internal static partial int rte_eal_cleanup();
    [LibraryImport(EalLib)] internal static partial uint rte_lcore_count();
    [LibraryImport(EalLib)] internal static partial uint rte_get_main_lcore();
    [LibraryImport(EalLib)] internal static partial uint rte_socket_id();
    [LibraryImport(EalLib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rte_dev_probe(string devargs);
    [LibraryImport(EalLib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rte_eal_hotplug_remove(string bus, string device);

    [LibraryImport(EthdevLib)] internal static partial ushort rte_eth_dev_count_avail();
    [LibraryImport(EthdevLib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rte_eth_dev_get_port_by_name(string name, ushort* portId);
    [LibraryImport(EthdevLib)] internal static partial int rte_eth_dev_get_name_by_port(ushort portId, byte* name);
    [LibraryImport(EthdevLib)] internal static partial int rte_eth_dev_start(ushort portId);
    [LibraryImport(EthdevLib)] internal static partial int rte_eth_dev_stop(ushort portId);
    [LibraryImport(EthdevLib)] internal static partial int rte_eth_dev_close(ushort portId);
    [LibraryImport(EthdevLib)] internal static partial int rte_eth_dev_set_mtu(ushort portId, ushort mtu);
    [LibraryImport(EthdevLib)] internal static partial int rte_eth_dev_get_mtu(ushort portId, ushort* mtu);
    [LibraryImport(EthdevLib)] internal static partial int rte_eth_macaddr_get(ushort portId, byte* mac);
    [LibraryImport(EthdevLib)] internal static partial int rte_eth_stats_reset(ushort portId);

    [LibraryImport(MempoolLib)] internal static partial void rte_mempool_free(nint mempool);
    [LibraryImport(MempoolLib, StringMarshalling = StringMarshalling.Utf8)] internal static partial nint rte_mempool_lookup(string name);

    /// <summary>RING_F_SP_ENQ | RING_F_SC_DEQ etc. (rte_ring_core.h); 0 = multi-producer, multi-consumer.</summary>
    [LibraryImport(RingLib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint rte_ring_create(string name, uint count, int socketId, uint flags);
    [LibraryImport(RingLib)] internal static partial void rte_ring_free(nint ring);

    [LibraryImport(MbufLib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint rte_pktmbuf_pool_create(string name, uint n, uint cacheSize, ushort privSize, ushort dataRoomSize, int socketId);

    /// <summary>rte_strerror text for an errno (positive or negative).</summary>
    internal static string StrError(int errnum)
    {
        if (errnum < 0) errnum = -errnum;
        var p = rte_strerror(errnum);
        return p == null ? $"errno {errnum}" : Marshal.PtrToStringUTF8((nint)p) ?? $"errno {errnum}";
    }

    // ------------------------------------------------------------------ shared structs (mirrors of shim/dpdk_glue.c)

    /// <summary>Sizes the glue reports for <see cref="gz_dpdk_abi_size"/>, keyed as there.</summary>
    internal static ReadOnlySpan<int> ExpectedAbiSizes => [0, 160, 64, 48, 32, 24, 16, 64];

    internal static int ManagedAbiSize(int which) => which switch
    {
        1 => sizeof(DevInfo),
        2 => sizeof(PortConf),
        3 => sizeof(MbufView),
        4 => sizeof(TxView),
        5 => sizeof(RxCounters),
        6 => sizeof(LinkInfo),
        7 => sizeof(PortStats),
        _ => -1,
    };

    [StructLayout(LayoutKind.Sequential)]
    internal struct DevInfo
    {
        public ulong RxOffloadCapa;
        public ulong TxOffloadCapa;
        public ulong FlowTypeRssOffloads;
        public uint MaxRxPktLen;
        public uint MinRxBufSize;
        public uint IfIndex;
        public ushort MaxRxQueues;
        public ushort MaxTxQueues;
        public ushort RetaSize;
        public ushort HashKeySize;
        public ushort MinMtu;
        public ushort MaxMtu;
        public ushort RxDescMax;
        public ushort RxDescMin;
        public ushort TxDescMax;
        public ushort TxDescMin;
        public int SocketId;
        public uint Reserved;
        public fixed byte DriverName[32];
        public fixed byte DeviceName[64];
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct PortConf
    {
        public ulong RxOffloads;
        public ulong TxOffloads;
        public ulong RssHf;
        public byte* RssKey;
        public uint RssKeyLen;
        public uint Mtu;
        public ushort NbRxQueues;
        public ushort NbTxQueues;
        public ushort NbRxDesc;
        public ushort NbTxDesc;
        public nint* RxPools;
        public uint Promiscuous;
        public uint Reserved;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct MbufView
    {
        public nint Mbuf;
        public byte* BufAddr;
        public ulong OlFlags;
        public uint PktLen;
        public uint RssHash;
        public uint PacketType;
        public ushort BufLen;
        public ushort DataOff;
        public ushort DataLen;
        public ushort NbSegs;
        public ushort Port;
        public ushort Reserved;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct TxView
    {
        public nint Mbuf;
        public ushort DataOff;
        public ushort DataLen;
        public ushort Ext1Len;
        public ushort Ext2Len;
        public byte* Ext1;
        public byte* Ext2;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct RxCounters
    {
        public ulong LinearizedInPlace;
        public ulong LinearizedCopied;
        public ulong MultiSegmentDropped;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct LinkInfo
    {
        public uint SpeedMbps;
        public ushort FullDuplex;
        public ushort Autoneg;
        public ushort Up;
        public ushort Reserved0;
        public ushort Reserved1;
        public ushort Reserved2;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct PortStats
    {
        public ulong IPackets;
        public ulong OPackets;
        public ulong IBytes;
        public ulong OBytes;
        public ulong IMissed;
        public ulong IErrors;
        public ulong OErrors;
        public ulong RxNoMbuf;
    }

    // ------------------------------------------------------------------ DPDK constants used (22.11 rte_ethdev.h / rte_mbuf_core.h)

    internal const ulong RxOffloadIpv4Cksum = 1UL << 1;
    internal const ulong RxOffloadUdpCksum = 1UL << 2;
    internal const ulong RxOffloadTcpCksum = 1UL << 3;
    internal const ulong RxOffloadRssHash = 1UL << 19;
    internal const ulong TxOffloadIpv4Cksum = 1UL << 1;
    internal const ulong TxOffloadUdpCksum = 1UL << 2;
    internal const ulong TxOffloadTcpCksum = 1UL << 3;
    internal const ulong TxOffloadTcpTso = 1UL << 5;
    internal const ulong TxOffloadMultiSegs = 1UL << 15;

    internal const ulong RxIpCksumBad = 1UL << 4;
    internal const ulong RxIpCksumGood = 1UL << 7;
    internal const ulong RxL4CksumBad = 1UL << 3;
    internal const ulong RxL4CksumGood = 1UL << 8;

    internal const ulong RssIpv4 = 1UL << 2;
    internal const ulong RssNonfragIpv4Tcp = 1UL << 4;
    internal const ulong RssNonfragIpv4Udp = 1UL << 5;

    internal const int EALREADY = 114;
    internal const int EINVAL = 22;
    internal const int ENOMEM = 12;
    internal const int EACCES = 13;
    internal const int ENOTSUP = 95;
    internal const int ENODEV = 19;
    internal const int EEXIST = 17;
    internal const int EPROTO = 71;
    internal const int ENOEXEC = 8;
    internal const int EFAULT = 14;
}

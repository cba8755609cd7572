using System.Runtime.InteropServices;
using System.Text;
using Gazelle.Buffers;
using Gazelle.Wire;

namespace Gazelle.Devices.Dpdk;

/// <summary>
/// A DPDK Ethernet port as an <see cref="INic"/>: N RX/TX queue pairs, one mbuf pool per queue,
/// bursts with zero copy. A received frame is a <see cref="PacketBuffer"/> attached to the mbuf the
/// NIC wrote; transmitting a buffer of a <see cref="DpdkPacketPool"/> hands its mbuf to the NIC.
/// </summary>
/// <remarks>
/// <para>Each queue (and its pool and counters) belongs to one thread, the stack that polls it.</para>
/// <para>Multi-segment receive: the port is configured without scatter and with mbufs big enough for
/// a whole frame at the configured MTU, so frames arrive in one segment. A driver that still
/// chains segments gets its frames linearised by the glue (in place, or copied into one fresh
/// mbuf), counted in <see cref="DpdkQueueCounters"/>; frames longer than one mbuf are dropped and
/// counted. The stack therefore only ever sees contiguous frames.</para>
/// <para>Offloads are asked of the device (rte_eth_dev_info), never assumed: <see cref="Offloads"/>
/// lists those both offered and allowed by <see cref="DpdkPortOptions.AllowedOffloads"/>.</para>
/// </remarks>
public sealed unsafe class DpdkPort : INic, IDisposable
{
    private readonly Eal _eal;
    private readonly QueueState[] _queues;
    private readonly int _burst;
    /// <summary><see cref="DpdkPortOptions.ActAsLcore"/>.</summary>
    private readonly int _actAsLcore;
    private bool _closed;

    private sealed class QueueState
    {
        public required DpdkPacketPool Pool;
        public required DpdkQueueCounters Counters;
        public nint* Mbufs;
        public nint* Scratch;
        public DpdkNative.MbufView* Views;
        public DpdkNative.TxView* TxViews;
        public DpdkNative.RxCounters* Rx;
        public required bool[] Copied;
    }

    /// <summary>Opens a port by its DPDK name (<c>net_ring0</c>, <c>net_af_packet0</c>, <c>0000:03:00.0</c>).</summary>
    public static DpdkPort Open(Eal eal, string name, DpdkPortOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(eal);
        ArgumentNullException.ThrowIfNull(name);
        eal.ThrowIfDisposed();
        RequireAnyPort(eal);
        ushort id;
        if (DpdkNative.rte_eth_dev_get_port_by_name(name, &id) != 0)
            throw new DpdkException(DpdkError.NoDevice, $"no DPDK port named '{name}' (ports: {DescribePorts()}){ProbeFailure(eal)}", DpdkNative.ENODEV);
        return new DpdkPort(eal, id, options ?? new DpdkPortOptions());
    }

    /// <summary>Opens a port by id.</summary>
    public static DpdkPort Open(Eal eal, int portId, DpdkPortOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(eal);
        eal.ThrowIfDisposed();
        RequireAnyPort(eal);
        if ((uint)portId > ushort.MaxValue || DpdkNative.gz_dpdk_port_next((ushort)portId) != portId)
            throw new DpdkException(DpdkError.NoDevice, $"no DPDK port with id {portId} (ports: {DescribePorts()})", DpdkNative.ENODEV);
        return new DpdkPort(eal, (ushort)portId, options ?? new DpdkPortOptions());
    }

    /// <summary>Names of the available ports, "id:name" each.</summary>
    public static List<string> ListPorts(Eal eal)
    {
        ArgumentNullException.ThrowIfNull(eal);
        eal.ThrowIfDisposed();
        var list = new List<string>();
        byte* name = stackalloc byte[128];
        for (int p = DpdkNative.gz_dpdk_port_next(0); p >= 0; p = p + 1 > ushort.MaxValue ? -1 : DpdkNative.gz_dpdk_port_next((ushort)(p + 1)))
        {
            name[0] = 0;
            DpdkNative.rte_eth_dev_get_name_by_port((ushort)p, name);
            list.Add($"{p}:{Marshal.PtrToStringUTF8((nint)name)}");
        }
        return list;
    }

    private static void RequireAnyPort(Eal eal)
    {
        if (DpdkNative.rte_eth_dev_count_avail() == 0)
            throw new DpdkException(DpdkError.NoDevice,
                "no DPDK ports: add one with --vdev in dpdk_args (e.g. net_af_packet0,iface=eth1), bind a NIC to vfio-pci " +
                $"(and do not pass --no-pci), or hot-plug one with Eal.ProbeDevice{ProbeFailure(eal)}", DpdkNative.ENODEV);
    }

    /// <summary>"; at start EAL said: ..." quoting the last failure EAL logged while probing, if any.</summary>
    private static string ProbeFailure(Eal eal)
    {
        var lines = eal.InitLog.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (int i = lines.Length - 1; i >= 0; i--)
        {
            if (lines[i].Contains("fail", StringComparison.OrdinalIgnoreCase) || lines[i].Contains("cannot", StringComparison.OrdinalIgnoreCase))
                return "; at start EAL said: " + lines[i];
        }
        return "";
    }

    private static string DescribePorts()
    {
        var sb = new StringBuilder();
        byte* name = stackalloc byte[128];
        for (int p = DpdkNative.gz_dpdk_port_next(0); p >= 0; p = p + 1 > ushort.MaxValue ? -1 : DpdkNative.gz_dpdk_port_next((ushort)(p + 1)))
        {
            name[0] = 0;
            DpdkNative.rte_eth_dev_get_name_by_port((ushort)p, name);
            if (sb.Length > 0) sb.Append(", ");
            sb.Append(p).Append(':').Append(Marshal.PtrToStringUTF8((nint)name));
        }
        return sb.Length == 0 ? "none" : sb.ToString();
    }

    private DpdkPort(Eal eal, ushort portId, DpdkPortOptions o)
    {
        _eal = eal;
        PortId = portId;
        if (o.Queues <= 0 || o.Queues > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(o), "Queues must be positive");
        if (o.BurstSize <= 0 || o.BurstSize > 1024) throw new ArgumentOutOfRangeException(nameof(o), "BurstSize must be 1..1024");
        _burst = o.BurstSize;
        _actAsLcore = o.ActAsLcore;

        DpdkNative.DevInfo di;
        int rc = DpdkNative.gz_dpdk_dev_info(portId, &di);
        if (rc != 0) throw Fail($"rte_eth_dev_info_get(port {portId})", rc);
        Name = Marshal.PtrToStringUTF8((nint)di.DeviceName) ?? "";
        DriverName = Marshal.PtrToStringUTF8((nint)di.DriverName) ?? "";
        MaxRxQueues = di.MaxRxQueues;
        MaxTxQueues = di.MaxTxQueues;
        MinMtu = di.MinMtu;
        MaxMtu = DeviceMaxMtu(di);
        CarriesLongFrames = DriverCarriesLongFrames(DriverName, di.TxOffloadCapa);
        RetaSize = di.RetaSize;
        HashKeySize = di.HashKeySize;
        DeviceOffloads = OffloadsOf(di);
        // net_memif's frames are copied from the peer process's memory by the CPU: no wire, no NIC, nothing on the
        // way that could corrupt them (Linux's loopback and veth skip verification the same way).
        if (DriverName == "net_memif") DeviceOffloads |= NicOffloads.RxChecksumUnnecessary;
        // In its copy mode (not zero-copy=yes), net_memif's tx_burst copies each frame, chains included, into the shared
        // ring and frees its mbufs before it returns: a segment may then point at the stack's own memory.
        if (DriverName == "net_memif" && (di.TxOffloadCapa & DpdkNative.TxOffloadMultiSegs) != 0
            && DpdkNative.gz_dpdk_devargs_contain(Name, "zero-copy=yes") == 0)
            DeviceOffloads |= NicOffloads.TxPayloadByReference;

        if (o.Queues > di.MaxRxQueues || o.Queues > di.MaxTxQueues)
            throw new DpdkException(DpdkError.Unsupported,
                $"port {Name}: {o.Queues} queues asked, the device has at most {di.MaxRxQueues} RX / {di.MaxTxQueues} TX", DpdkNative.ENOTSUP);

        ushort currentMtu;
        int mtu = o.Mtu;
        if (mtu == 0) mtu = DpdkNative.rte_eth_dev_get_mtu(portId, &currentMtu) == 0 ? currentMtu : 1500;
        // Above the device's range, a driver that carries long frames as descriptor chains (net_memif) runs
        // the MTU in the stack alone: ethdev keeps its own (it would refuse the frame length).
        bool longFrames = o.Mtu > MaxMtu && CarriesLongFrames && o.Mtu <= MaxLongFrameMtu;
        if (o.Mtu != 0 && (o.Mtu < di.MinMtu || o.Mtu > MaxMtu) && !longFrames)
            throw new DpdkException(DpdkError.Unsupported,
                $"port {Name}: MTU {o.Mtu} outside the device's range {di.MinMtu}..{MaxMtu}" +
                (CarriesLongFrames ? $" (its driver carries frames up to MTU {MaxLongFrameMtu} as chains)" : ""), DpdkNative.EINVAL);

        // One mbuf holds a whole frame: Ethernet header + two VLAN tags + FCS around the MTU.
        int frameMax = FrameBytes(mtu);
        int dataRoom = eal.MbufHeadroom + Math.Max(2048, Math.Max(frameMax, (int)di.MinRxBufSize));
        if (dataRoom > ushort.MaxValue)
            throw new DpdkException(DpdkError.Unsupported, $"port {Name}: MTU {mtu} needs {dataRoom}-byte mbufs, above 65535", DpdkNative.EINVAL);

        // RSS: used when several queues must share the traffic (or asked for the hash), if the device has it.
        var enabled = DeviceOffloads & o.AllowedOffloads;
        bool wantRss = o.Queues > 1 || o.RssWithSingleQueue;
        ulong rssHf = wantRss ? di.FlowTypeRssOffloads & (DpdkNative.RssIpv4 | DpdkNative.RssNonfragIpv4Tcp | DpdkNative.RssNonfragIpv4Udp) : 0;
        if (rssHf == 0) enabled &= ~NicOffloads.RssHash;
        if (o.RssKey != null && rssHf != 0 && o.RssKey.Length != di.HashKeySize)
            throw new DpdkException(DpdkError.Unsupported,
                $"port {Name}: RSS key of {o.RssKey.Length} bytes, the device's is {di.HashKeySize}", DpdkNative.EINVAL);
        Offloads = enabled;
        RssEnabled = rssHf != 0;

        int mbufs = o.MbufsPerQueue > 0 ? o.MbufsPerQueue
            : o.RxDescriptors + o.TxDescriptors + o.MbufsInFlight + _burst + o.MbufCacheSize * 3 / 2;

        _queues = new QueueState[o.Queues];
        var pools = (nint*)NativeMemory.AllocZeroed((nuint)o.Queues, (nuint)sizeof(nint));
        try
        {
            for (int q = 0; q < o.Queues; q++)
            {
                var pool = DpdkPacketPool.Create(eal, UniquePoolName(portId, q), mbufs, dataRoom, o.MbufCacheSize, di.SocketId, o.TxReadyBuffers);
                pools[q] = pool.Mempool;
                _queues[q] = NewQueue(pool);
            }

            var conf = new DpdkNative.PortConf
            {
                RxOffloads = RxOffloadBits(enabled),
                TxOffloads = TxOffloadBits(enabled),
                RssHf = rssHf,
                Mtu = o.Mtu > 0 && !longFrames ? (uint)o.Mtu : 0,
                NbRxQueues = (ushort)o.Queues,
                NbTxQueues = (ushort)o.Queues,
                NbRxDesc = (ushort)Math.Clamp(o.RxDescriptors, 1, ushort.MaxValue),
                NbTxDesc = (ushort)Math.Clamp(o.TxDescriptors, 1, ushort.MaxValue),
                RxPools = pools,
                Promiscuous = o.Promiscuous ? 1u : 0u,
            };
            const int ErrLen = 256;
            byte* err = stackalloc byte[ErrLen];
            fixed (byte* key = o.RssKey)
            {
                if (o.RssKey != null && rssHf != 0)
                {
                    conf.RssKey = key;
                    conf.RssKeyLen = (uint)o.RssKey.Length;
                }
                rc = DpdkNative.gz_dpdk_port_setup(portId, &conf, err, ErrLen);
            }
            if (rc != 0)
                throw new DpdkException(rc == -DpdkNative.ENOMEM ? DpdkError.NoMemory : DpdkError.Failed,
                    $"port {Name}: {Marshal.PtrToStringUTF8((nint)err)}", -rc);

            rc = DpdkNative.rte_eth_dev_start(portId);
            if (rc != 0) throw Fail($"rte_eth_dev_start(port {Name})", rc);

            if (RssEnabled && o.RssRedirectionTable != null) SetRedirectionTable(o.RssRedirectionTable);

            byte* mac = stackalloc byte[8];
            rc = DpdkNative.rte_eth_macaddr_get(portId, mac);
            if (rc != 0) throw Fail($"rte_eth_macaddr_get(port {Name})", rc);
            MacAddress = MacAddress.Read(new ReadOnlySpan<byte>(mac, 6));
            Mtu = longFrames ? o.Mtu : DpdkNative.rte_eth_dev_get_mtu(portId, &currentMtu) == 0 ? currentMtu : mtu;
            LongFrameMtu = longFrames;
        }
        catch
        {
            DpdkNative.rte_eth_dev_stop(portId);
            ReleaseQueues();
            throw;
        }
        finally
        {
            NativeMemory.Free(pools);
        }
    }

    private QueueState NewQueue(DpdkPacketPool pool)
    {
        var q = new QueueState { Pool = pool, Counters = new DpdkQueueCounters(), Copied = new bool[_burst] };
        q.Mbufs = (nint*)NativeMemory.AllocZeroed((nuint)_burst, (nuint)sizeof(nint));
        q.Scratch = (nint*)NativeMemory.AllocZeroed((nuint)_burst, (nuint)sizeof(nint));
        q.Views = (DpdkNative.MbufView*)NativeMemory.AllocZeroed((nuint)_burst, (nuint)sizeof(DpdkNative.MbufView));
        q.TxViews = (DpdkNative.TxView*)NativeMemory.AllocZeroed((nuint)_burst, (nuint)sizeof(DpdkNative.TxView));
        q.Rx = (DpdkNative.RxCounters*)NativeMemory.AllocZeroed((nuint)sizeof(DpdkNative.RxCounters));
        return q;
    }

    /// <summary>A mempool name not yet taken in this EAL (names are process-wide in DPDK).</summary>
    private static string UniquePoolName(ushort port, int queue)
    {
        for (int gen = 0; ; gen++)
        {
            var name = $"gz{port}q{queue}g{gen}";
            if (DpdkNative.rte_mempool_lookup(name) == 0) return name;
        }
    }

    public ushort PortId { get; }
    /// <summary>DPDK's device name (net_ring0, 0000:03:00.0 ...).</summary>
    public string Name { get; }
    public string DriverName { get; }
    public MacAddress MacAddress { get; }
    /// <summary>L3 MTU currently set on the device.</summary>
    public int Mtu { get; private set; }
    public int MinMtu { get; }
    /// <summary>Largest MTU the device allows (jumbo frames when above 1500): its max_mtu, bounded by its
    /// max_rx_pktlen as rte_eth_dev_configure bounds it.</summary>
    public int MaxMtu { get; }
    /// <summary>
    /// True when the driver carries frames longer than <see cref="MaxMtu"/> allows, as chains of
    /// descriptors, so the stack may run a larger MTU than ethdev's (<see cref="LongFrameMtu"/>). Known of
    /// net_memif only: its dev_info reports a fixed max_rx_pktlen of 1518 and no MTU operation, but its
    /// transmit path offers MULTI_SEGS and splits a frame over as many ring descriptors as it needs
    /// (MEMIF_DESC_FLAG_NEXT), and its receive path chains them back into mbufs with no length limit
    /// (DPDK drivers/net/memif/rte_eth_memif.c). Both ends are our stacks or other memif peers in memory:
    /// no wire, no NIC with a frame limit in between.
    /// </summary>
    public bool CarriesLongFrames { get; }
    /// <summary>True when <see cref="Mtu"/> is above the device's range and carried as chains (see
    /// <see cref="CarriesLongFrames"/>); ethdev's own MTU stays what it was.</summary>
    public bool LongFrameMtu { get; private set; }
    /// <summary>Largest MTU on a driver that <see cref="CarriesLongFrames"/>: a whole frame must fit one mbuf
    /// (16-bit data room, with the headroom) and one memif descriptor buffer (<c>bsize</c>, 16 bits).</summary>
    public const int MaxLongFrameMtu = 65000;

    /// <summary>Bytes of the largest frame at <paramref name="mtu"/>: Ethernet header, two VLAN tags and the
    /// FCS around it; the size of the mbufs' data and of memif's buffers (<c>bsize</c>) for whole frames.</summary>
    public static int FrameBytes(int mtu) => mtu + 14 + 8 + 4;
    public int QueueCount => _queues.Length;
    public int MaxRxQueues { get; }
    public int MaxTxQueues { get; }
    /// <summary>Offloads enabled on the port: offered by the device and allowed by the options.</summary>
    public NicOffloads Offloads { get; }
    /// <summary>Offloads the device offers (rte_eth_dev_info), enabled or not.</summary>
    public NicOffloads DeviceOffloads { get; }
    public bool RssEnabled { get; }
    /// <summary>Entries of the device's RSS redirection table (0: none).</summary>
    public int RetaSize { get; }
    /// <summary>Bytes of the device's RSS hash key (0: none).</summary>
    public int HashKeySize { get; }
    /// <summary>Queue 0's pool (each stack should rent from its own queue's <see cref="Pool"/>).</summary>
    public IPacketPool TxPool => _queues[0].Pool;

    public DpdkPacketPool Pool(int queue) => _queues[queue].Pool;

    /// <summary>The queue's counters (refreshed from the glue's receive counters on each call).</summary>
    public DpdkQueueCounters Counters(int queue)
    {
        var q = _queues[queue];
        if (q.Rx != null)
        {
            q.Counters.RxLinearizedInPlace = (long)q.Rx->LinearizedInPlace;
            q.Counters.RxLinearizedCopied = (long)q.Rx->LinearizedCopied;
            q.Counters.RxMultiSegmentDropped = (long)q.Rx->MultiSegmentDropped;
        }
        return q.Counters;
    }

    public int Receive(int queue, Span<PacketBuffer> frames)
    {
        if (_closed) ThrowClosed();
        if (_actAsLcore >= 0) DpdkNative.gz_dpdk_act_as_lcore((uint)_actAsLcore);
        var q = _queues[queue];
        var pool = q.Pool;
        int total = 0;
        while (total < frames.Length)
        {
            int want = Math.Min(frames.Length - total, _burst);
            if (want > pool.FreeWrappers)
            {
                want = pool.FreeWrappers;
                if (want == 0)
                {
                    q.Counters.RxWrapperShortage++;
                    break;
                }
            }
            int n = DpdkNative.gz_dpdk_rx_burst_views(PortId, (ushort)queue, q.Mbufs, q.Views, (ushort)want, q.Rx);
            for (int i = 0; i < n; i++) frames[total++] = pool.WrapReceived(in q.Views[i], queue);
            if (n < want) break;
        }
        return total;
    }

    public int Transmit(int queue, ReadOnlySpan<PacketBuffer> frames)
    {
        if (_closed) ThrowClosed();
        if (_actAsLcore >= 0) DpdkNative.gz_dpdk_act_as_lcore((uint)_actAsLcore);
        var q = _queues[queue];
        int done = 0;
        while (done < frames.Length)
        {
            int chunk = Math.Min(frames.Length - done, _burst);
            int prepared = 0;
            bool stop = false;
            for (; prepared < chunk; prepared++)
            {
                var b = frames[done + prepared];
                ref var v = ref q.TxViews[prepared];
                if (b.Owner is DpdkPacketPool && b.NativeHandle != 0)
                {
                    v.Mbuf = b.NativeHandle;
                    v.DataOff = (ushort)b.Headroom;
                    v.DataLen = (ushort)b.Length;
                    v.Ext1 = b.ExternalData1;
                    v.Ext1Len = (ushort)b.ExternalLength1;
                    v.Ext2 = b.ExternalData2;
                    v.Ext2Len = (ushort)b.ExternalLength2;
                    q.Copied[prepared] = false;
                    continue;
                }
                // A buffer from another pool (in-memory tests, a software-forwarded frame): one copy.
                if (b.Length + b.ExternalLength > q.Pool.DataRoom - q.Pool.Headroom)
                {
                    q.Counters.TxOversize++;
                    stop = true;
                    break;
                }
                DpdkNative.MbufView mv;
                var m = DpdkNative.gz_dpdk_pktmbuf_alloc_view(q.Pool.Mempool, &mv);
                if (m == 0)
                {
                    q.Counters.TxNoMbufForCopy++;
                    stop = true;
                    break;
                }
                var into = new Span<byte>(mv.BufAddr + mv.DataOff, b.Length + b.ExternalLength);
                b.Data.CopyTo(into);
                new ReadOnlySpan<byte>(b.ExternalData1, b.ExternalLength1).CopyTo(into[b.Length..]);
                new ReadOnlySpan<byte>(b.ExternalData2, b.ExternalLength2).CopyTo(into[(b.Length + b.ExternalLength1)..]);
                v.Mbuf = m;
                v.DataOff = mv.DataOff;
                v.DataLen = (ushort)into.Length;
                v.Ext1Len = v.Ext2Len = 0;
                q.Copied[prepared] = true;
            }
            if (prepared == 0) break;
            ulong copiedSpans = 0;
            int sent = DpdkNative.gz_dpdk_tx_burst_views(PortId, (ushort)queue, q.TxViews, q.Scratch, (ushort)prepared, &copiedSpans);
            q.Counters.TxReferencedPayloadCopied += (long)copiedSpans;
            for (int i = 0; i < sent; i++)
            {
                var b = frames[done + i];
                if (q.Copied[i])
                {
                    q.Counters.TxCopiedForeign++;
                    b.Release();
                }
                else
                {
                    ((DpdkPacketPool)b.Owner).Detach(b);
                }
            }
            for (int i = sent; i < prepared; i++)
            {
                if (q.Copied[i]) DpdkNative.gz_dpdk_pktmbuf_free(q.TxViews[i].Mbuf);
            }
            q.Counters.TxRingFull += prepared - sent;
            done += sent;
            if (sent < prepared || stop) break;
        }
        return done;
    }

    /// <summary>Link state (rte_eth_link_get_nowait, or the waiting variant: up to 9 s on some NICs).</summary>
    public DpdkLinkStatus GetLink(bool wait = false)
    {
        if (_closed) ThrowClosed();
        DpdkNative.LinkInfo l;
        int rc = DpdkNative.gz_dpdk_link_get(PortId, &l, wait ? 1 : 0);
        if (rc != 0) throw Fail($"rte_eth_link_get(port {Name})", rc);
        return new DpdkLinkStatus(l.Up != 0, l.SpeedMbps, l.FullDuplex != 0, l.Autoneg != 0);
    }

    public DpdkPortStats GetStats()
    {
        if (_closed) ThrowClosed();
        DpdkNative.PortStats s;
        int rc = DpdkNative.gz_dpdk_stats_get(PortId, &s);
        if (rc != 0) throw Fail($"rte_eth_stats_get(port {Name})", rc);
        return new DpdkPortStats(s.IPackets, s.OPackets, s.IBytes, s.OBytes, s.IMissed, s.IErrors, s.OErrors, s.RxNoMbuf);
    }

    public void ResetStats()
    {
        if (_closed) ThrowClosed();
        DpdkNative.rte_eth_stats_reset(PortId);
    }

    /// <summary>Sets the L3 MTU (jumbo only if the device allows it and the pools' mbufs hold the frame).</summary>
    public void SetMtu(int mtu)
    {
        if (_closed) ThrowClosed();
        if (mtu < MinMtu || mtu > MaxMtu)
            throw new DpdkException(DpdkError.Unsupported, $"port {Name}: MTU {mtu} outside the device's range {MinMtu}..{MaxMtu}", DpdkNative.EINVAL);
        var pool = _queues[0].Pool;
        if (mtu + 14 + 8 + 4 > pool.DataRoom - pool.Headroom)
            throw new DpdkException(DpdkError.Unsupported,
                $"port {Name}: MTU {mtu} does not fit the {pool.DataRoom}-byte mbufs; reopen the port with DpdkPortOptions.Mtu", DpdkNative.EINVAL);
        int rc = DpdkNative.rte_eth_dev_set_mtu(PortId, (ushort)mtu);
        if (rc != 0) throw Fail($"rte_eth_dev_set_mtu(port {Name}, {mtu})", rc);
        ushort now;
        Mtu = DpdkNative.rte_eth_dev_get_mtu(PortId, &now) == 0 ? now : mtu;
    }

    /// <summary>Reads the RSS redirection table (queue per entry).</summary>
    public ushort[] GetRedirectionTable()
    {
        if (_closed) ThrowClosed();
        RequireRss(needReta: true);
        var table = new ushort[RetaSize];
        fixed (ushort* t = table)
        {
            int rc = DpdkNative.gz_dpdk_reta_query(PortId, t, (ushort)RetaSize);
            if (rc != 0) throw Fail($"rte_eth_dev_rss_reta_query(port {Name})", rc);
        }
        return table;
    }

    /// <summary>Writes the RSS redirection table: <paramref name="queues"/> has one queue id per entry.</summary>
    public void SetRedirectionTable(ReadOnlySpan<ushort> queues)
    {
        if (_closed) ThrowClosed();
        RequireRss(needReta: true);
        if (queues.Length != RetaSize)
            throw new DpdkException(DpdkError.Unsupported, $"port {Name}: RETA of {queues.Length} entries, the device's has {RetaSize}", DpdkNative.EINVAL);
        foreach (var q in queues)
        {
            if (q >= _queues.Length) throw new ArgumentOutOfRangeException(nameof(queues), $"queue {q} >= {_queues.Length}");
        }
        fixed (ushort* t = queues)
        {
            int rc = DpdkNative.gz_dpdk_reta_update(PortId, t, (ushort)RetaSize);
            if (rc != 0) throw Fail($"rte_eth_dev_rss_reta_update(port {Name})", rc);
        }
    }

    /// <summary>The active RSS key.</summary>
    public byte[] GetRssKey()
    {
        if (_closed) ThrowClosed();
        RequireRss(needReta: false);
        var key = new byte[Math.Max(HashKeySize, 40)];
        ulong hf;
        int n;
        fixed (byte* k = key) n = DpdkNative.gz_dpdk_rss_hash_conf_get(PortId, k, (uint)key.Length, &hf);
        if (n < 0) throw Fail($"rte_eth_dev_rss_hash_conf_get(port {Name})", n);
        return key.AsSpan(0, Math.Min(n == 0 ? HashKeySize : n, key.Length)).ToArray();
    }

    /// <summary>Replaces the RSS key (length = <see cref="HashKeySize"/>), keeping IPv4/TCP/UDP hashing.</summary>
    public void SetRssKey(ReadOnlySpan<byte> key)
    {
        if (_closed) ThrowClosed();
        RequireRss(needReta: false);
        if (key.Length != HashKeySize)
            throw new DpdkException(DpdkError.Unsupported, $"port {Name}: RSS key of {key.Length} bytes, the device's is {HashKeySize}", DpdkNative.EINVAL);
        fixed (byte* k = key)
        {
            int rc = DpdkNative.gz_dpdk_rss_hash_update(PortId, k, (uint)key.Length,
                DpdkNative.RssIpv4 | DpdkNative.RssNonfragIpv4Tcp | DpdkNative.RssNonfragIpv4Udp);
            if (rc != 0) throw Fail($"rte_eth_dev_rss_hash_update(port {Name})", rc);
        }
    }

    /// <summary>Asks the device to compute checksums / segment for a frame about to be sent
    /// (RTE_MBUF_F_TX_* flags and header lengths). Only meaningful when <see cref="Offloads"/> has the
    /// matching flag. As DPDK requires of real NICs, the caller puts the pseudo-header checksum in the
    /// TCP/UDP checksum field and zeroes the IPv4 header checksum.</summary>
    public static void RequestTxOffload(PacketBuffer frame, ulong mbufTxFlags, int l2Len, int l3Len, int l4Len, int tsoSegmentSize)
    {
        ArgumentNullException.ThrowIfNull(frame);
        if (frame.NativeHandle == 0 || frame.Owner is not DpdkPacketPool) ThrowHelpers.InvalidOperation("not an mbuf-backed buffer");
        DpdkNative.gz_dpdk_mbuf_set_tx_offload(frame.NativeHandle, mbufTxFlags, (ushort)l2Len, (ushort)l3Len, (ushort)l4Len, (ushort)tsoSegmentSize);
    }

    /// <summary>
    /// The device's verdict on a received frame's IPv4 and TCP/UDP checksums (RTE_MBUF_F_RX_*_CKSUM_*).
    /// <see cref="PacketBuffer"/> has no field for it, so this reads the mbuf (one native call).
    /// </summary>
    public static DpdkRxChecksum RxChecksum(PacketBuffer frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        if (frame.NativeHandle == 0 || frame.Owner is not DpdkPacketPool) return DpdkRxChecksum.Unknown;
        ulong f = DpdkNative.gz_dpdk_mbuf_ol_flags(frame.NativeHandle);
        var r = DpdkRxChecksum.Unknown;
        // Each status is two bits: GOOD alone, BAD alone; both set means "none" (not checked, data valid).
        ulong ip = f & (DpdkNative.RxIpCksumBad | DpdkNative.RxIpCksumGood);
        if (ip == DpdkNative.RxIpCksumGood) r |= DpdkRxChecksum.IpGood;
        else if (ip == DpdkNative.RxIpCksumBad) r |= DpdkRxChecksum.IpBad;
        ulong l4 = f & (DpdkNative.RxL4CksumBad | DpdkNative.RxL4CksumGood);
        if (l4 == DpdkNative.RxL4CksumGood) r |= DpdkRxChecksum.L4Good;
        else if (l4 == DpdkNative.RxL4CksumBad) r |= DpdkRxChecksum.L4Bad;
        return r;
    }

    private void RequireRss(bool needReta)
    {
        if (!RssEnabled || (needReta && RetaSize == 0))
            throw new DpdkException(DpdkError.Unsupported,
                $"port {Name}: RSS {(needReta ? "redirection table " : "")}not available (device RETA size {RetaSize}, RSS {(RssEnabled ? "on" : "off")})", DpdkNative.ENOTSUP);
    }

    /// <summary>The device's largest MTU: max_mtu, and no more than max_rx_pktlen less the overhead ethdev
    /// counts (its eth_dev_validate_mtu refuses a larger one at configure).</summary>
    private static int DeviceMaxMtu(in DpdkNative.DevInfo di)
    {
        int max = di.MaxMtu;
        if (di.MaxRxPktLen == 0) return max;
        // ethdev's overhead: max_rx_pktlen - max_mtu when the driver set both, else header + CRC (18).
        long overhead = di.MaxMtu != ushort.MaxValue && di.MaxRxPktLen > di.MaxMtu ? di.MaxRxPktLen - di.MaxMtu : 18;
        long byLength = (long)di.MaxRxPktLen - overhead;
        return byLength > 0 && byLength < max ? (int)byLength : max;
    }

    /// <summary>See <see cref="CarriesLongFrames"/>: net_memif, when it offers multi-segment transmit.</summary>
    private static bool DriverCarriesLongFrames(string driver, ulong txCapa) =>
        driver == "net_memif" && (txCapa & DpdkNative.TxOffloadMultiSegs) != 0;

    private static NicOffloads OffloadsOf(in DpdkNative.DevInfo di)
    {
        var f = NicOffloads.None;
        if ((di.RxOffloadCapa & DpdkNative.RxOffloadIpv4Cksum) != 0) f |= NicOffloads.Ipv4ChecksumRx;
        if ((di.RxOffloadCapa & (DpdkNative.RxOffloadTcpCksum | DpdkNative.RxOffloadUdpCksum)) == (DpdkNative.RxOffloadTcpCksum | DpdkNative.RxOffloadUdpCksum))
            f |= NicOffloads.TcpUdpChecksumRx;
        if ((di.TxOffloadCapa & DpdkNative.TxOffloadIpv4Cksum) != 0) f |= NicOffloads.Ipv4ChecksumTx;
        if ((di.TxOffloadCapa & (DpdkNative.TxOffloadTcpCksum | DpdkNative.TxOffloadUdpCksum)) == (DpdkNative.TxOffloadTcpCksum | DpdkNative.TxOffloadUdpCksum))
            f |= NicOffloads.TcpUdpChecksumTx;
        if ((di.TxOffloadCapa & DpdkNative.TxOffloadTcpTso) != 0) f |= NicOffloads.TcpSegmentation;
        if ((di.RxOffloadCapa & DpdkNative.RxOffloadRssHash) != 0 && di.FlowTypeRssOffloads != 0) f |= NicOffloads.RssHash;
        return f;
    }

    private static ulong RxOffloadBits(NicOffloads f)
    {
        ulong bits = 0;
        if ((f & NicOffloads.Ipv4ChecksumRx) != 0) bits |= DpdkNative.RxOffloadIpv4Cksum;
        if ((f & NicOffloads.TcpUdpChecksumRx) != 0) bits |= DpdkNative.RxOffloadTcpCksum | DpdkNative.RxOffloadUdpCksum;
        if ((f & NicOffloads.RssHash) != 0) bits |= DpdkNative.RxOffloadRssHash;
        return bits;
    }

    private static ulong TxOffloadBits(NicOffloads f)
    {
        ulong bits = 0;
        if ((f & NicOffloads.Ipv4ChecksumTx) != 0) bits |= DpdkNative.TxOffloadIpv4Cksum;
        if ((f & NicOffloads.TcpUdpChecksumTx) != 0) bits |= DpdkNative.TxOffloadTcpCksum | DpdkNative.TxOffloadUdpCksum;
        if ((f & NicOffloads.TcpSegmentation) != 0) bits |= DpdkNative.TxOffloadTcpTso;
        if ((f & NicOffloads.TxPayloadByReference) != 0) bits |= DpdkNative.TxOffloadMultiSegs; // header mbuf + payload segments
        return bits;
    }

    private static DpdkException Fail(string what, int rc)
    {
        int e = rc < 0 ? -rc : rc;
        var kind = e switch
        {
            DpdkNative.ENOMEM => DpdkError.NoMemory,
            DpdkNative.ENODEV => DpdkError.NoDevice,
            DpdkNative.ENOTSUP => DpdkError.Unsupported,
            _ => DpdkError.Failed,
        };
        return new DpdkException(kind, $"{what} failed: {DpdkNative.StrError(e)} (errno {e})", e);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void ThrowClosed() => ThrowHelpers.InvalidOperation($"DPDK port {Name} is closed");

    /// <summary>True when every queue's mempool was freed on close (false: buffers were still out, the mempools were left allocated).</summary>
    public bool ClosedCleanly { get; private set; }

    /// <summary>Stops and closes the port (DPDK releases it: a closed port cannot be reopened without a new probe),
    /// then frees the queue pools whose buffers are all back.</summary>
    public void Dispose()
    {
        if (_closed) return;
        _closed = true;
        if (_eal.IsDisposed) return; // EAL's memory is gone: nothing left to stop or free
        DpdkNative.rte_eth_dev_stop(PortId);
        DpdkNative.rte_eth_dev_close(PortId);
        ReleaseQueues();
    }

    private void ReleaseQueues()
    {
        bool clean = true;
        foreach (var q in _queues)
        {
            if (q == null) continue;
            clean &= q.Pool.TryFree();
            NativeMemory.Free(q.Mbufs);
            NativeMemory.Free(q.Scratch);
            NativeMemory.Free(q.Views);
            NativeMemory.Free(q.TxViews);
            NativeMemory.Free(q.Rx);
            q.Mbufs = null;
            q.Scratch = null;
            q.Views = null;
            q.TxViews = null;
            q.Rx = null;
        }
        ClosedCleanly = clean;
    }
}

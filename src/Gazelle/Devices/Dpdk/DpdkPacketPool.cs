using Gazelle.Buffers;

namespace Gazelle.Devices.Dpdk;

/// <summary>
/// A DPDK mempool of mbufs seen as an <see cref="IPacketPool"/>. Every <see cref="PacketBuffer"/>
/// is a wrapper allocated once at creation (one per mbuf of the pool) and attached to an mbuf while
/// rented: <see cref="PacketBuffer.NativeHandle"/> is the <c>rte_mbuf*</c> and the buffer's memory
/// is the mbuf's own data room, so nothing is copied between the NIC and the stack.
/// </summary>
/// <remarks>
/// Single owner: like every per-stack object, a pool (and its wrappers) is used by one thread, the
/// stack that owns the queue. The mbufs themselves may travel (DPDK frees them to their own
/// mempool, which is thread-safe); the wrapper bookkeeping does not.
/// </remarks>
public sealed unsafe class DpdkPacketPool : IPacketPool, IDisposable
{
    private readonly PacketBuffer[] _free;
    private int _freeCount;
    private nint _mempool;

    private DpdkPacketPool(nint mempool, string name, int count, int headroom, int dataRoom)
    {
        _mempool = mempool;
        Name = name;
        Capacity = count;
        Headroom = headroom;
        DataRoom = dataRoom;
        _free = new PacketBuffer[count];
        for (int i = 0; i < count; i++) _free[i] = new PacketBuffer(this);
        _freeCount = count;
    }

    /// <summary>
    /// Creates an mbuf pool (rte_pktmbuf_pool_create) of <paramref name="count"/> mbufs whose data
    /// room is <paramref name="dataRoom"/> bytes including the headroom. Throws
    /// <see cref="DpdkException"/> (<see cref="DpdkError.NoMemory"/> when EAL's memory is too small).
    /// </summary>
    public static DpdkPacketPool Create(Eal eal, string name, int count, int dataRoom, int cacheSize = 256, int socketId = -1)
    {
        ArgumentNullException.ThrowIfNull(eal);
        eal.ThrowIfDisposed();
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count));
        if (dataRoom <= eal.MbufHeadroom || dataRoom > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(dataRoom));
        // DPDK: the per-lcore cache may hold at most count / 1.5 objects (RTE_MEMPOOL_CACHE_MAX_SIZE 512).
        cacheSize = Math.Clamp(Math.Min(cacheSize, count * 2 / 3), 0, 512);
        var mp = DpdkNative.rte_pktmbuf_pool_create(name, (uint)count, (uint)cacheSize, 0, (ushort)dataRoom, socketId);
        if (mp == 0)
        {
            int err = DpdkNative.gz_dpdk_errno();
            var kind = err switch
            {
                DpdkNative.ENOMEM => DpdkError.NoMemory,
                DpdkNative.EEXIST => DpdkError.Failed,
                _ => DpdkError.Failed,
            };
            var hint = kind == DpdkError.NoMemory
                ? " — give EAL more memory (-m / --socket-mem, hugepages) or ask for fewer mbufs"
                : "";
            throw new DpdkException(kind,
                $"cannot create mbuf pool '{name}' ({count} mbufs x {dataRoom} B): {DpdkNative.StrError(err)} (rte_errno {err}){hint}", err);
        }
        return new DpdkPacketPool(mp, name, count, eal.MbufHeadroom, dataRoom);
    }

    public string Name { get; }
    /// <summary>The <c>rte_mempool*</c>.</summary>
    public nint Mempool => _mempool;
    /// <summary>Bytes of each mbuf's data room, headroom included.</summary>
    public int DataRoom { get; }
    public int Headroom { get; }
    /// <summary>Wrappers (= mbufs of the pool).</summary>
    public int Capacity { get; }
    /// <summary>Wrappers currently rented or holding a received frame.</summary>
    public int InUse => Capacity - _freeCount;
    /// <summary>Wrappers free for rent or for received frames.</summary>
    public int FreeWrappers => _freeCount;
    /// <summary>Rent attempts that found no mbuf (mempool empty) or no wrapper.</summary>
    public long Exhausted { get; private set; }
    /// <summary>Mbufs of the mempool not allocated (includes per-lcore caches).</summary>
    public int MempoolAvailable => (int)DpdkNative.gz_dpdk_mempool_avail_count(_mempool);
    /// <summary>Mbufs of the mempool allocated anywhere (by us, NIC rings, other threads).</summary>
    public int MempoolInUse => (int)DpdkNative.gz_dpdk_mempool_in_use_count(_mempool);

    public PacketBuffer? Rent()
    {
        if (_freeCount == 0)
        {
            Exhausted++;
            return null;
        }
        DpdkNative.MbufView v;
        var m = DpdkNative.gz_dpdk_pktmbuf_alloc_view(_mempool, &v);
        if (m == 0)
        {
            Exhausted++;
            return null;
        }
        var b = _free[--_freeCount];
        b.Attach(v.BufAddr, v.BufLen, m, v.DataOff, 0);
        b.InUse = true;
        return b;
    }

    /// <summary>
    /// Rents <paramref name="buffers"/>.Length buffers in one native call (up to <see cref="MaxBulk"/>):
    /// all of them, or none when the pool cannot supply them all. Returns the count rented.
    /// </summary>
    public int RentBulk(Span<PacketBuffer> buffers)
    {
        int n = buffers.Length;
        if (n == 0) return 0;
        if (n > MaxBulk) ThrowHelpers.ArgumentOutOfRange(nameof(buffers));
        if (n > _freeCount)
        {
            Exhausted++;
            return 0;
        }
        DpdkNative.MbufView* views = stackalloc DpdkNative.MbufView[n];
        if (DpdkNative.gz_dpdk_pktmbuf_alloc_bulk_views(_mempool, views, (uint)n) != 0)
        {
            Exhausted++;
            return 0;
        }
        for (int i = 0; i < n; i++)
        {
            var b = _free[--_freeCount];
            b.Attach(views[i].BufAddr, views[i].BufLen, views[i].Mbuf, views[i].DataOff, 0);
            b.InUse = true;
            buffers[i] = b;
        }
        return n;
    }

    /// <summary>Largest <see cref="RentBulk"/> / <see cref="ReturnBulk"/> (bounded stack use).</summary>
    public const int MaxBulk = 256;

    /// <summary>Frees the buffers' mbufs in one native call and takes the wrappers back.</summary>
    public void ReturnBulk(ReadOnlySpan<PacketBuffer> buffers)
    {
        int n = buffers.Length;
        if (n == 0) return;
        if (n > MaxBulk) ThrowHelpers.ArgumentOutOfRange(nameof(buffers));
        nint* mbufs = stackalloc nint[n];
        for (int i = 0; i < n; i++)
        {
            var b = buffers[i];
            if (b.Owner != this || !b.InUse || b.NativeHandle == 0)
            {
                DpdkNative.gz_dpdk_pktmbuf_free_bulk(mbufs, (uint)i); // those already taken back
                ThrowHelpers.InvalidOperation("packet buffer returned twice or to the wrong pool");
            }
            mbufs[i] = b.NativeHandle;
            Recycle(b);
        }
        DpdkNative.gz_dpdk_pktmbuf_free_bulk(mbufs, (uint)n);
    }

    /// <summary>Frees the buffer's mbuf and takes the wrapper back.</summary>
    public void Return(PacketBuffer buffer)
    {
        Validate(buffer);
        DpdkNative.gz_dpdk_pktmbuf_free(buffer.NativeHandle);
        Recycle(buffer);
    }

    /// <summary>Wraps a received mbuf (the caller checked <see cref="FreeWrappers"/>).</summary>
    internal PacketBuffer WrapReceived(in DpdkNative.MbufView v, int queue)
    {
        var b = _free[--_freeCount];
        b.Attach(v.BufAddr, v.BufLen, v.Mbuf, v.DataOff, v.DataLen);
        b.Queue = queue;
        b.RssHash = v.RssHash;
        b.InUse = true;
        return b;
    }

    /// <summary>Takes the wrapper back without freeing its mbuf (the device now owns it).</summary>
    internal void Detach(PacketBuffer buffer)
    {
        Validate(buffer);
        Recycle(buffer);
    }

    private void Validate(PacketBuffer buffer)
    {
        if (buffer.Owner != this || !buffer.InUse || buffer.NativeHandle == 0)
            ThrowHelpers.InvalidOperation("packet buffer returned twice or to the wrong pool");
    }

    private void Recycle(PacketBuffer buffer)
    {
        buffer.Attach(null, 0, 0, 0, 0);
        buffer.InUse = false;
        _free[_freeCount++] = buffer;
    }

    /// <summary>
    /// Frees the mempool when every wrapper is back (a port using it must be closed first). With
    /// buffers still out the mempool is left allocated rather than freed under them; returns false.
    /// </summary>
    public bool TryFree()
    {
        if (_mempool == 0) return true;
        if (InUse != 0) return false;
        DpdkNative.rte_mempool_free(_mempool);
        _mempool = 0;
        return true;
    }

    public void Dispose() => TryFree();
}

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
    /// <summary>Wrappers attached to mbufs as freshly allocated, ready for <see cref="Rent"/> (see <see cref="ReadyCapacity"/>).</summary>
    private readonly PacketBuffer[] _ready;
    private int _readyCount;

    private DpdkPacketPool(nint mempool, string name, int count, int headroom, int dataRoom, int readyCapacity)
    {
        _mempool = mempool;
        Name = name;
        Capacity = count;
        Headroom = headroom;
        DataRoom = dataRoom;
        _free = new PacketBuffer[count];
        for (int i = 0; i < count; i++) _free[i] = new PacketBuffer(this);
        _freeCount = count;
        _ready = new PacketBuffer[Math.Clamp(readyCapacity, 0, Math.Min(MaxBulk, count / 4))];
    }

    /// <summary>
    /// Creates an mbuf pool (rte_pktmbuf_pool_create) of <paramref name="count"/> mbufs whose data
    /// room is <paramref name="dataRoom"/> bytes including the headroom. Throws
    /// <see cref="DpdkException"/> (<see cref="DpdkError.NoMemory"/> when EAL's memory is too small).
    /// </summary>
    /// <param name="readyCapacity">Buffers the pool may keep allocated and ready for <see cref="Rent"/>
    /// (<see cref="ReadyCapacity"/>; 0: none, every rent allocates one mbuf).</param>
    public static DpdkPacketPool Create(Eal eal, string name, int count, int dataRoom, int cacheSize = 256, int socketId = -1,
        int readyCapacity = 0)
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
        return new DpdkPacketPool(mp, name, count, eal.MbufHeadroom, dataRoom, readyCapacity);
    }

    public string Name { get; }
    /// <summary>The <c>rte_mempool*</c>.</summary>
    public nint Mempool => _mempool;
    /// <summary>Bytes of each mbuf's data room, headroom included.</summary>
    public int DataRoom { get; }
    public int Headroom { get; }
    /// <summary>Wrappers (= mbufs of the pool).</summary>
    public int Capacity { get; }
    /// <summary>Wrappers currently rented or holding a received frame (not those kept ready).</summary>
    public int InUse => Capacity - _freeCount - _readyCount;
    /// <summary>
    /// Buffers the pool keeps allocated for the next rents, at most (0: off). A rent that finds none ready
    /// allocates half as many in one native call (one mbuf per call was 6% of a 64-byte UDP send), and buffers that
    /// went to a device which refused them (<see cref="ReturnUnsent"/>: its ring full, most frames of a sender
    /// faster than its peer) are kept as they are instead of being freed and allocated again. Their mbufs count in
    /// <see cref="MempoolInUse"/>; <see cref="TrimReady"/> frees them.
    /// </summary>
    public int ReadyCapacity => _ready.Length;
    /// <summary>Buffers kept ready now.</summary>
    public int ReadyBuffers => _readyCount;
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
        int k = _readyCount;
        if (k > 0)
        {
            var r = _ready[k - 1]; // the slot keeps its reference: wrappers live as long as the pool
            _readyCount = k - 1;
            r.Reset(Headroom); // as rte_pktmbuf_reset leaves it: the data at the default headroom, empty
            r.InUse = true;
            return r;
        }
        return RentNew();
    }

    /// <summary>A rent with no buffer ready: a refill of the ready stack, else one mbuf.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private PacketBuffer? RentNew()
    {
        if (_ready.Length > 0 && Refill()) return Rent();
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

    /// <summary>Allocates up to half of <see cref="ReadyCapacity"/> buffers into the ready stack in one native call;
    /// false when it got none (then a single allocation may still succeed).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private bool Refill()
    {
        int n = Math.Min(Math.Max(1, _ready.Length / 2), _freeCount);
        if (n == 0) return false;
        DpdkNative.MbufView* views = stackalloc DpdkNative.MbufView[n];
        if (DpdkNative.gz_dpdk_pktmbuf_alloc_bulk_views(_mempool, views, (uint)n) != 0) return false; // nearly empty
        for (int i = 0; i < n; i++)
        {
            var b = _free[--_freeCount];
            b.Attach(views[i].BufAddr, views[i].BufLen, views[i].Mbuf, views[i].DataOff, 0);
            _ready[_readyCount++] = b;
        }
        return true;
    }

    /// <summary>
    /// Takes back buffers this pool rented for transmit that no device took (a device's ring was full): their mbufs
    /// are as they were rented, so up to <see cref="ReadyCapacity"/> of them stay allocated for the next rents; the
    /// rest are freed in one native call.
    /// </summary>
    public void ReturnUnsent(ReadOnlySpan<PacketBuffer> buffers)
    {
        int keep = Math.Min(buffers.Length, _ready.Length - _readyCount);
        for (int i = 0; i < keep; i++)
        {
            var b = buffers[i];
            Validate(b);
            b.InUse = false;
            _ready[_readyCount++] = b;
        }
        if (keep < buffers.Length) ReturnBulk(buffers[keep..]);
    }

    /// <summary>Frees the mbufs kept ready (<see cref="ReadyCapacity"/>) and takes their wrappers back.</summary>
    public void TrimReady()
    {
        int n = _readyCount;
        if (n == 0) return;
        nint* mbufs = stackalloc nint[n];
        for (int i = 0; i < n; i++)
        {
            var b = _ready[i];
            _ready[i] = null!;
            mbufs[i] = b.NativeHandle;
            Recycle(b);
        }
        _readyCount = 0;
        DpdkNative.gz_dpdk_pktmbuf_free_bulk(mbufs, (uint)n);
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
        TrimReady();
        DpdkNative.rte_mempool_free(_mempool);
        _mempool = 0;
        return true;
    }

    public void Dispose() => TryFree();
}

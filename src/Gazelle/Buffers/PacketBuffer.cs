namespace Gazelle.Buffers;

/// <summary>
/// A packet buffer over pinned or native memory, with headroom in front of the data so lower layers
/// prepend their headers in place (as lwIP's pbufs and DPDK's mbufs do). Buffers are pooled objects:
/// the data path rents and releases them and never allocates.
/// When a device's buffers are native (a DPDK <c>rte_mbuf</c>), <see cref="NativeHandle"/> holds the
/// device's own handle so the buffer goes back to the NIC without a copy.
/// </summary>
public sealed unsafe class PacketBuffer
{
    private byte* _memory;
    private int _capacity;
    private int _offset;
    private int _length;

    public PacketBuffer(IPacketPool owner) => Owner = owner;

    /// <summary>The pool this buffer returns to on <see cref="Release"/>.</summary>
    public IPacketPool Owner { get; }
    /// <summary>The device's handle for the memory (an <c>rte_mbuf*</c>), or 0.</summary>
    public nint NativeHandle { get; private set; }
    /// <summary>Pool bookkeeping: true while rented (guards against double release).</summary>
    public bool InUse { get; internal set; }
    /// <summary>Receive queue the frame arrived on (set by the device).</summary>
    public int Queue { get; set; }
    /// <summary>RSS hash of the frame when the device computed one, else 0.</summary>
    public uint RssHash { get; set; }

    /// <summary>Payload that follows <see cref="Data"/> on the wire without being in this buffer: up to two spans of
    /// memory its producer keeps unchanged until the device's transmit returns (TCP's send ring), set only for a
    /// device that copies frames out while it transmits (<c>NicOffloads.TxPayloadByReference</c>); 0 otherwise.</summary>
    public byte* ExternalData1 { get; private set; }
    public byte* ExternalData2 { get; private set; }
    public int ExternalLength1 { get; private set; }
    public int ExternalLength2 { get; private set; }
    /// <summary>Bytes of the frame that follow <see cref="Data"/> by reference.</summary>
    public int ExternalLength => ExternalLength1 + ExternalLength2;

    /// <summary>Sets the frame's payload by reference (see <see cref="ExternalData1"/>).</summary>
    public void SetExternal(byte* data1, int length1, byte* data2, int length2)
    {
        ExternalData1 = data1;
        ExternalLength1 = length1;
        ExternalData2 = data2;
        ExternalLength2 = length2;
    }

    public int Capacity => _capacity;
    public int Headroom => _offset;
    public int Tailroom => _capacity - _offset - _length;
    public int Length => _length;
    public byte* DataPointer => _memory + _offset;
    public Span<byte> Data => new(_memory + _offset, _length);

    /// <summary>Points the buffer at memory (called by pools when a buffer is rented).</summary>
    public void Attach(byte* memory, int capacity, nint nativeHandle, int offset, int length)
    {
        _memory = memory;
        _capacity = capacity;
        NativeHandle = nativeHandle;
        _offset = offset;
        _length = length;
        Queue = 0;
        RssHash = 0;
        if (ExternalLength1 != 0) SetExternal(null, 0, null, 0);
    }

    /// <summary>Empties the buffer, keeping <paramref name="headroom"/> bytes in front for headers.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Reset(int headroom)
    {
        if ((uint)headroom > (uint)_capacity) ThrowHelpers.ArgumentOutOfRange(nameof(headroom));
        _offset = headroom;
        _length = 0;
        if (ExternalLength1 != 0) SetExternal(null, 0, null, 0);
    }

    /// <summary>Grows the data at the front (a lower layer writing its header); returns the new bytes.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public Span<byte> Prepend(int count)
    {
        if ((uint)count > (uint)_offset) ThrowHelpers.ArgumentOutOfRange(nameof(count));
        _offset -= count;
        _length += count;
        return new Span<byte>(_memory + _offset, count);
    }

    /// <summary>Grows the data at the end; returns the new bytes.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public Span<byte> Append(int count)
    {
        if ((uint)count > (uint)Tailroom) ThrowHelpers.ArgumentOutOfRange(nameof(count));
        var s = new Span<byte>(_memory + _offset + _length, count);
        _length += count;
        return s;
    }

    /// <summary>Drops bytes from the front (an upper layer consuming a lower header).</summary>
    public void TrimFront(int count)
    {
        if ((uint)count > (uint)_length) ThrowHelpers.ArgumentOutOfRange(nameof(count));
        _offset += count;
        _length -= count;
    }

    /// <summary>Cuts the data to <paramref name="length"/> bytes (e.g. Ethernet padding past the IP length).</summary>
    public void Truncate(int length)
    {
        if ((uint)length > (uint)_length) ThrowHelpers.ArgumentOutOfRange(nameof(length));
        _length = length;
    }

    /// <summary>Returns the buffer to its pool.</summary>
    public void Release() => Owner.Return(this);
}

/// <summary>A pool of packet buffers (in-memory, or a DPDK mempool).</summary>
public interface IPacketPool
{
    /// <summary>Default headroom a rented buffer keeps in front of its (empty) data.</summary>
    int Headroom { get; }
    /// <summary>Rents an empty buffer with <see cref="Headroom"/> in front, or null when the pool is exhausted.</summary>
    PacketBuffer? Rent();
    void Return(PacketBuffer buffer);
    /// <summary>Returns several buffers of this pool (a device pool frees their memory in one native call).</summary>
    void ReturnBulk(ReadOnlySpan<PacketBuffer> buffers)
    {
        foreach (var b in buffers) Return(b);
    }
    /// <summary>Takes back buffers rented for transmit that no device took (its ring full), their native state as
    /// rented: a device pool may keep them allocated for the next rents instead of freeing them.</summary>
    void ReturnUnsent(ReadOnlySpan<PacketBuffer> buffers) => ReturnBulk(buffers);
    /// <summary>Buffers currently rented (for leak checks: back to baseline after every test).</summary>
    int InUse { get; }
    int Capacity { get; }
}

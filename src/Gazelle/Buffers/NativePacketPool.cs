using System.Runtime.InteropServices;

namespace Gazelle.Buffers;

/// <summary>
/// A fixed pool of packet buffers carved from one native allocation (the in-memory network's and the
/// tests' pool; DPDK devices bring their own mempool). Fixed size by design: exhaustion is a counted
/// condition for the caller, never a GC allocation.
/// </summary>
public sealed unsafe class NativePacketPool : IPacketPool, IDisposable
{
    private readonly PacketBuffer[] _free;
    private int _freeCount;
    private byte* _memory;
    private readonly int _bufferSize;

    public NativePacketPool(int count, int bufferSize = 2048 + 128, int headroom = 128)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count));
        if (headroom < 0 || headroom >= bufferSize) throw new ArgumentOutOfRangeException(nameof(headroom));
        Capacity = count;
        Headroom = headroom;
        _bufferSize = bufferSize;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)count * (nuint)bufferSize, 64);
        _free = new PacketBuffer[count];
        for (int i = 0; i < count; i++)
        {
            var b = new PacketBuffer(this);
            b.Attach(_memory + (long)i * bufferSize, bufferSize, 0, headroom, 0);
            _free[i] = b;
        }
        _freeCount = count;
    }

    public int Headroom { get; }
    public int Capacity { get; }
    public int InUse => Capacity - _freeCount;
    /// <summary>Rent attempts that found the pool empty.</summary>
    public long Exhausted { get; private set; }

    public PacketBuffer? Rent()
    {
        if (_freeCount == 0)
        {
            Exhausted++;
            return null;
        }
        var b = _free[--_freeCount];
        b.Reset(Headroom);
        b.Queue = 0;
        b.RssHash = 0;
        b.InUse = true;
        return b;
    }

    public void Return(PacketBuffer buffer)
    {
        if (buffer.Owner != this || !buffer.InUse) ThrowHelpers.InvalidOperation("packet buffer returned twice or to the wrong pool");
        buffer.InUse = false;
        _free[_freeCount++] = buffer;
    }

    public void Dispose()
    {
        if (_memory != null)
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
        }
    }
}

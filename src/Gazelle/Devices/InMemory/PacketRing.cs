using System.Runtime.CompilerServices;
using Gazelle.Buffers;

namespace Gazelle.Devices.InMemory;

/// <summary>
/// A bounded FIFO of packet buffers over a fixed power-of-two array: the software stand-in for a NIC
/// descriptor ring. Enqueue on a full ring fails (the caller counts the drop); nothing allocates after
/// construction. Not thread-safe: one thread enqueues and dequeues (see <see cref="UserVeth"/>).
/// </summary>
public sealed class PacketRing
{
    private readonly PacketBuffer?[] _slots;
    private readonly int _mask;
    private long _head; // next to dequeue
    private long _tail; // next to enqueue

    public PacketRing(int capacity)
    {
        if (capacity <= 0 || (capacity & (capacity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), "ring capacity must be a power of two");
        _slots = new PacketBuffer?[capacity];
        _mask = capacity - 1;
    }

    public int Capacity => _slots.Length;
    public int Count => (int)(_tail - _head);
    public bool IsEmpty => _tail == _head;
    public bool IsFull => _tail - _head == _slots.Length;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnqueue(PacketBuffer buffer)
    {
        if (_tail - _head == _slots.Length) return false;
        _slots[(int)(_tail & _mask)] = buffer;
        _tail++;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PacketBuffer? TryDequeue()
    {
        if (_tail == _head) return null;
        int i = (int)(_head & _mask);
        var b = _slots[i];
        _slots[i] = null;
        _head++;
        return b;
    }

    /// <summary>Dequeues up to <c>into.Length</c> buffers; returns how many.</summary>
    public int Dequeue(Span<PacketBuffer> into)
    {
        int n = 0;
        while (n < into.Length && _tail != _head)
        {
            int i = (int)(_head & _mask);
            into[n++] = _slots[i]!;
            _slots[i] = null;
            _head++;
        }
        return n;
    }

    /// <summary>Releases every queued buffer to its pool (device teardown).</summary>
    public void ReleaseAll()
    {
        while (TryDequeue() is { } b) b.Release();
    }
}

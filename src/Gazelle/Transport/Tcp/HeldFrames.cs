using Gazelle.Buffers;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// Received frames whose in-order TCP payload stays where the NIC put it until the application reads it:
/// recv copies straight from the frame (an mbuf) instead of the frame being copied into the receive ring
/// at input and the ring into the application's buffer (one copy per byte instead of two). One store per
/// stack, shared by its connections: each connection's held payloads are a list of slots in arrival order
/// (<see cref="Tcb.HeldHead"/>). The store is bounded (<see cref="Limit"/>, a share of the NIC's pool), so
/// the NIC never runs short of buffers for it; when it is full the payload is copied into the ring as
/// before (<see cref="TcpCounters.HoldRefused"/>), which can slow a stream, never stall or lose it.
/// </summary>
internal sealed unsafe class HeldFrames
{
    private readonly PacketBuffer?[] _frame;
    private readonly int[] _start;
    private readonly int[] _length;
    private readonly int[] _next;
    private int _freeHead;

    public HeldFrames(int capacity)
    {
        capacity = Math.Max(0, capacity);
        _frame = new PacketBuffer?[capacity];
        _start = new int[capacity];
        _length = new int[capacity];
        _next = new int[capacity];
        for (int i = 0; i < capacity; i++) _next[i] = i + 1 < capacity ? i + 1 : -1;
        _freeHead = capacity > 0 ? 0 : -1;
        Limit = capacity;
    }

    public int Capacity => _frame.Length;
    /// <summary>Frames held at most now (≤ <see cref="Capacity"/>; the stack sets it from its NIC's pool).</summary>
    public int Limit { get; set; }
    /// <summary>Frames held now, over all connections.</summary>
    public int Count { get; private set; }

    /// <summary>Appends <paramref name="length"/> bytes at <paramref name="start"/> of the frame's data to the
    /// list (<paramref name="head"/>, <paramref name="tail"/>); false (nothing changes) when the store is full.
    /// On success the store owns the frame and releases it once its bytes are consumed.</summary>
    public bool TryAdd(ref int head, ref int tail, PacketBuffer frame, int start, int length)
    {
        if (Count >= Limit || _freeHead < 0) return false;
        int i = _freeHead;
        _freeHead = _next[i];
        _frame[i] = frame;
        _start[i] = start;
        _length[i] = length;
        _next[i] = -1;
        if (tail >= 0) _next[tail] = i; else head = i;
        tail = i;
        Count++;
        return true;
    }

    /// <summary>Copies the list's bytes from <paramref name="from"/> on into <paramref name="dest"/>, as many as
    /// both have; returns how many.</summary>
    public int CopyOut(int head, int from, Span<byte> dest)
    {
        int copied = 0;
        for (int i = head; i >= 0 && copied < dest.Length; i = _next[i])
        {
            int len = _length[i];
            if (from >= len) { from -= len; continue; }
            int n = Math.Min(len - from, dest.Length - copied);
            new ReadOnlySpan<byte>(_frame[i]!.DataPointer + _start[i] + from, n).CopyTo(dest[copied..]);
            copied += n;
            from = 0;
        }
        return copied;
    }

    /// <summary>Drops <paramref name="n"/> bytes from the front of the list, releasing emptied frames.</summary>
    public void Consume(ref int head, ref int tail, int n)
    {
        while (n > 0 && head >= 0)
        {
            int i = head;
            if (n < _length[i])
            {
                _start[i] += n;
                _length[i] -= n;
                return;
            }
            n -= _length[i];
            head = _next[i];
            Free(i);
        }
        if (head < 0) tail = -1;
    }

    /// <summary>Releases every frame of the list (the connection is gone or reset).</summary>
    public void ReleaseAll(ref int head, ref int tail)
    {
        while (head >= 0)
        {
            int i = head;
            head = _next[i];
            Free(i);
        }
        tail = -1;
    }

    private void Free(int i)
    {
        var f = _frame[i]!;
        _frame[i] = null;
        f.Release();
        _next[i] = _freeHead;
        _freeHead = i;
        Count--;
    }
}

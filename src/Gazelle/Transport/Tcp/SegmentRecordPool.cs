namespace Gazelle.Transport.Tcp;

/// <summary>
/// The stack's spare RACK record rings (<see cref="Tcb.Segs"/>): a connection rents one when it first has
/// data in flight and gives it back when everything is acknowledged or it is freed, so short connections
/// and request/response exchanges reuse rings instead of allocating one per TCB. Lengths are powers of two.
/// </summary>
internal sealed class SegmentRecordPool
{
    private readonly SentSegment[][] _free;
    private int _count;

    public SegmentRecordPool(int capacity) => _free = new SentSegment[Math.Max(capacity, 1)][];

    /// <summary>A spare ring of at least <paramref name="minLength"/> records (looking at the newest few), else a new one.</summary>
    public SentSegment[] Rent(int minLength)
    {
        for (int i = _count - 1; i >= 0 && i >= _count - 8; i--)
        {
            var a = _free[i];
            if (a.Length < minLength) continue;
            _free[i] = _free[--_count];
            _free[_count] = null!;
            return a;
        }
        return new SentSegment[minLength];
    }

    /// <summary>Keeps a ring for reuse (dropped when the pool is full).</summary>
    public void Return(SentSegment[] ring)
    {
        if (ring.Length != 0 && _count < _free.Length) _free[_count++] = ring;
    }
}

namespace Gazelle.Transport.Tcp;

/// <summary>
/// The connections in TIME_WAIT in the order they entered it, which is the order of their deadlines (the
/// wait is one constant; a restarted wait enters again at the tail). When the connection pool is full the
/// oldest one is recycled (<see cref="TcpLayer"/>.AllocTcb, as Linux kills TIME_WAIT buckets beyond
/// tcp_max_tw_buckets): this finds it in O(1) where a walk over every connection cost ~19% of a preloaded
/// nginx serving 1 KiB with Connection: close (1,500 connections scanned per new connection).
/// <para>Entries are never removed from the middle: an entry is (connection index, stamp), and it is stale
/// once its connection left TIME_WAIT, was reused, or entered again (a new stamp). Stale entries are skipped
/// at the head and dropped when the ring fills. The ring holds twice the pool, so a compaction (every live
/// entry is one connection, at most one live entry each) frees at least half of it. Never allocates.</para>
/// </summary>
internal sealed class TimeWaitQueue
{
    private readonly int[] _index;
    private readonly uint[] _stamp;
    private readonly int _mask;
    private int _head, _count;
    private uint _clock;

    public TimeWaitQueue(int connections)
    {
        int cap = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, connections * 2));
        _index = new int[cap];
        _stamp = new uint[cap];
        _mask = cap - 1;
    }

    /// <summary>Entries held, stale ones included (diagnostics and tests).</summary>
    public int Count => _count;

    /// <summary><paramref name="t"/> entered (or re-entered) TIME_WAIT: it goes to the tail.</summary>
    public void Add(Tcb t, Tcb[] tcbs)
    {
        if (_count == _index.Length) Compact(tcbs);
        if (++_clock == 0) _clock = 1; // 0 = never queued
        t.TimeWaitStamp = _clock;
        int i = (_head + _count) & _mask;
        _index[i] = t.Index;
        _stamp[i] = _clock;
        _count++;
    }

    /// <summary>The oldest connection in TIME_WAIT that the application no longer holds, or null; stale
    /// entries before it are dropped. It stays queued until <see cref="RemoveOldest"/>.</summary>
    public Tcb? Oldest(Tcb[] tcbs)
    {
        while (_count > 0)
        {
            var t = tcbs[_index[_head]];
            // One the application still holds leaves the queue; its close() queues it again.
            if (Live(t, _stamp[_head]) && !t.UserOwned) return t;
            _head = (_head + 1) & _mask;
            _count--;
        }
        return null;
    }

    /// <summary>Drops the head (the connection <see cref="Oldest"/> returned).</summary>
    public void RemoveOldest()
    {
        if (_count == 0) return;
        _head = (_head + 1) & _mask;
        _count--;
    }

    private static bool Live(Tcb t, uint stamp) => t.InUse && t.State == TcpState.TimeWait && t.TimeWaitStamp == stamp;

    private void Compact(Tcb[] tcbs)
    {
        int kept = 0;
        for (int k = 0; k < _count; k++)
        {
            int from = (_head + k) & _mask;
            if (!Live(tcbs[_index[from]], _stamp[from])) continue;
            int to = (_head + kept) & _mask;
            _index[to] = _index[from];
            _stamp[to] = _stamp[from];
            kept++;
        }
        _count = kept;
    }
}

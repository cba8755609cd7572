namespace Gazelle.Sockets;

/// <summary>
/// The indices of one transport's sockets whose event numbers (<see cref="SocketEvents"/>) moved since it was
/// last cleared, so that readiness (epoll) need not ask every watched socket after each poll: Linux's epoll
/// gets the same from its wake-up callbacks (ep_poll_callback puts the item on the ready list). Bounded and
/// allocation-free: past <see cref="Capacity"/> entries it only remembers that it overflowed, and the reader
/// must then treat every socket as changed. Repeats of the last entry are dropped (a burst of segments for one
/// connection records it once).
/// </summary>
public sealed class EventJournal
{
    public const int Capacity = 256;
    private readonly int[] _entries = new int[Capacity];
    private int _count;

    /// <summary>More sockets had events than <see cref="Capacity"/>: the entries are incomplete.</summary>
    public bool Overflowed { get; private set; }

    public ReadOnlySpan<int> Entries => _entries.AsSpan(0, _count);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Record(int index)
    {
        if (_count > 0 && _entries[_count - 1] == index) return;
        if (_count == Capacity)
        {
            Overflowed = true;
            return;
        }
        _entries[_count++] = index;
    }

    public void Clear()
    {
        _count = 0;
        Overflowed = false;
    }
}

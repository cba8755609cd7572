namespace Gazelle.Posix;

public sealed unsafe partial class PosixLayer
{
    /// <summary>
    /// Diagnostics: polls the stack once and runs <paramref name="report"/> with the layer's lock held, so
    /// it reads the stack's tables between two calls of the program's threads. False (nothing run) when the
    /// lock was not free within <paramref name="lockWait"/>.
    /// </summary>
    public bool Inspect(TimeSpan lockWait, Action report)
    {
        if (!_lock.TryEnter(lockWait)) return false;
        try
        {
            PollStack();
            report();
            return true;
        }
        finally { _lock.Exit(); }
    }

    /// <summary>Polls of the stack so far (each call's and each waiting round's; bench/e2e/empty-round.sh divides
    /// a spinning wait by it).</summary>
    public long Polls => _polls;

    /// <summary>Fd numbers that name a socket with a live stack side (stack or dual placement; a dup counts
    /// once per number). Caller holds the lock (inside <see cref="Inspect"/>).</summary>
    public int StackSocketFds
    {
        get
        {
            int n = 0;
            foreach (var e in _entries) if (e is SocketFile { Handle.IsValid: true }) n++;
            return n;
        }
    }
}

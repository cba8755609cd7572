using Gazelle.Sockets;
using Gazelle.Time;

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

    /// <summary>
    /// At process exit (the kernel would close every fd): closes the stack side of every socket the program
    /// left open, as close() would (FIN, or RST over unread data), then keeps polling the stack until
    /// <paramref name="settled"/> says the FINs are answered or <paramref name="budget"/> is spent, so they
    /// leave the NIC before the process is gone. The fd numbers stay reserved and the layer's entries stay:
    /// a call the program still makes on such a socket (from a later exit handler) gets EBADF, close() works.
    /// Never waits longer than <paramref name="lockWait"/> + <paramref name="budget"/>; returns the sockets
    /// closed, or -1 when the lock was not free (a thread stuck inside the layer: nothing is done).
    /// </summary>
    public int CloseAllAtExit(TimeSpan lockWait, TimeSpanMicros budget, Func<bool> settled)
    {
        if (!_lock.TryEnter(lockWait)) return -1;
        try
        {
            int closed = 0;
            foreach (var e in _entries)
            {
                if (e is not SocketFile f || !f.Handle.IsValid) continue;
                _stack.Close(f.Handle); // a socket with several fds is closed once: its handle is gone after
                f.Handle = SocketHandle.Invalid;
                closed++;
            }
            var deadline = _clock() + budget;
            PollStack();
            while (!settled() && _clock() < deadline)
            {
                Thread.Yield();
                PollStack();
            }
            return closed;
        }
        finally { _lock.Exit(); }
    }
}

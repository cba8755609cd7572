using Gazelle.Sockets;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Posix;

/// <summary>
/// Fd numbers of stack sockets. A stack socket's number is held by a duplicate of the layer's reservation eventfd
/// (made with F_DUPFD_CLOEXEC), so the kernel never hands it out while the socket lives. Making that duplicate at
/// socket()/accept() and closing it at close() were two system calls per connection on each side (2.4% + 3.3% of a
/// preloaded nginx serving Connection: close, perf). So a closed socket's number stays reserved in a small LIFO
/// pool and the next socket()/accept() takes it without a system call (numbers stay low, as Linux's lowest-free
/// rule keeps them). For the program a pooled number is a closed fd: the shim answers every call on it with EBADF
/// (<see cref="FdKind.Pooled"/>), poll reports POLLNVAL, select EBADF; dup2/dup3 onto it give the program that
/// number (the pool forgets it first); close_range/closefrom over it forget it before the kernel closes it
/// (<see cref="CloseRange"/>); a forked child closes the pooled numbers it inherited (the shim).
/// Close-on-exec: the kernel's flag of a reservation number is always set, so neither a pooled number nor a stack
/// socket's ever crosses exec (a stack connection cannot serve another image anyway); the program's own
/// FD_CLOEXEC (SOCK_CLOEXEC, F_SETFD) is kept here per number and answered by F_GETFD, and a lazy socket's kernel
/// socket gets it when it is made (<see cref="Materialize"/>), so a kernel socket crosses exec exactly as asked.
/// </summary>
public sealed unsafe partial class PosixLayer
{
    /// <summary>How many closed numbers stay reserved. A bound keeps an idle server from holding many fds (each
    /// counts against RLIMIT_NOFILE); 64 covers a burst of closes between two accepts of a busy server.</summary>
    internal const int MaxPooledNumbers = 64;
    /// <summary>Numbers below this (stdin, stdout, stderr) are never pooled: programs reopen them by number
    /// (close(0); open("/dev/null") expects 0).</summary>
    private const int FirstPooledNumber = 3;

    /// <summary>Per fd number: <see cref="ReservedNumber"/> and <see cref="ProgramCloexec"/>. Caller holds the lock.</summary>
    private readonly byte[] _numbers;
    /// <summary>The number is held by a duplicate of the reservation eventfd that the layer made close-on-exec.</summary>
    private const byte ReservedNumber = 1;
    /// <summary>The program's FD_CLOEXEC for a <see cref="ReservedNumber"/> (the kernel's is always set).</summary>
    private const byte ProgramCloexec = 2;

    private readonly int[] _pool = new int[MaxPooledNumbers];
    private int _pooled;
    private long _numbersFromPool, _numbersPooled;

    /// <summary>Closed numbers the layer keeps reserved now (diagnostics).</summary>
    public int PooledNumbers
    {
        get { return Volatile.Read(ref _pooled); } // read under Inspect's lock too: no lock here (not reentrant)
    }

    /// <summary>socket()/accept() numbers taken from the pool (no system call), and numbers put back into it by close().</summary>
    public long NumbersFromPool => _numbersFromPool;
    public long NumbersPooled => _numbersPooled;

    /// <summary>
    /// A new fd number for a lazy or stack socket (LIFO from the pool, else the lowest free one, as accept gives):
    /// a duplicate of one eventfd made once. A duplicate costs the kernel a slot in the fd table, where a fresh
    /// eventfd per connection allocated a file and an inode (eventfd + its close were ~9% of a preloaded nginx
    /// serving Connection: close). Nothing is ever read from or written to it: every call on an accepted socket is
    /// the stack's (F_GETFL/F_SETFL included, kept per socket). A pooled number is marked <see cref="FdKind.Pending"/>
    /// until the caller enters it (a concurrent call on it waits for the lock); the caller then calls
    /// <see cref="MarkReserved"/>. Caller holds the lock.
    /// </summary>
    private int ReservationDup()
    {
        int fd;
        if (_pooled > 0)
        {
            fd = _pool[--_pooled];
            _numbersFromPool++;
            _table[fd] = FdKind.Pending;
        }
        else
        {
            fd = _reservation >= 0 ? Libc.Fcntl(_reservation, F_DUPFD_CLOEXEC, 0) : -(int)Errno.EBADF;
            if (fd == -(int)Errno.EBADF)
            {
                // First use, or the program closed ours behind the shim's back (as it could close any fd the
                // stack holds, EAL's and memif's among them): make it.
                _reservation = Libc.EventFd(0, EFD_CLOEXEC);
                if (_reservation < 0) return _reservation;
                fd = Libc.Fcntl(_reservation, F_DUPFD_CLOEXEC, 0);
            }
        }
        return fd;
    }

    /// <summary>Marks <paramref name="fd"/>, just entered from <see cref="ReservationDup"/>, as a reservation number
    /// with the program's close-on-exec. Caller holds the lock.</summary>
    private void MarkReserved(int fd, bool cloexec) => _numbers[fd] = (byte)(ReservedNumber | (cloexec ? ProgramCloexec : 0));

    /// <summary>The eventfd whose duplicates hold stack sockets' fd numbers (-1 until the first).</summary>
    private int _reservation = -1;
    internal int ReservationFd => _reservation;

    /// <summary>The number <paramref name="fd"/> leaves the layer (closed, or the kernel put another file on it):
    /// whether the program closing it may leave it in the pool instead. Caller holds the lock.</summary>
    private bool Poolable(int fd) =>
        fd >= FirstPooledNumber && (uint)fd < (uint)_numbers.Length && (_numbers[fd] & ReservedNumber) != 0 && _pooled < MaxPooledNumbers;

    /// <summary>Keeps a closed reservation number for the next socket. Caller holds the lock.</summary>
    private void Pool(int fd)
    {
        _numbers[fd] = 0;
        _pool[_pooled++] = fd;
        _numbersPooled++;
        _table[fd] = FdKind.Pooled;
    }

    /// <summary>Forgets <paramref name="fd"/> if the pool holds it (the kernel closed it or put another file on it).
    /// Caller holds the lock.</summary>
    private void Unpool(int fd)
    {
        if (_table[fd] != FdKind.Pooled) return;
        for (int i = 0; i < _pooled; i++)
        {
            if (_pool[i] != fd) continue;
            Array.Copy(_pool, i + 1, _pool, i, _pooled - i - 1); // keeps the LIFO order of the rest
            _pooled--;
            break;
        }
        _table[fd] = FdKind.Kernel;
    }

    /// <summary>F_GETFD/F_SETFD of a reservation number, kept by the layer (its kernel flag is always set).
    /// Returns false when <paramref name="fd"/> is not one. Caller holds the lock.</summary>
    private bool NumberFlags(int fd, int cmd, long arg, out int result)
    {
        result = 0;
        if ((uint)fd >= (uint)_numbers.Length || (_numbers[fd] & ReservedNumber) == 0) return false;
        if (cmd == F_GETFD) result = (_numbers[fd] & ProgramCloexec) != 0 ? FD_CLOEXEC : 0;
        else _numbers[fd] = (byte)(ReservedNumber | ((arg & FD_CLOEXEC) != 0 ? ProgramCloexec : 0));
        return true;
    }

    /// <summary>The program's close-on-exec of <paramref name="fd"/> (a lazy socket's number, about to get its kernel
    /// socket), and the number is no longer a reservation. Caller holds the lock.</summary>
    private bool TakeCloexec(int fd)
    {
        if ((uint)fd < (uint)_numbers.Length && (_numbers[fd] & ReservedNumber) != 0)
        {
            bool cloexec = (_numbers[fd] & ProgramCloexec) != 0;
            _numbers[fd] = 0;
            return cloexec;
        }
        int fdFlags = Libc.Fcntl(fd, F_GETFD, 0);
        return fdFlags > 0 && (fdFlags & FD_CLOEXEC) != 0;
    }

    /// <summary>
    /// close_range(2) and closefrom(3), before the kernel runs them (the shim calls the kernel after): without
    /// CLOSE_RANGE_CLOEXEC every stack socket, pending socket and epoll set in the range is closed as close() closes
    /// it, and the pool forgets its numbers there (the kernel closes them, and would hand them out again); with it,
    /// the program's close-on-exec of its reservation numbers there is set (a pooled number's already is). Invalid
    /// arguments change nothing: the kernel answers them. Returns 0.
    /// </summary>
    public int CloseRange(uint first, uint last, int flags)
    {
        const int CloseRangeUnshare = 2, CloseRangeCloexec = 4;
        if (first > last || (flags & ~(CloseRangeUnshare | CloseRangeCloexec)) != 0) return 0;
        using (_lock.Hold())
        {
            int end = (int)Math.Min(last, (uint)_numbers.Length - 1);
            for (int fd = (int)Math.Min(first, (uint)_numbers.Length); fd <= end; fd++)
            {
                if (_table[fd] == FdKind.Kernel) continue;
                if ((flags & CloseRangeCloexec) != 0)
                {
                    if ((_numbers[fd] & ReservedNumber) != 0) _numbers[fd] |= ProgramCloexec;
                    continue;
                }
                if (_table[fd] == FdKind.Pooled)
                {
                    Unpool(fd);
                    continue;
                }
                if (_entries[fd] is not null) Forget(fd);
                _numbers[fd] = 0;
                _table[fd] = FdKind.Kernel;
            }
        }
        return 0;
    }

    /// <summary>Closes the pooled numbers (tests; a preloaded process keeps its layer until exit). Caller holds the lock.</summary>
    private void ClosePool()
    {
        while (_pooled > 0)
        {
            int fd = _pool[--_pooled];
            _table[fd] = FdKind.Kernel;
            Libc.Close(fd);
        }
    }
}

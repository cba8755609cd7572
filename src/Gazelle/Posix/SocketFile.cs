using Gazelle.Sockets;

namespace Gazelle.Posix;

/// <summary>Where a socket's traffic goes.</summary>
internal enum Placement
{
    /// <summary>Not yet placed: every call is the kernel's until bind/connect/listen/sendto decide. The kernel
    /// socket itself may not exist yet (<see cref="SocketFile.Lazy"/>).</summary>
    Pending,
    /// <summary>Served by the stack; the fd number is held by a kernel fd (the reservation).</summary>
    Stack,
    /// <summary>Served by both: a TCP listen on INADDR_ANY, a UDP socket bound to INADDR_ANY.</summary>
    Dual,
}

/// <summary>One open socket, shared by every fd that dup() made of it (the kernel's "struct file"). The layer
/// reuses the object for a later socket once its last fd closed (<see cref="Renew"/>: no garbage per
/// connection); <see cref="Generation"/> tells the incarnations apart.</summary>
internal sealed class SocketFile
{
    /// <summary>Moves each time the object is reused for another socket. A call that found this file and then let
    /// go of the layer's lock (to wait) checks that its fd still names this file in the same generation
    /// (PosixLayer.Names): the fd number may have been closed and handed to a new socket meanwhile, and that
    /// socket may be this very object again.</summary>
    public long Generation;
    public Placement Placement;
    public SocketKind Kind;
    public int Protocol;
    /// <summary>Pending with no kernel socket yet: its fd numbers are held by duplicates of the layer's
    /// reservation eventfd, and the kernel socket is made (and put on those numbers) only when a call needs
    /// the kernel (PosixLayer.Materialize). A socket that goes to the stack never makes one.</summary>
    public bool Lazy;
    /// <summary>The protocol argument socket() was called with (0 or the IPPROTO_ of <see cref="Kind"/>), for the
    /// kernel socket a lazy one makes.</summary>
    public int ProtocolArgument;
    public SocketHandle Handle = SocketHandle.Invalid;
    /// <summary>O_NONBLOCK (a file status flag, shared by dups as on Linux).</summary>
    public bool NonBlocking;
    /// <summary>SO_RCVTIMEO / SO_SNDTIMEO in microseconds; 0 = wait forever.</summary>
    public long ReceiveTimeoutMicros, SendTimeoutMicros;
    public bool Listening;
    /// <summary>A non-blocking connect said EINPROGRESS and no connect() has seen its outcome yet: Linux
    /// answers the next connect() with EALREADY while in progress, then once with the outcome (0 or the error).</summary>
    public bool ConnectPending;
    /// <summary>Port of a kernel bind to INADDR_ANY made while pending (0 = none).</summary>
    public ushort KernelAnyPort;
    /// <summary>The fd numbers that name this socket.</summary>
    public readonly List<int> Fds = new(1);
    /// <summary>Options set while pending, replayed on the stack's socket when it is placed there.</summary>
    public readonly List<(int Level, int Name, byte[] Value)> Options = [];
    /// <summary>Epoll registrations that watch this socket from the layer (one or two: a short list beats a map).</summary>
    public readonly List<EpollInterest> Interests = [];

    /// <summary>The registration of (<paramref name="epoll"/>, <paramref name="fd"/>), or null.</summary>
    public EpollInterest? InterestOf(EpollFile epoll, int fd)
    {
        foreach (var it in Interests)
            if (it.Epoll == epoll && it.Fd == fd) return it;
        return null;
    }

    /// <summary>Drops <paramref name="interest"/> (by reference: List.Remove's comparer showed in redis-benchmark's
    /// profile, which deletes and adds a registration several times per request).</summary>
    public void ForgetInterest(EpollInterest interest)
    {
        var list = Interests;
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] != interest) continue;
            list[i] = list[^1];
            list.RemoveAt(list.Count - 1);
            return;
        }
    }
    /// <summary>Moves whenever the stack journaled an event for this socket (PosixLayer.NoteStackEvents).</summary>
    public long EventGeneration;

    /// <summary>Makes a spare file (its last fd closed, its stack socket closed) a fresh one: every field as a
    /// new object has it, the lists emptied (their arrays kept), and a new <see cref="Generation"/>, written last
    /// with release semantics so a lock-free reader that sees the new generation sees the new fields.
    /// <see cref="EventGeneration"/> keeps counting (registrations compare it for equality only).</summary>
    public SocketFile Renew()
    {
        Placement = Placement.Pending;
        Kind = default;
        Protocol = 0;
        Lazy = false;
        ProtocolArgument = 0;
        Handle = SocketHandle.Invalid;
        NonBlocking = false;
        ReceiveTimeoutMicros = SendTimeoutMicros = 0;
        Listening = false;
        ConnectPending = false;
        KernelAnyPort = 0;
        Fds.Clear();
        Options.Clear();
        Interests.Clear();
        Volatile.Write(ref Generation, Generation + 1);
        return this;
    }
}

/// <summary>An epoll instance that has (or had) stack sockets in its interest list.</summary>
internal sealed class EpollFile
{
    public readonly List<int> Fds = new(1);
    /// <summary>Its registrations (each also in its socket's <see cref="SocketFile.Interests"/>, where
    /// epoll_ctl finds it).</summary>
    public readonly List<EpollInterest> Interests = [];
    /// <summary>Where the next collection starts, so a short events array does not starve later sockets.</summary>
    public int NextStart;
    /// <summary>The layer's event tick at the last collection, and whether that collection left registrations
    /// that must be looked at anyway (ready level-triggered ones, kernel sides, unvisited ones).</summary>
    public long SeenTick = -1;
    public bool MustLook = true;
    /// <summary>Calls that returned stack events without asking the kernel since it was last asked, and whether
    /// that last ask found a kernel fd ready (PosixLayer.EpollWaitCore: <see cref="PosixLayer.KernelCheckEvery"/>).</summary>
    public int KernelSkips;
    public bool KernelReady;
}

/// <summary>One (epoll, fd) registration kept by the layer. Reused after EPOLL_CTL_DEL (<see cref="Reset"/>):
/// hiredis's event loop deletes and adds registrations around every request.</summary>
internal sealed class EpollInterest
{
    public EpollFile Epoll = null!;
    public int Fd;
    public SocketFile File = null!;
    public uint Events;
    public ulong Data;
    /// <summary>EPOLLONESHOT fired: silent until EPOLL_CTL_MOD re-arms it.</summary>
    public bool Disarmed;
    /// <summary>Edge-triggered: ADD or MOD armed an edge (Linux reports a ready socket once after either).</summary>
    public bool EdgeArmed = true;
    /// <summary>Edge-triggered: the stack socket's event sequence numbers at the last collection.</summary>
    public SocketEvents SeenEvents;
    /// <summary>Edge-triggered: the kernel side's readiness at the last collection (a pending or dual
    /// socket's kernel part is only seen as levels, so a rise counts as an edge).</summary>
    public uint KernelSeen;
    /// <summary>The file's <see cref="SocketFile.EventGeneration"/> and the layer's everything-changed generation
    /// when this registration was last looked at, and whether it was reported ready then (level-triggered: it
    /// is looked at again until it is not).</summary>
    public long SeenGeneration = -1, SeenAllGeneration = -1;
    public bool WasReady;
    /// <summary>Index in <see cref="EpollFile.Interests"/> (-1 when not there).</summary>
    public int Position = -1;

    /// <summary>A fresh registration of <paramref name="fd"/> (naming <paramref name="file"/>) in <paramref name="epoll"/>.</summary>
    public EpollInterest Reset(EpollFile epoll, int fd, SocketFile file, uint events, ulong data)
    {
        Epoll = epoll;
        Fd = fd;
        File = file;
        Events = events;
        Data = data;
        Disarmed = false;
        EdgeArmed = true;
        SeenEvents = default;
        KernelSeen = 0;
        SeenGeneration = SeenAllGeneration = -1;
        WasReady = false;
        Position = -1;
        return this;
    }

    /// <summary>Lets go of the epoll and socket (a spare must not keep them alive).</summary>
    public void Clear()
    {
        Epoll = null!;
        File = null!;
    }
}

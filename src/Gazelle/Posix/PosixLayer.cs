using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Posix;

/// <summary>
/// The POSIX fd layer of one process over one stack: it gives stack sockets real fd numbers, decides
/// at bind/connect/listen which side serves an IPv4 socket, and gives blocking, O_NONBLOCK, epoll,
/// poll and select their Linux meaning on top of the non-blocking <see cref="ISocketApi"/>.
/// Every entry point returns a result &gt;= 0 or -errno. Thread model: one lock, held while the layer
/// touches the stack or its tables and released while it waits, so a socket used from another thread
/// stays correct (a waiter polls the stack for everyone).
/// </summary>
public sealed unsafe partial class PosixLayer : IDisposable
{
    private readonly ISocketApi _stack;
    private readonly Territory _territory;
    private readonly FdKindTable _table;
    private readonly Func<Instant> _clock;
    private readonly PollPolicy _policy;
    private readonly object?[] _entries;
    private readonly LayerLock _lock;
    private readonly delegate* unmanaged<SignalCounts*> _signalCountsOfThread;

    /// <param name="signalCountsOfThread">The preload shim's <c>gz_signal_counts *(*)(void)</c>: the calling
    /// thread's counts of program signal handlers run (<see cref="SignalCounts"/>), with which blocking calls
    /// honour SA_RESTART; 0 where no shim counts them (then a blocking call ends with EINTR only when a
    /// kernel sleep is interrupted).</param>
    /// <param name="epollKernelFds">The preload shim's <c>int epoll_kernel_fds[]</c> (table.Limit entries; shim/gazelle_abi.h):
    /// per fd number, 1 + the kernel fds registered in the epoll there, as far as the shim can count them, else
    /// &lt;= 0. 0 where no shim counts them (then every epoll set is asked about its kernel fds).</param>
    public PosixLayer(ISocketApi stack, Territory territory, FdKindTable table, Func<Instant> clock, PollPolicy? policy = null,
        nint signalCountsOfThread = 0, nint epollKernelFds = 0)
    {
        _epollKernelFds = (int*)epollKernelFds;
        _signalCountsOfThread = (delegate* unmanaged<SignalCounts*>)signalCountsOfThread;
        _stack = stack;
        _territory = territory;
        _table = table;
        _clock = clock;
        _policy = policy ?? new PollPolicy();
        _lock = new LayerLock(_policy.CheckLockOwner);
        _entries = new object?[table.Limit];
        _numbers = new byte[table.Limit];
        _batching = _policy.DatagramFlushMicros > 0;
        if (_batching) _stack.BatchDatagrams = true;
    }

    private readonly bool _batching;

    public FdKindTable Table => _table;

    // ---- helpers -----------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private SocketFile? FileOf(int fd) => (uint)fd < (uint)_entries.Length ? _entries[fd] as SocketFile : null;
    /// <summary>
    /// The socket at <paramref name="fd"/> if the stack alone serves it, read without the lock: a data call's
    /// routing needs no lock for such a socket, whose placement never changes again (the call's locked part
    /// checks that <paramref name="fd"/> still names it, so a concurrent close gives EBADF). A reference read is
    /// atomic; anything else (pending, dual, not ours) takes the locked path. One lock round trip less per
    /// send and receive.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private SocketFile? StackFileOf(int fd) =>
        (uint)fd < (uint)_entries.Length && Volatile.Read(ref _entries[fd]) is SocketFile { Placement: Placement.Stack } f ? f : null;
    /// <summary>Whether <paramref name="fd"/> still names <paramref name="f"/> as it was when the call found it
    /// (generation <paramref name="generation"/>): false once the fd was closed, even if the number and the
    /// recycled object now serve another socket. Caller holds the lock.</summary>
    private bool Names(int fd, SocketFile f, long generation) => FileOf(fd) == f && f.Generation == generation;

    /// <summary>Spare socket files (their last fd closed), reused by the next socket()/accept(): an accepted
    /// connection's file and its three lists were ~6 objects of garbage per connection. Caller holds the lock.</summary>
    private readonly Stack<SocketFile> _spareFiles = new();
    private const int MaxSpareFiles = 1024;

    private SocketFile NewFile() => _spareFiles.TryPop(out var f) ? f.Renew() : new SocketFile();

    private EpollFile? EpollOf(int fd) => (uint)fd < (uint)_entries.Length ? _entries[fd] as EpollFile : null;

    /// <summary>Runs the stack once (receive, timers, transmit). Caller holds the lock. <paramref name="reuseTime"/>
    /// (a waiting loop's spin round, <see cref="Waiter.TakeTimeReuse"/>): when the previous poll was idle, this
    /// one takes its time instead of reading the clock.</summary>
    private void PollStack(bool reuseTime = false)
    {
        var now = reuseTime && _stack.LastPollIdle ? _polledAt : _clock();
        _polledAt = now;
        _polls++;
        _sendsSincePoll = 0;
        _stack.Poll(now);
    }

    /// <summary>
    /// Progress while the program is elsewhere: the layer's background thread (PosixLayer.Batching.cs) calls this every few
    /// milliseconds. The stack runs only inside the program's calls; a program that sleeps, computes or waits
    /// on something that is not ours would leave ACKs untaken, its send queue undrained (a blocking write
    /// returns once its bytes are queued) and its retransmission and delayed-ACK timers unrun, where the kernel's
    /// softirqs and timers go on. So when no thread has polled for <paramref name="idle"/>, the keeper polls once.
    /// A thread inside a call holds the lock and polls by itself: the keeper then leaves it alone. Returns
    /// whether it polled.
    /// </summary>
    public bool KeepUp(TimeSpanMicros idle)
    {
        if ((_clock() - _polledAt).Value < idle.Value || !_lock.TryEnter()) return false;
        try
        {
            PollStack();
        }
        finally
        {
            _lock.Exit();
        }
        return true;
    }

    /// <summary>When the stack was last polled and how many polls there were: a waiter that polled this round
    /// takes its time from there instead of reading the clock again (read without the lock: a torn-free
    /// 8-byte value, and any thread's poll is as recent).</summary>
    private Instant _polledAt;
    private long _polls;
    private long _kernelReadinessChecks;

    /// <summary>Zero-timeout system calls epoll_wait/poll/select made to ask the kernel about the kernel fds of a
    /// call (a call with none makes none).</summary>
    public long KernelReadinessChecks => _kernelReadinessChecks;

    /// <summary>
    /// A send needs nothing from the NIC: NetStack transmits what the call produced before returning, and a
    /// send that finds no room polls and retries (<see cref="SendStream"/>, <see cref="SendDatagram"/>). Polling
    /// around every send, as the layer did, read the clock and the empty RX ring twice per message (a third of
    /// a 64-byte sendto's cost, perf on sockperf's UDP throughput client). So a send only tells the stack the
    /// time (<see cref="ISocketApi.Tick"/>), and every <see cref="SendsPerPoll"/>-th send in a row polls, so a
    /// program that only ever sends still receives (ARP replies, ICMP errors, ACKs) and runs timers.
    /// </summary>
    private const int SendsPerPoll = 8;
    /// <summary>With datagram batching the poll also hands the held burst to the device, so polling every 8th send
    /// cut every burst to 8 frames; a burst is 32 (EthernetLink.BurstSize).</summary>
    private const int BatchingSendsPerPoll = 32;
    private int _sendsSincePoll;

    /// <summary>Before a send: poll the stack every <see cref="SendsPerPoll"/>-th send, else only give it the
    /// time (<paramref name="needsTime"/>: TCP stamps what it sends). Caller holds the lock.</summary>
    private void PrepareSend(bool needsTime)
    {
        if (++_sendsSincePoll >= (_batching ? BatchingSendsPerPoll : SendsPerPoll)) PollStack();
        else if (needsTime) _stack.Tick(_clock());
    }

    private static int ReadEndpoint(void* addr, uint len, out Ipv4Endpoint ep)
    {
        ep = default;
        if (addr == null) return -(int)Errno.EFAULT;
        if ((int)len < SizeOfSockAddrIn) return -(int)Errno.EINVAL;
        var sa = (SockAddrIn*)addr;
        if (sa->Family != AF_INET) return -(int)Errno.EAFNOSUPPORT;
        ep = new Ipv4Endpoint(Ipv4Address.FromNetworkOrder(sa->AddressNetworkOrder),
            System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(sa->PortNetworkOrder));
        return 0;
    }

    /// <summary>Writes a sockaddr_in as Linux does: at most *len bytes, then *len = 16.</summary>
    private static int WriteEndpoint(void* addr, uint* len, Ipv4Endpoint ep)
    {
        if (addr == null) return 0;
        if (len == null) return -(int)Errno.EFAULT;
        int room = (int)*len;
        if (room < 0) return -(int)Errno.EINVAL;
        SockAddrIn sa = default;
        sa.Family = AF_INET;
        sa.PortNetworkOrder = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(ep.Port);
        sa.AddressNetworkOrder = ep.Address.NetworkOrder;
        if (room >= SizeOfSockAddrIn) *(SockAddrIn*)addr = sa; // the usual case: one 16-byte store, no Memmove call
        else Buffer.MemoryCopy(&sa, addr, room, room);
        *len = SizeOfSockAddrIn;
        return 0;
    }

    private static ushort KernelLocalPort(int fd)
    {
        SockAddrIn sa;
        uint len = SizeOfSockAddrIn;
        if (Libc.GetSockName(fd, &sa, &len) < 0) return 0;
        return System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(sa.PortNetworkOrder);
    }

    private void Mark(SocketFile f)
    {
        var kind = f.Placement == Placement.Stack ? FdKind.Socket : FdKind.Pending;
        foreach (int fd in f.Fds) _table[fd] = kind;
    }

    /// <summary>Places a pending socket on the stack: opens its stack socket and replays recorded options.</summary>
    private int ToStack(SocketFile f, Placement placement)
    {
        if (!f.Handle.IsValid)
        {
            var e = _stack.Open(f.Kind, out var h);
            if (e != Errno.Ok) return -(int)e;
            f.Handle = h;
            _byHandle[h.Value] = f;
            foreach (var (level, name, value) in f.Options) _stack.SetOption(h, level, name, value);
        }
        f.Placement = placement;
        // A lazy socket placed on the stack never needs its kernel socket: the reservation holds its numbers,
        // as an accepted connection's. (Dual placement comes after a kernel bind/listen: never lazy.)
        f.Lazy = false;
        Mark(f);
        return 0;
    }

    /// <summary>Gives a socket to the kernel for good: a lazy one gets its kernel socket, its fds leave the
    /// table (the shim then calls libc directly) and its epoll registrations move into the kernel epoll
    /// instances. 0, or the kernel's socket() error (nothing changed).</summary>
    private int Release(SocketFile f)
    {
        int m = Materialize(f);
        if (m < 0) return m;
        if (f.Handle.IsValid)
        {
            _stack.Close(f.Handle);
            ForgetHandle(f);
        }
        foreach (var interest in f.Interests)
        {
            RemoveInterest(interest);
            if (interest.Epoll.Fds.Count == 0) continue;
            EpollEvent ev = new() { Events = interest.Events, Data = interest.Data };
            if (interest.Disarmed) ev.Events &= ~(EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP);
            KernelEpollCtl(interest.Epoll.Fds[0], EPOLL_CTL_ADD, interest.Fd, &ev);
        }
        f.Interests.Clear();
        foreach (int fd in f.Fds)
        {
            _entries[fd] = null;
            _table[fd] = FdKind.Kernel;
        }
        f.Fds.Clear();
        return 0;
    }

    /// <summary>
    /// A number the kernel just handed out cannot still be ours: if the layer holds an entry for it,
    /// the program closed it behind the shim's back (close_range, a raw syscall) and the entry is stale.
    /// Caller holds the lock.
    /// </summary>
    private void Claim(int fd)
    {
        if ((uint)fd >= (uint)_entries.Length) return;
        if (_entries[fd] is not null) Forget(fd);
        Unpool(fd); // the same for a number the pool kept
        _numbers[fd] = 0;
    }

    private void Alias(object entry, int fromFd, int newFd)
    {
        _entries[newFd] = entry;
        _table[newFd] = _table[fromFd];
        if (entry is SocketFile f) f.Fds.Add(newFd);
        else if (entry is EpollFile e) e.Fds.Add(newFd);
    }

    /// <summary>Forgets <paramref name="fd"/> (its kernel fd is closed by the caller or already gone).</summary>
    private void Forget(int fd)
    {
        object? entry = _entries[fd];
        _entries[fd] = null;
        _table[fd] = FdKind.Kernel;
        if (entry is SocketFile f)
        {
            f.Fds.Remove(fd);
            if (f.Fds.Count > 0) return;
            // Linux drops epoll registrations when the last fd of the file closes.
            foreach (var interest in f.Interests)
            {
                RemoveInterest(interest);
                SpareInterest(interest);
            }
            f.Interests.Clear();
            if (f.Handle.IsValid)
            {
                // The stack transmits the FIN / RST before Close returns: it only needs the time for the segment's
                // clocks, not a poll (a receive burst and the timers, once per connection a program closes).
                _stack.Tick(_clock());
                _stack.Close(f.Handle);
                if (_stack.LocalDeliveryPending) PollStack(); // to itself: delivered by a poll, as loopback does
            }
            ForgetHandle(f);
            if (_spareFiles.Count < MaxSpareFiles) _spareFiles.Push(f);
        }
        else if (entry is EpollFile e)
        {
            e.Fds.Remove(fd);
            if (e.Fds.Count > 0) return;
            foreach (var interest in e.Interests) interest.File.ForgetInterest(interest);
            e.Interests.Clear();
        }
    }

    /// <summary>Stack sockets by handle, for the stack's event journal. Caller holds the lock.</summary>
    private readonly Dictionary<int, SocketFile> _byHandle = [];

    private void ForgetHandle(SocketFile f)
    {
        if (f.Handle.IsValid && _byHandle.TryGetValue(f.Handle.Value, out var g) && g == f) _byHandle.Remove(f.Handle.Value);
        f.Handle = SocketHandle.Invalid;
    }

    private static void RemoveInterest(EpollInterest interest)
    {
        var ep = interest.Epoll;
        // Swap-remove (order only decides where a collection starts): redis-benchmark deletes a registration
        // per request, and List.Remove's search and shift showed in its profile.
        var list = ep.Interests;
        int p = interest.Position;
        if ((uint)p < (uint)list.Count && list[p] == interest)
        {
            var last = list[^1];
            list[p] = last;
            last.Position = p;
            list.RemoveAt(list.Count - 1);
        }
        else list.Remove(interest);
        interest.Position = -1;
    }

    private static void RaiseSigPipe(int flags)
    {
        if ((flags & MSG_NOSIGNAL) == 0) Libc.TgKill(Libc.GetPid(), Libc.GetTid(), SIGPIPE);
    }

    // ---- socket, bind, listen, accept, connect ------------------------------------------------

    /// <summary>
    /// socket(AF_INET, SOCK_STREAM|SOCK_DGRAM): a pending socket. With the protocol its type implies (0,
    /// IPPROTO_TCP, IPPROTO_UDP) it starts lazy: its number is a duplicate of the reservation eventfd and no
    /// kernel socket exists until a call needs one (<see cref="Materialize"/>). A kernel socket made and closed
    /// for every connection a client opens toward the stack was ~25% of wrk's CPU with Connection: close
    /// (socket() and close() in the kernel, perf). Any other protocol gets the kernel socket (and its errno) now.
    /// </summary>
    public int Socket(int domain, int type, int protocol)
    {
        int baseType = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (domain == AF_INET && baseType is SOCK_STREAM or SOCK_DGRAM
            && (protocol == 0 || protocol == (baseType == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP)))
        {
            using (_lock.Hold())
            {
                int fd = ReservationDup();
                if (fd < 0) return fd;
                if (_table.CanMark(fd))
                {
                    AddPending(fd, baseType, type, protocol).Lazy = true;
                    MarkReserved(fd, (type & SOCK_CLOEXEC) != 0);
                    return fd;
                }
                Libc.Close(fd); // beyond the table: a plain kernel socket, never ours
            }
            return Libc.Socket(domain, type, protocol);
        }
        int kfd = Libc.Socket(domain, type, protocol);
        if (kfd < 0 || !_table.CanMark(kfd)) return kfd;
        if (domain != AF_INET || baseType is not (SOCK_STREAM or SOCK_DGRAM)) return kfd;
        using (_lock.Hold()) AddPending(kfd, baseType, type, protocol);
        return kfd;
    }

    /// <summary>Enters a new pending socket at <paramref name="fd"/> (socket()'s arguments). Caller holds the lock.</summary>
    private SocketFile AddPending(int fd, int baseType, int type, int protocol)
    {
        Claim(fd);
        var f = NewFile();
        f.Kind = baseType == SOCK_STREAM ? SocketKind.Tcp : SocketKind.Udp;
        f.Protocol = baseType == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
        f.ProtocolArgument = protocol;
        f.NonBlocking = (type & SOCK_NONBLOCK) != 0;
        f.Fds.Add(fd);
        Volatile.Write(ref _entries[fd], f);
        _table[fd] = FdKind.Pending;
        return f;
    }

    /// <summary>
    /// Makes a lazy socket's kernel socket and puts it on each of its numbers (dup3 over the reservation
    /// duplicates, keeping each number's close-on-exec), with O_NONBLOCK as the layer holds it. Called before any
    /// call that goes to the kernel on a pending socket, so the kernel answers (and validates) as it always did.
    /// 0 or the kernel's socket() error (the socket stays lazy). Caller holds the lock.
    /// </summary>
    private int Materialize(SocketFile f)
    {
        if (!f.Lazy) return 0;
        int type = (f.Kind == SocketKind.Tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | (f.NonBlocking ? SOCK_NONBLOCK : 0);
        int k = Libc.Socket(AF_INET, type, f.ProtocolArgument);
        if (k < 0) return k;
        int r = 0;
        foreach (int fd in f.Fds)
        {
            r = Libc.Dup3(k, fd, TakeCloexec(fd) ? O_CLOEXEC : 0);
            if (r < 0) break; // cannot happen on an open number short of a race with the program's own dup2
        }
        Libc.Close(k);
        if (r < 0) return r;
        f.Lazy = false;
        return 0;
    }

    /// <summary><see cref="Materialize"/> for the socket at <paramref name="fd"/>, if it is a lazy one. Caller holds the lock.</summary>
    private int MaterializeAt(int fd) => FileOf(fd) is { Lazy: true } f ? Materialize(f) : 0;

    /// <summary>
    /// Before fork (the shim calls it in the parent): the child never enters .NET and treats pending sockets
    /// as plain kernel ones, so every lazy socket gets its kernel socket now; the child inherits real sockets.
    /// </summary>
    public void BeforeFork()
    {
        using (_lock.Hold())
        {
            foreach (var e in _entries)
                if (e is SocketFile { Lazy: true } f) Materialize(f);
        }
    }

    public int Bind(int fd, void* addr, uint len)
    {
        using (_lock.Hold())
        {
            var f = FileOf(fd);
            if (f is null) return Libc.Bind(fd, addr, len);
            if (f.Placement == Placement.Stack)
            {
                int rs = ReadEndpoint(addr, len, out var local);
                if (rs < 0) return rs;
                return -(int)_stack.Bind(f.Handle, local);
            }
            if (f.Placement == Placement.Dual) return -(int)Errno.EINVAL; // already bound
            // Pending: bad arguments get the kernel's own answer (the socket stays pending).
            bool valid = ReadEndpoint(addr, len, out var ep) == 0;
            if (valid && _territory.IsStackLocal(ep.Address))
            {
                int r = ToStack(f, Placement.Stack);
                return r < 0 ? r : -(int)_stack.Bind(f.Handle, ep);
            }
            if (Materialize(f) is < 0 and var failed) return failed;
            if (!valid) return Libc.Bind(fd, addr, len);
            if (ep.Address.IsUnspecified)
            {
                int r = Libc.Bind(fd, addr, len);
                if (r < 0) return r;
                f.KernelAnyPort = KernelLocalPort(fd);
                if (f.Kind == SocketKind.Udp) MakeDual(f, fd);
                return 0;
            }
            Release(f); // materialized above: cannot fail
            return Libc.Bind(fd, addr, len);
        }
    }

    /// <summary>Serves a kernel socket bound to INADDR_ANY from the stack too (same port); falls back to the
    /// kernel alone if the stack cannot take the port. Caller holds the lock.</summary>
    private bool MakeDual(SocketFile f, int fd)
    {
        if (ToStack(f, Placement.Dual) < 0 || _stack.Bind(f.Handle, new Ipv4Endpoint(Ipv4Address.Any, f.KernelAnyPort)) != Errno.Ok)
        {
            Release(f);
            return false;
        }
        // Our loops never block in the kernel on its side: they poll both.
        int fl = Libc.Fcntl(fd, F_GETFL, 0);
        if (fl >= 0) Libc.Fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        return true;
    }

    public int Listen(int fd, int backlog)
    {
        using (_lock.Hold())
        {
            var f = FileOf(fd);
            if (f is null) return Libc.Listen(fd, backlog);
            if (f.Placement == Placement.Stack)
            {
                var e = _stack.Listen(f.Handle, backlog);
                if (e == Errno.Ok) f.Listening = true;
                return -(int)e;
            }
            if (f.Kind == SocketKind.Udp) return -(int)Errno.EOPNOTSUPP;
            // Pending or dual: the kernel listens (binding INADDR_ANY:ephemeral if unbound), the stack on the same port.
            if (Materialize(f) is < 0 and var failed) return failed;
            int r = Libc.Listen(fd, backlog);
            if (r < 0) return r;
            f.Listening = true;
            if (f.Placement == Placement.Dual) return -(int)_stack.Listen(f.Handle, backlog);
            f.KernelAnyPort = KernelLocalPort(fd);
            if (MakeDual(f, fd)) _stack.Listen(f.Handle, backlog);
            return 0;
        }
    }

    public int Accept4(int fd, void* addr, uint* len, int flags)
    {
        if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) return -(int)Errno.EINVAL;
        if (addr != null && len == null) return -(int)Errno.EFAULT;
        if (addr != null && (int)*len < 0) return -(int)Errno.EINVAL;
        var wait = new BlockingWait(this);
        while (true)
        {
            _lock.Enter();
            var f = FileOf(fd);
            if (f is null || f.Placement == Placement.Pending)
            {
                int m = f is null ? 0 : Materialize(f);
                _lock.Exit();
                return m < 0 ? m : Libc.Accept4(fd, addr, len, flags);
            }
            if (f.Kind == SocketKind.Udp)
            {
                _lock.Exit();
                return -(int)Errno.EOPNOTSUPP;
            }
            // A queued connection is taken without polling first (the program usually accepts because epoll just
            // said so, and a poll is a receive burst and the timers); only an empty queue polls and looks again.
            var e = _stack.Accept(f.Handle, out var conn, out var remote);
            if (e == Errno.EAGAIN)
            {
                PollStack();
                e = _stack.Accept(f.Handle, out conn, out remote);
            }
            ResetEdges(f, EPOLLIN);
            if (e == Errno.Ok)
            {
                int r = AdoptAccepted(conn, flags);
                _lock.Exit();
                if (r >= 0) WriteEndpoint(addr, len, remote);
                return r;
            }
            bool dual = f.Placement == Placement.Dual;
            bool nonBlocking = f.NonBlocking;
            long timeout = f.ReceiveTimeoutMicros;
            _lock.Exit();
            if (e != Errno.EAGAIN) return -(int)e;
            if (dual)
            {
                int k = Libc.Accept4(fd, addr, len, flags); // the kernel side is O_NONBLOCK
                if (k != -(int)Errno.EAGAIN) return k;
            }
            if (nonBlocking) return -(int)Errno.EAGAIN;
            int w = wait.Wait(timeout, dual ? fd : -1, EPOLLIN);
            if (w < 0) return w;
        }
    }

    /// <summary>Gives an accepted stack connection an fd number, reserved with a duplicate of one eventfd the
    /// layer keeps (<see cref="ReservationDup"/>). Caller holds the lock.</summary>
    private int AdoptAccepted(SocketHandle conn, int flags)
    {
        int fd = ReservationDup();
        if (fd >= 0 && !_table.CanMark(fd))
        {
            Libc.Close(fd);
            fd = -(int)Errno.EMFILE;
        }
        if (fd < 0)
        {
            _stack.Close(conn);
            return fd;
        }
        Claim(fd);
        MarkReserved(fd, (flags & SOCK_CLOEXEC) != 0);
        var f = NewFile();
        f.Placement = Placement.Stack;
        f.Kind = SocketKind.Tcp;
        f.Protocol = IPPROTO_TCP;
        f.Handle = conn;
        f.NonBlocking = (flags & SOCK_NONBLOCK) != 0;
        f.Fds.Add(fd);
        Volatile.Write(ref _entries[fd], f);
        _table[fd] = FdKind.Socket;
        _byHandle[conn.Value] = f;
        return fd;
    }

    /// <summary>Closes the layer's own kernel fd (tests; a preloaded process keeps its layer until exit).</summary>
    public void Dispose()
    {
        StopFlusher();
        using (_lock.Hold())
        {
            ClosePool();
            if (_reservation >= 0) Libc.Close(_reservation);
            _reservation = -1;
        }
    }

    public int Connect(int fd, void* addr, uint len)
    {
        var wait = new BlockingWait(this);
        _lock.Enter();
        var f = FileOf(fd);
        if (f is null)
        {
            _lock.Exit();
            return Libc.Connect(fd, addr, len);
        }
        int rs = ReadEndpoint(addr, len, out var remote);
        if (f.Placement != Placement.Stack)
        {
            // Pending or dual: bad arguments, AF_UNSPEC and listening sockets get the kernel's answer.
            if (rs < 0 || f.Listening || !_territory.IsStackDestination(remote.Address))
            {
                int m = rs == 0 && !f.Listening ? Release(f) : Materialize(f);
                _lock.Exit();
                return m < 0 ? m : Libc.Connect(fd, addr, len);
            }
            int r = ToStack(f, Placement.Stack);
            if (r == 0 && f.KernelAnyPort != 0 && f.Kind == SocketKind.Tcp)
                r = -(int)_stack.Bind(f.Handle, new Ipv4Endpoint(Ipv4Address.Any, f.KernelAnyPort));
            if (r < 0)
            {
                _lock.Exit();
                return r;
            }
        }
        else if (rs < 0)
        {
            _lock.Exit();
            return rs;
        }
        if (f.ConnectPending)
        {
            PollStack();
            // A second connect() after EINPROGRESS reports the handshake's state (Linux inet_stream_connect).
            var ready = _stack.GetReadiness(f.Handle);
            if ((ready & (Readiness.Writable | Readiness.Error | Readiness.HangUp)) == 0)
            {
                _lock.Exit();
                return -(int)Errno.EALREADY;
            }
            f.ConnectPending = false;
            var outcome = _stack.TakeError(f.Handle);
            _lock.Exit();
            return -(int)outcome;
        }
        // The SYN goes out before Connect returns; the stack only needs the time for its clocks (polls around it
        // were two receive bursts per connection a client opens).
        _stack.Tick(_clock());
        var e = _stack.Connect(f.Handle, remote);
        if (_stack.LocalDeliveryPending) PollStack(); // to itself: delivered by a poll, as loopback does
        if (e == Errno.EINPROGRESS && f.NonBlocking) f.ConnectPending = true;
        bool nonBlocking = f.NonBlocking;
        long timeout = f.SendTimeoutMicros;
        var handle = f.Handle;
        long generation = f.Generation;
        _lock.Exit();
        if (e != Errno.EINPROGRESS || nonBlocking) return -(int)e;
        // Blocking connect: wait for the handshake's outcome, then report it as SO_ERROR would.
        while (true)
        {
            int w = wait.Wait(timeout, -1, 0);
            if (w == -(int)Errno.EAGAIN) return -(int)Errno.EINPROGRESS; // SO_SNDTIMEO expired (Linux says EINPROGRESS)
            if (w < 0) return w;
            using (_lock.Hold())
            {
                if (!Names(fd, f, generation) || f.Handle != handle) return -(int)Errno.EBADF;
                PollStack();
                var ready = _stack.GetReadiness(handle);
                if ((ready & (Readiness.Writable | Readiness.Error | Readiness.HangUp)) != 0)
                    return -(int)_stack.TakeError(handle);
            }
        }
    }

    // ---- close, dup, fcntl, ioctl -----------------------------------------------------------

    public int Close(int fd)
    {
        using (_lock.Hold())
        {
            if ((uint)fd < (uint)_entries.Length)
            {
                if (_table[fd] == FdKind.Pooled) return -(int)Errno.EBADF; // closed already, for the program
                bool keep = _entries[fd] is SocketFile && Poolable(fd);
                if (_entries[fd] is not null) Forget(fd);
                _numbers[fd] = 0;
                if (keep)
                {
                    Pool(fd); // its number stays reserved for the next socket: no close() system call
                    return 0;
                }
            }
            _table[fd] = FdKind.Kernel;
        }
        return Libc.Close(fd);
    }

    public int Dup(int fd)
    {
        using (_lock.Hold())
        {
            if (_table[fd] == FdKind.Pooled) return -(int)Errno.EBADF;
            int nfd = Libc.Dup(fd);
            return nfd < 0 ? nfd : AdoptDup(fd, nfd);
        }
    }

    /// <summary>Makes <paramref name="nfd"/> (a kernel dup of <paramref name="fd"/>) name the same socket. Caller holds the lock.</summary>
    private int AdoptDup(int fd, int nfd)
    {
        object? entry = (uint)fd < (uint)_entries.Length ? _entries[fd] : null;
        if (entry is null) return nfd;
        if (!_table.CanMark(nfd))
        {
            Libc.Close(nfd);
            return -(int)Errno.EMFILE;
        }
        Claim(nfd);
        Alias(entry, fd, nfd);
        return nfd;
    }

    public int Dup2(int oldfd, int newfd) => Dup3Core(oldfd, newfd, 0, isDup2: true);
    public int Dup3(int oldfd, int newfd, int flags) => Dup3Core(oldfd, newfd, flags, isDup2: false);

    private int Dup3Core(int oldfd, int newfd, int flags, bool isDup2)
    {
        using (_lock.Hold())
        {
            if (_table[oldfd] == FdKind.Pooled) return -(int)Errno.EBADF;
            int r = isDup2 ? Libc.Dup2(oldfd, newfd) : Libc.Dup3(oldfd, newfd, flags);
            if (r < 0 || oldfd == newfd) return r;
            // The kernel closed newfd's old file atomically; forget what it was (a socket, or a number the pool
            // kept: the program now has it) and adopt oldfd's.
            if ((uint)newfd < (uint)_entries.Length)
            {
                if (_entries[newfd] is not null) Forget(newfd);
                Unpool(newfd);
                _numbers[newfd] = 0;
            }
            _table[newfd] = FdKind.Kernel;
            return AdoptDup(oldfd, newfd);
        }
    }

    public int Fcntl(int fd, int cmd, long arg)
    {
        using (_lock.Hold())
        {
            if (_table[fd] == FdKind.Pooled) return -(int)Errno.EBADF;
            var f = FileOf(fd);
            switch (cmd)
            {
                case F_DUPFD:
                case F_DUPFD_CLOEXEC:
                {
                    int nfd = Libc.Fcntl(fd, cmd, (nint)arg);
                    return nfd < 0 ? nfd : AdoptDup(fd, nfd);
                }
                case F_GETFL when f is not null && (f.Placement != Placement.Pending || f.Lazy):
                    // The layer holds the flag; the number is ours (a stale entry is reclaimed when the kernel reuses it).
                    return O_RDWR | (f.NonBlocking ? O_NONBLOCK : 0);
                case F_SETFL when f is not null:
                {
                    // A lazy socket keeps O_NONBLOCK in the layer (its number is a duplicate of an eventfd whose
                    // flags every duplicate shares); flags only a real file can take or refuse need the kernel's.
                    if (f.Lazy && (arg & KernelOnlyStatusFlags) != 0 && Materialize(f) is < 0 and var failed) return failed;
                    if (f.Placement == Placement.Pending && !f.Lazy)
                    {
                        int r = Libc.Fcntl(fd, cmd, (nint)arg);
                        if (r < 0) return r;
                    }
                    f.NonBlocking = (arg & O_NONBLOCK) != 0;
                    return 0;
                }
                case F_GETFD or F_SETFD when NumberFlags(fd, cmd, arg, out int numberFlags):
                    return numberFlags; // a reservation number: the program's flag, kept by the layer
                default:
                    // F_GETFD/F_SETFD (close-on-exec is per number), locks, owners: the kernel fd's.
                    if (cmd is not (F_GETFD or F_SETFD) && f is { Lazy: true } && Materialize(f) is < 0 and var err) return err;
                    return Libc.Fcntl(fd, cmd, (nint)arg);
            }
        }
    }

    public int Ioctl(int fd, ulong request, void* arg)
    {
        using (_lock.Hold())
        {
            var f = FileOf(fd);
            if (f is null) return Libc.Ioctl(fd, request, arg);
            if (request == FIONBIO)
            {
                if (arg == null) return -(int)Errno.EFAULT;
                if (f.Placement == Placement.Pending && !f.Lazy && Libc.Ioctl(fd, request, arg) is < 0 and var r) return r;
                f.NonBlocking = *(int*)arg != 0;
                return 0;
            }
            if (request == FIONREAD && f.Placement == Placement.Stack)
            {
                if (arg == null) return -(int)Errno.EFAULT;
                if (f.Listening) return -(int)Errno.EINVAL;
                PollStack();
                var e = _stack.Available(f.Handle, out int bytes);
                if (e != Errno.Ok) return -(int)e;
                *(int*)arg = bytes;
                return 0;
            }
            if (request == SIOCATMARK && f.Placement == Placement.Stack && f.Kind == SocketKind.Tcp)
            {
                if (arg == null) return -(int)Errno.EFAULT;
                PollStack();
                var e = _stack.AtUrgentMark(f.Handle, out bool atMark);
                if (e != Errno.Ok) return -(int)e;
                *(int*)arg = atMark ? 1 : 0;
                return 0;
            }
            if (request == FIONREAD && f.Placement == Placement.Dual && f.Kind == SocketKind.Udp)
            {
                if (arg == null) return -(int)Errno.EFAULT;
                PollStack();
                if (_stack.Available(f.Handle, out int bytes) == Errno.Ok && bytes > 0)
                {
                    *(int*)arg = bytes;
                    return 0;
                }
            }
            if (Materialize(f) is < 0 and var failed) return failed;
            return Libc.Ioctl(fd, request, arg);
        }
    }

    // ---- names and options -------------------------------------------------------------------

    public int GetSockName(int fd, void* addr, uint* len) => NameCore(fd, addr, len, peer: false);
    public int GetPeerName(int fd, void* addr, uint* len) => NameCore(fd, addr, len, peer: true);

    private int NameCore(int fd, void* addr, uint* len, bool peer)
    {
        using (_lock.Hold())
        {
            var f = FileOf(fd);
            if (f is null || f.Placement != Placement.Stack)
            {
                if (f is not null && Materialize(f) is < 0 and var failed) return failed;
                return peer ? Libc.GetPeerName(fd, addr, len) : Libc.GetSockName(fd, addr, len);
            }
            if (addr == null || len == null) return -(int)Errno.EFAULT;
            if ((int)*len < 0) return -(int)Errno.EINVAL;
            Ipv4Endpoint ep;
            var e = peer ? _stack.GetRemoteEndpoint(f.Handle, out ep) : _stack.GetLocalEndpoint(f.Handle, out ep);
            if (e != Errno.Ok) return -(int)e;
            return WriteEndpoint(addr, len, ep);
        }
    }

    public int SetSockOpt(int fd, int level, int name, void* val, uint len)
    {
        using (_lock.Hold())
        {
            var f = FileOf(fd);
            if (f is null) return Libc.SetSockOpt(fd, level, name, val, len);
            if ((int)len < 0) return -(int)Errno.EINVAL;
            if (val == null && len > 0) return -(int)Errno.EFAULT;
            var value = new ReadOnlySpan<byte>(val, (int)len);
            if (f.Placement != Placement.Stack)
            {
                // Pending and dual: the kernel socket takes (and validates) it; the stack gets it too.
                if (Materialize(f) is < 0 and var failed) return failed;
                int r = Libc.SetSockOpt(fd, level, name, val, len);
                if (r < 0) return r;
                RecordTimeout(f, level, name, value);
                if (f.Placement == Placement.Pending) f.Options.Add((level, name, value.ToArray()));
                else _stack.SetOption(f.Handle, level, name, value);
                return 0;
            }
            if (level == SOL_SOCKET && name is SO_RCVTIMEO or SO_SNDTIMEO)
            {
                if (len < (uint)sizeof(TimeVal)) return -(int)Errno.EINVAL;
                var tv = *(TimeVal*)val;
                if (tv.Microseconds is < 0 or >= 1_000_000) return -33; // EDOM, as Linux answers an out-of-range tv_usec
                RecordTimeout(f, level, name, value);
                RoundTimeoutToKernelTicks(f, name);
                return 0;
            }
            if (level == SOL_SOCKET && name is SO_TYPE or SO_ERROR or SO_DOMAIN or SO_PROTOCOL or SO_ACCEPTCONN)
                return -(int)Errno.ENOPROTOOPT;
            return -(int)_stack.SetOption(f.Handle, level, name, value);
        }
    }

    private long _tickMicros = -1;

    /// <summary>The kernel keeps socket timeouts in jiffies and reports them back rounded up to one; so
    /// do we (the granularity is measured once on a scratch kernel socket). Caller holds the lock.</summary>
    private void RoundTimeoutToKernelTicks(SocketFile f, int name)
    {
        if (_tickMicros < 0)
        {
            _tickMicros = 1;
            int probe = Libc.Socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (probe >= 0)
            {
                var tv = new TimeVal { Microseconds = 1 };
                uint len = (uint)sizeof(TimeVal);
                if (Libc.SetSockOpt(probe, SOL_SOCKET, SO_RCVTIMEO, &tv, len) == 0
                    && Libc.GetSockOpt(probe, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0 && tv.Seconds == 0 && tv.Microseconds > 0)
                    _tickMicros = tv.Microseconds;
                Libc.Close(probe);
            }
        }
        ref long us = ref name == SO_RCVTIMEO ? ref f.ReceiveTimeoutMicros : ref f.SendTimeoutMicros;
        long seconds = us / 1_000_000, micros = us % 1_000_000;
        us = seconds * 1_000_000 + (micros + _tickMicros - 1) / _tickMicros * _tickMicros;
    }

    private static void RecordTimeout(SocketFile f, int level, int name, ReadOnlySpan<byte> value)
    {
        if (level != SOL_SOCKET || name is not (SO_RCVTIMEO or SO_SNDTIMEO) || value.Length < sizeof(TimeVal)) return;
        var tv = MemoryMarshal.Read<TimeVal>(value);
        long us = tv.Seconds < 0 ? 0 : tv.Seconds * 1_000_000 + tv.Microseconds;
        if (name == SO_RCVTIMEO) f.ReceiveTimeoutMicros = us;
        else f.SendTimeoutMicros = us;
    }

    public int GetSockOpt(int fd, int level, int name, void* val, uint* len)
    {
        using (_lock.Hold())
        {
            var f = FileOf(fd);
            if (f is null || f.Placement != Placement.Stack)
            {
                if (f is not null && Materialize(f) is < 0 and var failed) return failed;
                return Libc.GetSockOpt(fd, level, name, val, len);
            }
            if (len == null) return -(int)Errno.EFAULT;
            int room = (int)*len;
            if (room < 0) return -(int)Errno.EINVAL;
            if (val == null && room > 0) return -(int)Errno.EFAULT;
            if (level == SOL_SOCKET)
            {
                switch (name)
                {
                    case SO_TYPE: return PutInt(val, len, f.Kind == SocketKind.Tcp ? SOCK_STREAM : SOCK_DGRAM);
                    case SO_DOMAIN: return PutInt(val, len, AF_INET);
                    case SO_PROTOCOL: return PutInt(val, len, f.Protocol);
                    case SO_ACCEPTCONN: return PutInt(val, len, f.Listening ? 1 : 0);
                    case SO_ERROR:
                        PollStack();
                        return PutInt(val, len, (int)_stack.TakeError(f.Handle));
                    case SO_RCVTIMEO:
                    case SO_SNDTIMEO:
                    {
                        long us = name == SO_RCVTIMEO ? f.ReceiveTimeoutMicros : f.SendTimeoutMicros;
                        var tv = new TimeVal { Seconds = us / 1_000_000, Microseconds = us % 1_000_000 };
                        Buffer.MemoryCopy(&tv, val, room, Math.Min(room, sizeof(TimeVal)));
                        *len = (uint)Math.Min(room, sizeof(TimeVal));
                        return 0;
                    }
                }
            }
            var e = _stack.GetOption(f.Handle, level, name, new Span<byte>(val, room), out int written);
            if (e != Errno.Ok) return -(int)e;
            *len = (uint)written;
            return 0;
        }
    }

    private static int PutInt(void* val, uint* len, int value)
    {
        int room = (int)*len;
        Buffer.MemoryCopy(&value, val, room, Math.Min(room, sizeof(int)));
        *len = (uint)Math.Min(room, sizeof(int));
        return 0;
    }

    public int Shutdown(int fd, int how)
    {
        using (_lock.Hold())
        {
            var f = FileOf(fd);
            if (f is null || f.Placement == Placement.Pending)
            {
                if (f is not null && Materialize(f) is < 0 and var failed) return failed;
                return Libc.Shutdown(fd, how);
            }
            if (how is < 0 or > 2) return -(int)Errno.EINVAL;
            if (f.Placement == Placement.Dual)
            {
                int r = Libc.Shutdown(fd, how);
                _stack.Shutdown(f.Handle, (ShutdownHow)how);
                PollStack();
                return r;
            }
            var e = _stack.Shutdown(f.Handle, (ShutdownHow)how);
            PollStack();
            return -(int)e;
        }
    }

    /// <summary>
    /// The process is exiting (the shim calls this from atexit). Linux closes every fd of an exiting process and
    /// the kernel goes on delivering what its connections were sent (RFC 9293 §3.10.4: CLOSE leaves queued data to
    /// be sent); here the stack dies with the process, so exit does the same itself: every socket still held is
    /// closed (a FIN after its data, or a RST for unread data, as Linux), then the stack is polled until no closed
    /// connection owes its peer data or a FIN, or <paramref name="bound"/> passes (a peer that stopped reading
    /// or vanished); whatever is left then is lost. Returns whether everything was delivered.
    /// </summary>
    public bool FlushAtExit(TimeSpanMicros bound)
    {
        using (_lock.Hold())
        {
            for (int fd = 0; fd < _entries.Length; fd++)
                if (_entries[fd] is SocketFile) Forget(fd);
        }
        var start = _clock();
        while (true)
        {
            using (_lock.Hold())
            {
                PollStack();
                if (!_stack.HasUnfinishedOutput) return true;
            }
            var now = _clock();
            if ((now - start).Value >= bound.Value) return false;
            if ((now - start).Value > _policy.SpinMicros && _policy.SpinMicros >= 0) Thread.Sleep(_policy.BlockMillis);
        }
    }

    /// <summary>Diagnostics: how many fds the layer currently holds (stack, pending, dual sockets and epoll sets).
    /// Caller holds the lock (inside <see cref="Inspect"/>) or no other thread uses the layer (tests): the lock is
    /// not reentrant.</summary>
    public int HeldFds
    {
        get
        {
            int n = 0;
            foreach (var e in _entries) if (e is not null) n++;
            return n;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static int Fail(Errno e) => -(int)e;
}

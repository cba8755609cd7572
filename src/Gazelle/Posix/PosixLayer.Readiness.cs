using System.Numerics;
using System.Runtime.InteropServices;
using Gazelle.Sockets;
using Gazelle.Time;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Posix;

public sealed unsafe partial class PosixLayer
{
    private const long Forever = long.MaxValue;

    /// <summary>
    /// One blocking call's waiting: busy-polls (the caller polls the stack each round) for
    /// <see cref="PollPolicy.SpinMicros"/>, yielding the CPU every few rounds so a spinning waiter
    /// never starves a runnable thread on its core; then sleeps in the kernel wait for
    /// <see cref="PollPolicy.FirstSleepMicros"/>, doubling each round up to
    /// <see cref="PollPolicy.BlockMillis"/>. No NIC here can wake a sleeper (memif and af_packet expose no
    /// RX interrupt through ethdev), so the short first sleeps bound the latency a late packet sees
    /// while the doubling keeps an idle program near 0% CPU. Timeouts count from the first wait.
    /// </summary>
    private struct Waiter(PosixLayer layer)
    {
        private const int SpinRoundsPerYield = 16;
        private const int SpinRoundsPerKernelCheck = 8;
        /// <summary>
        /// A clock read (vDSO clock_gettime: 75 ns in a tight loop on these VMs, 30-35 ns within a poll loop by
        /// perf, a sixth of an empty round) sat in every round. So after a spin round that did not yield, the loop's next
        /// poll may take the time of the poll before it if that one was idle (<see cref="ISocketApi.LastPollIdle"/>),
        /// at most this many rounds in a row: the stack's time is then at most that many empty rounds old (no
        /// system call in between, each well under a microsecond; a preempted round makes it later, never
        /// earlier). A round that yields or sleeps, and the first poll of every call, read the clock.
        /// </summary>
        private const int TimeReuses = 3;
        private int _timeReuses;
        private bool _reuseTime;
        private Instant _start;
        private bool _started;
        private int _spinRounds;
        private long _sleepMicros;
        private long _polls = layer._polls;

        /// <summary>Decides the next round: -EAGAIN when <paramref name="timeoutMicros"/> (0 or
        /// <see cref="Forever"/> = none) has passed; else 0 with <paramref name="sleepMicros"/> = -1 (spin on)
        /// or the kernel wait to make now.</summary>
        public int Next(long timeoutMicros, out long sleepMicros)
        {
            sleepMicros = -1;
            // The caller polled the stack this round (each loop does, before it waits): that poll's time is
            // a fraction of a microsecond old, so the round costs one clock read, not two.
            long polls = layer._polls;
            var now = polls != _polls ? layer._polledAt : layer._clock();
            _polls = polls;
            if (!_started)
            {
                _start = now;
                _started = true;
                layer.SendAcksBeforeWaiting();
            }
            long elapsed = (now - _start).Value;
            bool bounded = timeoutMicros > 0 && timeoutMicros != Forever;
            if (bounded && elapsed >= timeoutMicros) return -(int)Errno.EAGAIN;
            var policy = layer._policy;
            if (policy.SpinMicros < 0 || elapsed < policy.SpinMicros)
            {
                if (++_spinRounds % SpinRoundsPerYield == 0)
                {
                    Thread.Yield();
                    _timeReuses = 0;
                }
                else if (++_timeReuses <= TimeReuses) _reuseTime = true;
                else _timeReuses = 0;
                return 0;
            }
            _timeReuses = 0;
            _spinRounds = 0; // sleeping: every round asks the kernel (see ChecksKernel)
            long longest = Math.Max(1, policy.BlockMillis * 1000L);
            _sleepMicros = _sleepMicros == 0 ? Math.Clamp(policy.FirstSleepMicros, 1, longest) : Math.Min(_sleepMicros * 2, longest);
            sleepMicros = _sleepMicros;
            if (bounded) sleepMicros = Math.Min(sleepMicros, timeoutMicros - elapsed);
            return 0;
        }

        /// <summary>Whether this round also asks the kernel about the call's kernel fds (a syscall):
        /// the first round and every few spin rounds; the stack, polled every round, costs no syscall.
        /// A kernel fd's event is seen at most a few microseconds late while spinning.</summary>
        public readonly bool ChecksKernel => _spinRounds % SpinRoundsPerKernelCheck == 0;

        /// <summary>Whether the loop's next poll may reuse the previous poll's time (<see cref="TimeReuses"/>); asking consumes it.</summary>
        public bool TakeTimeReuse()
        {
            bool r = _reuseTime;
            _reuseTime = false;
            return r;
        }

    }

    /// <summary>The program is about to wait for input (its call found nothing): no reply of its will carry the
    /// ACKs the stack holds for one (TcpLayer.AckSoonEnabled) before something arrives, so they go now.</summary>
    private void SendAcksBeforeWaiting()
    {
        if (!_stack.AcksOwed) return;
        using (_lock.Hold()) _stack.SendOwedAcks();
    }

    /// <summary>Readiness of a socket as EPOLL*/POLL* bits, <paramref name="kernel"/> the part its kernel
    /// side contributes. Caller holds the lock and has polled the stack.</summary>
    private uint ReadinessOf(SocketFile f, int fd, out uint kernel)
    {
        uint r = 0;
        kernel = 0;
        if (f.Handle.IsValid) r = (uint)_stack.GetReadiness(f.Handle);
        if (f.Placement != Placement.Stack)
        {
            PollFd p = new() { Fd = fd, Events = (short)(EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP) };
            if (Libc.Poll(&p, 1, 0) > 0) kernel = (ushort)p.Revents;
            if (f.Placement == Placement.Dual && f.Kind == SocketKind.Tcp) kernel &= ~(EPOLLOUT | EPOLLHUP); // a listener is never writable
            r |= kernel;
        }
        return r;
    }

    /// <summary>The kernel side of a pending or dual socket shows levels only: after the program consumed
    /// from it (accept, recv, send), a level that stays up must count as a new edge, or an arrival that
    /// came meanwhile would never be reported. Stack sockets need nothing: the stack counts arrivals.
    /// Caller holds the lock.</summary>
    private static void ResetEdges(SocketFile f, uint bits)
    {
        if (f.Placement == Placement.Stack) return;
        foreach (var it in f.Interests) it.KernelSeen &= ~bits;
    }

    /// <summary>Whether an edge-triggered registration has a new edge (Linux's ep_poll_callback queued it):
    /// ADD/MOD armed one, the stack counted an arrival of a kind it watches (data, FIN, connection, error:
    /// read side; send space after running out: write side), or its kernel side's readiness rose.
    /// Looking consumes the edge. Caller holds the lock.</summary>
    private bool TakeEdge(EpollInterest it, uint kernelNow)
    {
        bool edge = it.EdgeArmed;
        it.EdgeArmed = false;
        var f = it.File;
        if (f.Handle.IsValid)
        {
            var seen = _stack.GetEvents(f.Handle);
            bool watchesOut = (it.Events & EPOLLOUT) != 0;
            bool watchesIn = (it.Events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP)) != 0 || !watchesOut;
            if ((watchesIn && seen.Read != it.SeenEvents.Read) || (watchesOut && seen.Write != it.SeenEvents.Write)) edge = true;
            it.SeenEvents = seen;
        }
        if (f.Placement != Placement.Stack)
        {
            if ((kernelNow & ~it.KernelSeen) != 0) edge = true;
            it.KernelSeen = kernelNow;
        }
        return edge;
    }

    // ---- epoll -------------------------------------------------------------------------------

    /// <summary>The shim's count of kernel fds per epoll (null without a shim): see the constructor.</summary>
    private readonly int* _epollKernelFds;

    /// <summary>
    /// Whether the epoll at <paramref name="epfd"/> may hold kernel fds. epoll_wait over a set of stack sockets asked
    /// the kernel with a zero-timeout epoll_pwait at every call (~0.55 system calls per request of wrk -c32 with
    /// Connection: close; nginx's set holds its notification eventfd, so it keeps asking) in case a kernel fd was
    /// ready too (Linux reports both in one call:
    /// EpollReportsStackSocketsAndKernelFdsTogether). Only an epoll whose every kernel registration the shim and
    /// the layer counted (<see cref="KernelEpollCtl"/>) and found none may skip it: a time-based skip missed that.
    /// </summary>
    private bool MayHoldKernelFds(int epfd) =>
        _epollKernelFds == null || (uint)epfd >= (uint)_table.Limit || Volatile.Read(ref _epollKernelFds[epfd]) != 1;

    /// <summary>
    /// How often epoll_wait asks the kernel about a set's kernel fds (a zero-timeout epoll_pwait) while the stack keeps
    /// giving it events: every this-many calls, and at every call after an ask found a kernel fd ready, or when the
    /// stack has nothing (so before any wait: a blocking call sees both). nginx's set holds its notification eventfd,
    /// and that ask was ~1.1 system calls per Connection: close request (0.2-0.4 us each on these VMs). A ready kernel
    /// fd is so reported at most this many calls late while stack sockets are ready, where Linux reports both in one
    /// call; kernel-bypass stacks ration the same way (libvma's VMA_SELECT_POLL_OS_RATIO, default 10).
    /// </summary>
    public const int KernelCheckEvery = 8;

    /// <summary>epoll_ctl of a kernel fd in a kernel epoll, counted as the shim counts its own (shim/gazelle_abi.h): an ADD
    /// before the kernel has it, a DEL once it is gone. Caller holds the lock.</summary>
    private int KernelEpollCtl(int epfd, int op, int fd, EpollEvent* ev)
    {
        if (op == EPOLL_CTL_ADD) CountEpollKernelFd(epfd, 1);
        int r = Libc.EpollCtl(epfd, op, fd, ev);
        if ((op == EPOLL_CTL_ADD && r < 0) || (op == EPOLL_CTL_DEL && r == 0)) CountEpollKernelFd(epfd, -1);
        return r;
    }

    private void CountEpollKernelFd(int epfd, int delta)
    {
        if (_epollKernelFds == null || (uint)epfd >= (uint)_table.Limit) return;
        ref int count = ref _epollKernelFds[epfd];
        int v = Volatile.Read(ref count);
        while (v > 0)
        {
            int seen = Interlocked.CompareExchange(ref count, v + delta, v);
            if (seen == v) return;
            v = seen;
        }
    }

    public int EpollCtl(int epfd, int op, int fd, EpollEvent* ev)
    {
        using (_lock.Hold())
        {
            _eventTick++; // a registration added or modified must be looked at (CollectEpoll)
            if (_table[fd] == FdKind.Pooled || _table[epfd] == FdKind.Pooled) return -(int)Errno.EBADF; // closed, for the program
            var target = FileOf(fd);
            var ep = EpollOf(epfd);
            if (target is null || (ep is null && (FileOf(epfd) is not null || !Libc2.IsEpoll(epfd))))
                return KernelEpollCtl(epfd, op, fd, ev); // a kernel fd, or not an epoll: the kernel's answer
            if (epfd == fd) return -(int)Errno.EINVAL;
            // A pending socket's kernel side is watched by polling it (ReadinessOf): it must exist.
            if (op is EPOLL_CTL_ADD or EPOLL_CTL_MOD && Materialize(target) is < 0 and var failed) return failed;
            if (ep is null)
            {
                ep = new EpollFile();
                ep.Fds.Add(epfd);
                _entries[epfd] = ep;
                _table[epfd] = FdKind.Epoll;
            }
            var interest = target.InterestOf(ep, fd);
            switch (op)
            {
                case EPOLL_CTL_ADD:
                    if (ev == null) return -(int)Errno.EFAULT;
                    if (interest is not null) return -(int)Errno.EEXIST;
                    interest = (_spareInterests.TryPop(out var spare) ? spare : new EpollInterest()).Reset(ep, fd, target, ev->Events, ev->Data);
                    if (target.Handle.IsValid) interest.SeenEvents = _stack.GetEvents(target.Handle);
                    interest.Position = ep.Interests.Count;
                    ep.Interests.Add(interest);
                    target.Interests.Add(interest);
                    return 0;
                case EPOLL_CTL_MOD:
                    if (ev == null) return -(int)Errno.EFAULT;
                    if (interest is null) return -(int)Errno.ENOENT;
                    if ((ev->Events & EPOLLEXCLUSIVE) != 0 || (interest.Events & EPOLLEXCLUSIVE) != 0) return -(int)Errno.EINVAL;
                    interest.Events = ev->Events;
                    interest.Data = ev->Data;
                    interest.Disarmed = false;
                    interest.EdgeArmed = true;
                    interest.KernelSeen = 0;
                    if (target.Handle.IsValid) interest.SeenEvents = _stack.GetEvents(target.Handle);
                    return 0;
                case EPOLL_CTL_DEL:
                    if (interest is null) return -(int)Errno.ENOENT;
                    RemoveInterest(interest);
                    target.ForgetInterest(interest);
                    SpareInterest(interest);
                    return 0;
                default:
                    return -(int)Errno.EINVAL;
            }
        }
    }

    /// <summary>Registrations deleted by EPOLL_CTL_DEL or dropped by their socket's close, for the next ADD (no garbage per request for event loops
    /// that delete and add around every request). Caller holds the lock.</summary>
    private readonly Stack<EpollInterest> _spareInterests = new();
    private const int MaxSpareInterests = 1024;

    /// <summary>Keeps a registration that left its epoll and its socket for the next ADD. Caller holds the lock.</summary>
    private void SpareInterest(EpollInterest interest)
    {
        if (_spareInterests.Count >= MaxSpareInterests) return;
        interest.Clear();
        _spareInterests.Push(interest);
    }

    /// <summary>Moves whenever the stack could not say which sockets had events: every registration is looked at.</summary>
    private long _allGeneration;
    /// <summary>Moves on every journaled event and every epoll registration change (<see cref="EpollFile.SeenTick"/>).</summary>
    private long _eventTick;
    private readonly SocketHandle[] _evented = new SocketHandle[2 * EventJournal.Capacity];

    /// <summary>Moves the event generation of each socket the stack journaled an event for since the last
    /// call (or, when it cannot tell, of all of them). Caller holds the lock and has polled the stack.</summary>
    private void NoteStackEvents()
    {
        if (!_stack.TakeEventedSockets(_evented, out int n))
        {
            _allGeneration++;
            _eventTick++;
            return;
        }
        if (n > 0) _eventTick++;
        for (int i = 0; i < n; i++)
            if (_byHandle.TryGetValue(_evented[i].Value, out var f)) f.EventGeneration++;
    }

    /// <summary>
    /// Collects ready stack registrations into <paramref name="events"/>. Caller holds the lock.
    /// A stack socket's readiness only rises on an event the stack journals (data, a FIN, an RST, a
    /// connection, send space after running out, a state change): so, as Linux's ready list, a registration
    /// is looked at only when its socket had an event since it was last looked at, when ADD/MOD armed it, or
    /// (level-triggered) while it was ready the last time; the rest cost a few field reads. With 50 redis
    /// connections asking every socket's readiness took a fifth of each process's time (perf).
    /// Pending and dual sockets, whose kernel side has no journal, are always looked at.
    /// </summary>
    private int CollectEpoll(EpollFile ep, EpollEvent* events, int max)
    {
        int count = ep.Interests.Count;
        if (count == 0) return 0;
        NoteStackEvents();
        // Nothing journaled, registered or modified since a look that left nothing to look at again: no
        // registration can have become ready (a waiting epoll_wait's spin rounds cost this check alone).
        if (!ep.MustLook && ep.SeenTick == _eventTick) return 0;
        ep.SeenTick = _eventTick;
        bool mustLook = false;
        int start = ep.NextStart % count;
        ep.NextStart = start + 1;
        int n = 0, j = 0;
        for (int k = start; j < count && n < max; j++, k = k + 1 == count ? 0 : k + 1)
        {
            var it = ep.Interests[k];
            if (it.Disarmed) continue;
            var f = it.File;
            bool edgeTriggered = (it.Events & EPOLLET) != 0;
            if (f.Placement != Placement.Stack) mustLook = true; // its kernel side keeps no journal
            else if (!it.EdgeArmed && (edgeTriggered || !it.WasReady)
                && it.SeenGeneration == f.EventGeneration && it.SeenAllGeneration == _allGeneration)
                continue; // nothing happened to it since it was last looked at
            it.SeenGeneration = f.EventGeneration;
            it.SeenAllGeneration = _allGeneration;
            uint want = (it.Events & (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP)) | EPOLLERR | EPOLLHUP;
            uint hit = ReadinessOf(f, it.Fd, out uint kernel) & want;
            it.WasReady = hit != 0;
            if (!edgeTriggered)
            {
                it.EdgeArmed = false; // level-triggered: ADD/MOD's look is done
                mustLook |= it.WasReady; // reported again at every call until consumed
            }
            // Edge-triggered: only after an edge, then with the whole readiness of the moment (as Linux).
            if (edgeTriggered && !TakeEdge(it, kernel & want)) continue;
            if (hit == 0) continue;
            events[n].Events = hit;
            events[n].Data = it.Data;
            n++;
            if ((it.Events & EPOLLONESHOT) != 0) it.Disarmed = true;
        }
        ep.MustLook = mustLook || j < count; // a full events array left registrations unvisited
        return n;
    }

    public int EpollWait(int epfd, EpollEvent* events, int max, int timeoutMs, void* sigmask)
    {
        ulong* own = stackalloc ulong[SigSetWords];
        var signals = sigmask != null ? CallSignals.Hold(sigmask) : OwnSignals(own);
        try
        {
            return EpollWaitCore(epfd, events, max, timeoutMs, sigmask, ref signals);
        }
        finally
        {
            signals.Restore();
        }
    }

    /// <summary>The signals of a call that takes no mask: counted through the shim when it counts them,
    /// else held with the thread's own mask in <paramref name="own"/>.</summary>
    private CallSignals OwnSignals(ulong* own) =>
        _signalCountsOfThread != null ? CallSignals.Counted(_signalCountsOfThread) : CallSignals.Own(own);

    private int EpollWaitCore(int epfd, EpollEvent* events, int max, int timeoutMs, void* sigmask, ref CallSignals signals)
    {
        if (max <= 0) return -(int)Errno.EINVAL;
        if (events == null) return -(int)Errno.EFAULT;
        long timeout = timeoutMs < 0 ? Forever : timeoutMs * 1000L;
        var wait = new Waiter(this);
        while (true)
        {
            int n, k = 0;
            bool mayKernel = wait.ChecksKernel && MayHoldKernelFds(epfd);
            // A kernel fd's turn (KernelCheckEvery): asked before the stack, so a full events array cannot skip it.
            // The set's counters are read without the lock: a stale look only moves the turn by a call.
            bool due = mayKernel && EpollOf(epfd) is { } seen && (seen.KernelReady || seen.KernelSkips >= KernelCheckEvery - 1);
            if (due)
            {
                k = Libc.EpollPWait(epfd, events, max, 0, null);
                if (k < 0) return k;
            }
            using (_lock.Hold())
            {
                var ep = EpollOf(epfd);
                if (ep is null) n = -1;
                else
                {
                    PollStack(wait.TakeTimeReuse());
                    n = k < max ? k + CollectEpoll(ep, events + k, max - k) : k;
                    if (due) { _kernelReadinessChecks++; ep.KernelSkips = 0; ep.KernelReady = k > 0; }
                    else if (mayKernel && n > 0) ep.KernelSkips++;
                }
            }
            if (n < 0) return Libc.EpollPWait(epfd, events, max, timeoutMs, sigmask);
            if (n == 0 && mayKernel && !due)
            {
                // Nothing on the stack: the kernel is asked before the call waits (or returns), as every round did.
                _kernelReadinessChecks++;
                k = Libc.EpollPWait(epfd, events, max, 0, null);
                if (k < 0) return k;
                n = k;
                if (EpollOf(epfd) is { } ep) { ep.KernelSkips = 0; ep.KernelReady = k > 0; }
            }
            if (n > 0 || timeoutMs == 0) return n; // Linux's epoll_pwait(0) does not look at signals
            signals.HoldForWait();
            if (wait.ChecksKernel && signals.Interrupted() is < 0 and var intr) return intr; // a syscall: as often as kernel fds
            if (wait.Next(timeout, out long us) < 0) return 0;
            if (us >= 0)
            {
                var ts = TimeSpec.FromMicros(us);
                int woke = Libc.EpollPWait2(epfd, events, max, &ts, signals.WaitMask(sigmask));
                if (woke != 0) return woke; // kernel events, or EINTR
            }
        }
    }

    // ---- poll / ppoll ------------------------------------------------------------------------

    public int Poll(PollFd* fds, nuint n, int timeoutMs)
    {
        ulong* own = stackalloc ulong[SigSetWords];
        var signals = OwnSignals(own);
        try
        {
            return PollCore(fds, n, timeoutMs < 0 ? Forever : timeoutMs * 1000L, null, ref signals);
        }
        finally
        {
            signals.Restore();
        }
    }

    public int PPoll(PollFd* fds, nuint n, TimeSpec* timeout, void* sigmask)
    {
        if (timeout != null && (timeout->Seconds < 0 || timeout->Nanoseconds is < 0 or >= 1_000_000_000)) return -(int)Errno.EINVAL;
        long us = timeout == null ? Forever : timeout->Seconds * 1_000_000 + (timeout->Nanoseconds + 999) / 1000;
        var signals = CallSignals.Hold(sigmask);
        try
        {
            return PollCore(fds, n, us, sigmask, ref signals);
        }
        finally
        {
            signals.Restore();
        }
    }

    private static short ToPollBits(uint readiness, short events)
    {
        uint r = readiness;
        if ((r & EPOLLIN) != 0) r |= 0x40;   // POLLRDNORM
        if ((r & EPOLLOUT) != 0) r |= 0x100; // POLLWRNORM
        return (short)(r & ((uint)(ushort)events | EPOLLERR | EPOLLHUP));
    }

    private int PollCore(PollFd* fds, nuint n, long timeoutMicros, void* sigmask, ref CallSignals signals)
    {
        if (n > 1024 * 1024) return -(int)Errno.EINVAL;
        if (n > 0 && fds == null) return -(int)Errno.EFAULT;
        int count = (int)n;
        // The kernel's part: every fd that is not a stack socket (pending and dual ones included).
        PollFd* small = stackalloc PollFd[64];
        int* smallMap = stackalloc int[64];
        PollFd* kernel = count <= 64 ? small : (PollFd*)NativeMemory.Alloc((nuint)count, (nuint)sizeof(PollFd));
        int* map = count <= 64 ? smallMap : (int*)NativeMemory.Alloc((nuint)count, sizeof(int));
        try
        {
            var wait = new Waiter(this);
            while (true)
            {
                int m = 0, ready = 0;
                using (_lock.Hold())
                {
                    PollStack(wait.TakeTimeReuse());
                    for (int i = 0; i < count; i++)
                    {
                        fds[i].Revents = 0;
                        if (fds[i].Fd >= 0 && _table[fds[i].Fd] == FdKind.Pooled)
                        {
                            fds[i].Revents = POLLNVAL; // a closed fd, for the program
                            continue;
                        }
                        var f = fds[i].Fd >= 0 ? FileOf(fds[i].Fd) : null;
                        if (f is { Lazy: true }) Materialize(f); // its kernel side answers below
                        if (f is not null && f.Placement != Placement.Pending)
                            fds[i].Revents = ToPollBits(f.Handle.IsValid ? (uint)_stack.GetReadiness(f.Handle) : 0, fds[i].Events);
                        if (f is null || f.Placement != Placement.Stack)
                        {
                            kernel[m] = fds[i];
                            kernel[m].Revents = 0;
                            map[m++] = i;
                        }
                    }
                }
                if (m > 0 && wait.ChecksKernel)
                {
                    TimeSpec zero = default;
                    _kernelReadinessChecks++;
                    int k = Libc.PPoll(kernel, (nuint)m, &zero, null);
                    if (k < 0) return k;
                    for (int j = 0; j < m; j++) fds[map[j]].Revents |= kernel[j].Revents;
                }
                for (int i = 0; i < count; i++) if (fds[i].Revents != 0) ready++;
                if (ready > 0) return ready;
                if (timeoutMicros != 0) signals.HoldForWait();
                if (wait.ChecksKernel && signals.Interrupted() is < 0 and var intr) return intr;
                if (timeoutMicros == 0) return 0;
                if (wait.Next(timeoutMicros, out long us) < 0) return 0;
                if (us >= 0)
                {
                    var ts = TimeSpec.FromMicros(us);
                    int k = Libc.PPoll(kernel, (nuint)m, &ts, signals.WaitMask(sigmask));
                    if (k == -(int)Errno.EINTR) return k;
                }
            }
        }
        finally
        {
            if (count > 64)
            {
                NativeMemory.Free(kernel);
                NativeMemory.Free(map);
            }
        }
    }

    // ---- select / pselect --------------------------------------------------------------------

    public int Select(int nfds, ulong* r, ulong* w, ulong* e, TimeVal* timeout)
    {
        if (timeout != null && (timeout->Seconds < 0 || timeout->Microseconds < 0)) return -(int)Errno.EINVAL;
        long us = timeout == null ? Forever : timeout->Seconds * 1_000_000 + timeout->Microseconds;
        var start = _clock();
        ulong* own = stackalloc ulong[SigSetWords];
        var signals = OwnSignals(own);
        int result;
        try
        {
            result = SelectCore(nfds, r, w, e, us, null, ref signals);
        }
        finally
        {
            signals.Restore();
        }
        if (timeout != null && result >= 0)
        {
            // Linux writes back the time not slept.
            long left = Math.Max(0, us - (_clock() - start).Value);
            timeout->Seconds = left / 1_000_000;
            timeout->Microseconds = left % 1_000_000;
        }
        return result;
    }

    public int PSelect(int nfds, ulong* r, ulong* w, ulong* e, TimeSpec* timeout, void* sigmask)
    {
        if (timeout != null && (timeout->Seconds < 0 || timeout->Nanoseconds is < 0 or >= 1_000_000_000)) return -(int)Errno.EINVAL;
        long us = timeout == null ? Forever : timeout->Seconds * 1_000_000 + (timeout->Nanoseconds + 999) / 1000;
        var signals = CallSignals.Hold(sigmask);
        try
        {
            return SelectCore(nfds, r, w, e, us, sigmask, ref signals);
        }
        finally
        {
            signals.Restore();
        }
    }

    private int SelectCore(int nfds, ulong* r, ulong* w, ulong* e, long timeoutMicros, void* sigmask, ref CallSignals signals)
    {
        if (nfds < 0) return -(int)Errno.EINVAL;
        int limit = Math.Min(nfds, FD_SETSIZE);
        const int Words = FD_SETSIZE / 64;
        ulong* input = stackalloc ulong[3 * Words];
        ulong* kernel = stackalloc ulong[3 * Words];
        ulong* stack = stackalloc ulong[3 * Words];
        ulong** user = stackalloc ulong*[3] { r, w, e };
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < Words; i++) input[s * Words + i] = user[s] != null && i * 64 < limit ? user[s][i] : 0;
        // Bits past nfds are not the caller's question.
        if (limit % 64 != 0)
            for (int s = 0; s < 3; s++) input[s * Words + limit / 64] &= (1UL << (limit % 64)) - 1;
        var wait = new Waiter(this);
        while (true)
        {
            new Span<ulong>(kernel, 3 * Words).Clear();
            new Span<ulong>(stack, 3 * Words).Clear();
            using (_lock.Hold())
            {
                PollStack(wait.TakeTimeReuse());
                for (int fd = 0; fd < limit; fd++)
                {
                    int word = fd / 64;
                    ulong bit = 1UL << (fd % 64);
                    bool any = ((input[word] | input[Words + word] | input[2 * Words + word]) & bit) != 0;
                    if (!any) continue;
                    if (_table[fd] == FdKind.Pooled) return -(int)Errno.EBADF; // a closed fd, for the program
                    var f = FileOf(fd);
                    if (f is { Lazy: true }) Materialize(f); // its kernel side answers below
                    if (f is null || f.Placement != Placement.Stack)
                        for (int s = 0; s < 3; s++) kernel[s * Words + word] |= input[s * Words + word] & bit;
                    if (f is null || f.Placement == Placement.Pending || !f.Handle.IsValid) continue;
                    uint ready = (uint)_stack.GetReadiness(f.Handle);
                    if ((ready & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) stack[word] |= input[word] & bit;
                    if ((ready & (EPOLLOUT | EPOLLERR)) != 0) stack[Words + word] |= input[Words + word] & bit;
                    if ((ready & EPOLLPRI) != 0) stack[2 * Words + word] |= input[2 * Words + word] & bit;
                }
            }
            // Only a set with a kernel fd asks the kernel: iperf3's select on its two stack sockets made a
            // pselect syscall with empty sets at every call (the first round always checks).
            bool anyKernel = false;
            for (int i = 0; i < 3 * Words; i++) anyKernel |= kernel[i] != 0;
            if (anyKernel && wait.ChecksKernel)
            {
                TimeSpec zero = default;
                _kernelReadinessChecks++;
                int k0 = Libc.PSelect(limit, r != null ? kernel : null, w != null ? kernel + Words : null, e != null ? kernel + 2 * Words : null, &zero, null);
                if (k0 < 0) return k0;
            }
            else new Span<ulong>(kernel, 3 * Words).Clear();
            int k;
            int count = 0;
            for (int i = 0; i < 3 * Words; i++)
            {
                stack[i] |= kernel[i];
                count += BitOperations.PopCount(stack[i]);
            }
            if (count == 0 && timeoutMicros != 0) signals.HoldForWait();
            if (count == 0 && wait.ChecksKernel && signals.Interrupted() is < 0 and var intr) return intr; // the sets stay as given
            if (count > 0 || timeoutMicros == 0 || wait.Next(timeoutMicros, out long us) < 0)
            {
                for (int s = 0; s < 3; s++)
                    if (user[s] != null)
                        for (int i = 0; i < Words && i * 64 < limit; i++) user[s][i] = stack[s * Words + i];
                return count;
            }
            if (us >= 0)
            {
                for (int i = 0; i < 3 * Words; i++) kernel[i] = input[i];
                for (int fd = 0; fd < limit; fd++)
                    if (FileOf(fd) is { Placement: Placement.Stack })
                        for (int s = 0; s < 3; s++) kernel[s * Words + fd / 64] &= ~(1UL << (fd % 64));
                var ts = TimeSpec.FromMicros(us);
                k = Libc.PSelect(limit, r != null ? kernel : null, w != null ? kernel + Words : null, e != null ? kernel + 2 * Words : null, &ts, signals.WaitMask(sigmask));
                if (k == -(int)Errno.EINTR) return k;
            }
        }
    }
}

using Gazelle.Sockets;
using Gazelle.Time;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Posix;

/// <summary>
/// Datagram batching with a flush guarantee. Handing every 64-byte datagram to the device alone cost a
/// quarter of a sendto (the device call, memif's ring indices shared with the peer's core, the buffer
/// bookkeeping; perf on sockperf's UDP throughput client), so with <see cref="PollPolicy.DatagramFlushMicros"/>
/// set the stack keeps a datagram's frame in its transmit burst (<see cref="ISocketApi.BatchDatagrams"/>) and it
/// leaves with the frames after it. A held frame must not wait on the program: it may send and then block where
/// the layer never sees it (nanosleep, a futex, a kernel fd, a long computation). So a frame leaves at the first
/// of: the burst is full; the next poll of the stack (every 32nd send, every receive, wait or epoll round);
/// any stack call that sends (TCP, ICMP); or, whatever the program does meanwhile, the layer's flush thread,
/// which looks every <see cref="PollPolicy.DatagramFlushMicros"/> and flushes a batch it saw held the look
/// before with no poll of the stack in between (a poll flushes; so nothing is held longer than about twice that,
/// plus the scheduler's delay). The thread starts at
/// the first held frame (or at once as the keeper, <see cref="StartKeeper"/>) and parks after
/// <see cref="ParkAfterIdleRounds"/> looks without one (waking only once a keeper period).
/// Not done: flushing in the shim before each call it sends to libc (so a write to a pipe could never overtake a
/// held datagram). Tried: the stack's own threads (this one, the keeper) reach the shim's hooks through DPDK's
/// af_packet driver (its sendto kick), and the shim calling back into the stack from a managed thread aborted
/// the runtime ("attempted to call a UnmanagedCallersOnly method from managed code").
/// </summary>
public sealed unsafe partial class PosixLayer
{
    /// <summary>Looks without a held frame after which the flush thread parks until the next held frame
    /// (about 100 ms at the default 100 µs period): an idle program pays only the keeper's wake-ups.</summary>
    private const int ParkAfterIdleRounds = 1000;

    /// <summary>Number of the batch held in the stack's transmit burst, 0 when none is (set under the lock).</summary>
    private int _heldBatch;
    private int _batchNumbers;
    private Thread? _flusher;
    private readonly object _park = new();
    private bool _flusherParked;
    private volatile bool _flusherStop;

    /// <summary>Frames the flush thread sent (a batch the program left held for a whole period).</summary>
    public long FlushThreadFlushes => Volatile.Read(ref _flushThreadFlushes);
    private long _flushThreadFlushes;

    /// <summary>After a datagram send: notes whether the stack holds frames, and makes sure the flush thread
    /// will look. Caller holds the lock.</summary>
    private void NoteHeldOutput()
    {
        if (!_stack.OutputPending)
        {
            _heldBatch = 0;
            return;
        }
        if (_heldBatch != 0) return;
        int n = ++_batchNumbers;
        if (n == 0) n = ++_batchNumbers;
        Volatile.Write(ref _heldBatch, n);
        if (_flusher is null)
        {
            StartFlusher();
            return;
        }
        // Pairs with the parking thread's barrier: either it sees the held batch or we see it parked.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _flusherParked))
        {
            lock (_park) Monitor.Pulse(_park);
        }
    }

    private void StartFlusher()
    {
        _flusher = new Thread(BackgroundLoop) { IsBackground = true, Name = "gazelle-keeper" };
        _flusher.Start();
    }

    /// <summary>Starts the layer's background thread now (the preload, with a keeper period): a program that
    /// never sends a datagram needs it as the keeper. Idempotent.</summary>
    public void StartKeeper()
    {
        using (_lock.Hold())
        {
            if (_flusher is null) StartFlusher();
        }
    }

    /// <summary>
    /// The layer's one background thread, with two duties. Flusher: while datagrams are batched it looks every
    /// <see cref="PollPolicy.DatagramFlushMicros"/> and flushes a batch it saw held the look before. Keeper
    /// (<see cref="PollPolicy.KeeperMillis"/> above 0): whenever no program thread has polled the stack for that
    /// long, it polls (<see cref="KeepUp"/>). With nothing held for <see cref="ParkAfterIdleRounds"/> looks it
    /// parks: until the next held batch, waking once a keeper period meanwhile.
    /// </summary>
    private void BackgroundLoop()
    {
        BlockProgramSignals();
        try
        {
            RunBackground();
        }
        catch (Exception e)
        {
            // An exception leaving a thread would end the program. Without the thread nothing may be held: the
            // program's own calls send each datagram again, and the stack runs in them as before.
            Console.Error.WriteLine($"gazelle: the keeper thread stopped: {e.Message}");
            using (_lock.Hold())
            {
                _stack.BatchDatagrams = false;
                _stack.FlushOutput();
                _heldBatch = 0;
            }
        }
    }

    private void RunBackground()
    {
        var period = TimeSpec.FromMicros(Math.Max(1, _policy.DatagramFlushMicros));
        var keeperIdle = TimeSpanMicros.FromMilliseconds(_policy.KeeperMillis);
        bool keeping = _policy.KeeperMillis > 0;
        int seen = 0, idle = 0;
        long seenPolls = 0;
        while (!_flusherStop)
        {
            if (!_batching)
            {
                Park(keeperIdle);
                continue;
            }
            var ts = period;
            Libc.PPoll(null, 0, &ts, null);
            int held = Volatile.Read(ref _heldBatch);
            if (held == 0)
            {
                seen = 0;
                if (keeping) KeepUp(keeperIdle); // one clock read while the program polls
                if (++idle >= ParkAfterIdleRounds)
                {
                    idle = 0;
                    Park(keeperIdle);
                }
                continue;
            }
            idle = 0;
            // A program thread that polled since the last look flushed the link itself (a sender waiting for room in a
            // full device polls all the time: the thread's flush only took the lock from it): look again next period.
            long polls = Volatile.Read(ref _polls);
            if (held != seen || polls != seenPolls)
            {
                seen = held; // held since at most one period: give the program that period to add to it
                seenPolls = polls;
                continue;
            }
            using (_lock.Hold())
            {
                if (_heldBatch == held)
                {
                    _stack.FlushOutput();
                    _heldBatch = 0;
                    Interlocked.Increment(ref _flushThreadFlushes);
                }
            }
            seen = 0;
        }
    }

    /// <summary>Waits for a held batch (or the stop); with a keeper period, keeps the stack going once a period
    /// meanwhile (outside the park lock: <see cref="NoteHeldOutput"/> takes it under the layer's lock).</summary>
    private void Park(TimeSpanMicros keeperIdle)
    {
        int keeperMs = _policy.KeeperMillis;
        while (true)
        {
            bool timedOut = false;
            lock (_park)
            {
                Volatile.Write(ref _flusherParked, true);
                Interlocked.MemoryBarrier();
                while (Volatile.Read(ref _heldBatch) == 0 && !_flusherStop && !timedOut)
                {
                    if (keeperMs > 0) timedOut = !Monitor.Wait(_park, keeperMs);
                    else Monitor.Wait(_park);
                }
                Volatile.Write(ref _flusherParked, false);
            }
            if (!timedOut) return;
            KeepUp(keeperIdle);
        }
    }

    private void StopFlusher()
    {
        _flusherStop = true;
        lock (_park) Monitor.Pulse(_park);
    }

    /// <summary>The flush thread takes none of the program's signals (they belong to the program's own threads,
    /// as the shim arranges for the runtime's threads); the runtime's own (faults, SIGRTMIN) stay open.</summary>
    private static void BlockProgramSignals()
    {
        // Signals 1..64 as bits (n - 1): SIGILL 4, SIGTRAP 5, SIGABRT 6, SIGBUS 7, SIGFPE 8, SIGSEGV 11,
        // SIGSYS 31, SIGRTMIN 34 stay open.
        const ulong Open = (1UL << 3) | (1UL << 4) | (1UL << 5) | (1UL << 6) | (1UL << 7) | (1UL << 10) | (1UL << 30) | (1UL << 33);
        ulong* set = stackalloc ulong[SigSetWords];
        new Span<ulong>(set, SigSetWords).Clear();
        set[0] = ~Open;
        Libc2.PthreadSigmask(SIG_BLOCK, set, null);
    }
}

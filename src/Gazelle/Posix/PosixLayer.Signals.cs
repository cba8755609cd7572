using System.Runtime.InteropServices;
using Gazelle.Sockets;
using Gazelle.Time;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Posix;

/// <summary>
/// Counts kept per thread by the preload shim's signal trampoline (shim/gazelle_abi.h, struct
/// gz_signal_counts), in one word so that one read sees both: the low 32 bits count the program's
/// handlers the thread ran, the high 32 bits those installed without SA_RESTART. Written only by the
/// thread itself, inside its handlers (an atomic add: handlers may nest).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct SignalCounts
{
    public ulong Packed;

    public readonly uint Interrupting => (uint)(Packed >> 32);
}

public sealed unsafe partial class PosixLayer
{
    /// <summary>
    /// The wait of a blocking socket call (accept, connect, recv*, send*) on one socket: rounds as
    /// <see cref="Waiter"/>, and signals as Linux treats them (signal(7)): a handler installed with
    /// SA_RESTART restarts the call (it goes on waiting) unless the socket has a timeout
    /// (SO_RCVTIMEO/SO_SNDTIMEO), any other handler ends it with EINTR, an ignored signal does neither.
    /// The shim counts the handlers each thread runs (<see cref="SignalCounts"/>); a round compares the
    /// counts with those of the call's first round: two memory reads, no system call, so a call that
    /// waits a few microseconds pays nothing for it. Handlers run as the kernel delivers them, in a spin
    /// round or during a kernel sleep (which they cut short).
    /// </summary>
    private struct BlockingWait(PosixLayer layer)
    {
        private Waiter _rounds = new(layer);
        private SignalCounts* _counts;
        private SignalCounts _seen;

        /// <summary>Whether the call's next poll may reuse the previous poll's time (<see cref="Waiter.TakeTimeReuse"/>).</summary>
        public bool TakeTimeReuse() => _rounds.TakeTimeReuse();

        /// <summary>Waits one round; a dual socket's kernel side is watched through
        /// <paramref name="kernelFd"/>. Returns 0, -EAGAIN (timed out) or -EINTR.</summary>
        public int Wait(long timeoutMicros, int kernelFd, uint events)
        {
            var counts = layer._signalCountsOfThread;
            if (counts != null)
            {
                if (_counts == null)
                {
                    _counts = counts();
                    _seen.Packed = Volatile.Read(ref _counts->Packed);
                }
                else if (Volatile.Read(ref _counts->Packed) is var packed && packed != _seen.Packed)
                {
                    var now = new SignalCounts { Packed = packed };
                    bool restartable = timeoutMicros == 0 || timeoutMicros == Forever;
                    if (!restartable || now.Interrupting != _seen.Interrupting) return -(int)Errno.EINTR;
                    _seen = now;
                }
            }
            int r = _rounds.Next(timeoutMicros, out long us);
            if (r < 0 || us < 0) return r;
            PollFd p = new() { Fd = kernelFd, Events = (short)events };
            var ts = TimeSpec.FromMicros(us);
            r = Libc.PPoll(kernelFd >= 0 ? &p : null, kernelFd >= 0 ? 1u : 0u, &ts, null);
            // With the shim's counts, a handler that cut the sleep short is judged next round.
            return r == -(int)Errno.EINTR && counts == null ? r : 0;
        }
    }

    /// <summary>
    /// The signal mask argument of ppoll, pselect and epoll_pwait, in force for the whole call as on
    /// Linux, busy-polling included. While the call polls the stack, every signal a program can catch is
    /// held pending, so no handler runs unseen between two looks; each round then asks the kernel, under
    /// the caller's mask, whether one it lets through is pending (<see cref="Interrupted"/>): the kernel
    /// runs the handler there and the call ends with EINTR. The call's own kernel waits take the caller's
    /// mask too. A signal the caller's mask blocks stays pending until the original mask is back at
    /// return (<see cref="Restore"/>), where it is delivered, as after Linux's ppoll. The runtime's
    /// signals (synchronous faults, the GC's SIGRTMIN) are never held. The calls without a mask argument
    /// do the same with the thread's own mask (<see cref="Own"/>).
    /// </summary>
    private struct CallSignals
    {
        // Signals 1..64 as bits (n - 1). Never held: SIGILL 4, SIGTRAP 5, SIGABRT 6, SIGBUS 7, SIGFPE 8,
        // SIGKILL 9, SIGSEGV 11, SIGSTOP 19, SIGSYS 31, SIGRTMIN 34 (the .NET runtime's thread suspension).
        private const ulong NeverHeld = (1UL << 3) | (1UL << 4) | (1UL << 5) | (1UL << 6) | (1UL << 7) | (1UL << 8)
            | (1UL << 10) | (1UL << 18) | (1UL << 30) | (1UL << 33);

        private fixed ulong _saved[SigSetWords];
        private void* _mask;
        private ulong* _own;
        private delegate* unmanaged<SignalCounts*> _countsOfThread;
        private SignalCounts* _counts;
        private ulong _countsAtWait;
        private bool _waiting;

        /// <summary>
        /// For epoll_wait, poll and select where the shim counts the program's handlers per thread
        /// (<see cref="SignalCounts"/>): nothing is held; a handler that runs once the call is about to
        /// wait changes the count, and the call ends with EINTR, as Linux's (never restarted, SA_RESTART or
        /// not). No system call, where holding and asking the kernel costs three per waiting call.
        /// </summary>
        public static CallSignals Counted(delegate* unmanaged<SignalCounts*> countsOfThread)
        {
            CallSignals c = default;
            c._countsOfThread = countsOfThread;
            return c;
        }

        /// <summary>
        /// For epoll_wait, poll and select, which take no mask: the thread's own mask is the call's, so a
        /// handler that runs while the call busy-polls the stack ends the call with EINTR too, as on Linux
        /// (nginx's master_process-off loop only sees SIGTERM when epoll_wait returns). The signals are held
        /// only once the call is about to wait (<see cref="HoldForWait"/>): a call answered at once makes no
        /// extra system call, and a handler that ran before came before the call, as it may on Linux.
        /// <paramref name="own"/> (<see cref="SigSetWords"/> words, alive for the call) receives the mask.
        /// </summary>
        public static CallSignals Own(ulong* own)
        {
            CallSignals c = default;
            c._own = own;
            return c;
        }

        /// <summary>Starts holding the catchable signals of a call made by <see cref="Own"/> (once).</summary>
        public void HoldForWait()
        {
            if (_countsOfThread != null && !_waiting)
            {
                _counts = _countsOfThread(); // only for a call that waits: one that is answered at once pays nothing
                _countsAtWait = Volatile.Read(ref _counts->Packed);
                _waiting = true;
            }
            if (_own == null || _mask != null) return;
            ulong* hold = stackalloc ulong[SigSetWords];
            new Span<ulong>(hold, SigSetWords).Clear();
            hold[0] = ~NeverHeld;
            fixed (ulong* saved = _saved)
            {
                if (Libc2.PthreadSigmask(SIG_BLOCK, hold, saved) != 0) return;
                new Span<ulong>(saved, SigSetWords).CopyTo(new Span<ulong>(_own, SigSetWords));
            }
            _mask = _own;
        }

        /// <summary>The mask for the call's kernel waits: the one in force for the call once held, else <paramref name="given"/>.</summary>
        public readonly void* WaitMask(void* given) => _mask != null ? _mask : given;

        /// <summary>Holds the catchable signals for a call given <paramref name="mask"/> (none when null).</summary>
        public static CallSignals Hold(void* mask)
        {
            CallSignals c = default;
            if (mask == null) return c;
            ulong* hold = stackalloc ulong[SigSetWords];
            new Span<ulong>(hold, SigSetWords).Clear();
            hold[0] = ~NeverHeld;
            if (Libc2.PthreadSigmask(SIG_BLOCK, hold, c._saved) == 0) c._mask = mask;
            return c;
        }

        /// <summary>-EINTR when a signal the caller's mask lets through was pending: it was delivered now.</summary>
        public readonly int Interrupted()
        {
            if (_countsOfThread != null) return _waiting && Volatile.Read(ref _counts->Packed) != _countsAtWait ? -(int)Errno.EINTR : 0;
            if (_mask == null) return 0;
            TimeSpec zero = default;
            return Libc.PPoll(null, 0, &zero, _mask) == -(int)Errno.EINTR ? -(int)Errno.EINTR : 0;
        }

        /// <summary>Puts the thread's original mask back (pending signals it allows are delivered now).</summary>
        public void Restore()
        {
            if (_mask == null) return;
            _mask = null;
            fixed (ulong* saved = _saved) Libc2.PthreadSigmask(SIG_SETMASK, saved, null);
        }
    }
}

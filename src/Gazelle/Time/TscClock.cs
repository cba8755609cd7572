using System.Runtime.CompilerServices;

namespace Gazelle.Time;

/// <summary>
/// CLOCK_MONOTONIC read from the CPU's time-stamp counter. The vDSO's clock_gettime reads the same counter, but
/// ordered (rdtscp or a fence) and under the kernel's sequence lock: 100-130 ns per read on these VMs against
/// 35-55 ns for a plain rdtsc, and the POSIX layer reads the clock at every send and in every few spin rounds.
/// <para>Time is an anchor (a counter value and the nanoseconds it stands for) plus a rate. Every
/// <see cref="PeriodNanos"/> a reader re-anchors against the real clock: the new anchor continues the old line
/// (so time never jumps), and the new rate is the rate measured since the clock was made plus what closes the
/// gap to the real clock within the next period, so the error never grows (a few hundred ns: the noise of one
/// clock_gettime between two counter reads). Two readers that re-anchor at once: one does it, the other goes on
/// with the old line. Microsecond results never go below the last one returned by this object (a reader on the
/// old line during a re-anchor could otherwise come out one microsecond early).</para>
/// <para>Only valid where the counter is invariant and synchronised across CPUs: the caller checks that the
/// kernel itself uses it as its clocksource (then clock_gettime is computed from it too).</para>
/// </summary>
public sealed unsafe class TscClock
{
    /// <summary>How often a reader compares with the real clock (one clock_gettime per millisecond of use).</summary>
    public const long PeriodNanos = 1_000_000;
    /// <summary>A re-anchor whose real-clock read took longer than this (the thread was preempted between its two
    /// counter reads) is skipped: the pair would misplace the anchor by up to that much.</summary>
    private const long MaxPairNanos = 5_000;

    private readonly delegate*<ulong> _ticks;
    private readonly delegate*<long> _realNanos;
    private readonly ulong _startTicks;
    private readonly long _startNanos;
    private readonly ulong _periodTicks;
    private readonly ulong _maxPairTicks;

    // The anchor, written under a sequence count (odd while a re-anchor writes it).
    private int _seq;
    private ulong _anchorTicks;
    private long _anchorNanos;
    /// <summary>Nanoseconds per tick, times 2^32.</summary>
    private long _mult;
    private long _lastMicros;
    private long _reanchors;

    /// <param name="ticks">The counter (rdtsc).</param>
    /// <param name="realNanos">CLOCK_MONOTONIC in nanoseconds.</param>
    /// <param name="calibrationNanos">How long the constructor watches both to take the first rate.</param>
    public TscClock(delegate*<ulong> ticks, delegate*<long> realNanos, long calibrationNanos = 2_000_000)
    {
        _ticks = ticks;
        _realNanos = realNanos;
        ReadPair(out _, out _); // the first calls of both may be slow
        ReadPair(out _startTicks, out _startNanos);
        ulong t;
        long r;
        do ReadPair(out t, out r);
        while (r - _startNanos < calibrationNanos || t <= _startTicks);
        _mult = RateSince(t, r);
        if (_mult <= 0) throw new InvalidOperationException("the counter does not advance with the real clock");
        _anchorTicks = t;
        _anchorNanos = r;
        _periodTicks = (ulong)(((UInt128)PeriodNanos << 32) / (ulong)_mult);
        _maxPairTicks = (ulong)(((UInt128)MaxPairNanos << 32) / (ulong)_mult);
        _lastMicros = r / 1000;
    }

    /// <summary>Times the clock re-anchored against the real clock (diagnostics, tests).</summary>
    public long Reanchors => Volatile.Read(ref _reanchors);

    public Instant Now()
    {
        ulong t = _ticks();
        int s = Volatile.Read(ref _seq);
        ulong at = Volatile.Read(ref _anchorTicks);
        long an = Volatile.Read(ref _anchorNanos);
        long m = Volatile.Read(ref _mult);
        ulong d = t - at;
        if ((s & 1) != 0 || Volatile.Read(ref _seq) != s || d >= _periodTicks) return Slow(t);
        long us = (an + (long)((d * (ulong)m) >> 32)) / 1000; // d < period (~2^21 ticks), m < 2^34: no overflow
        long last = Volatile.Read(ref _lastMicros);
        if (us > last) Volatile.Write(ref _lastMicros, us);
        else us = last;
        return new Instant(us);
    }

    /// <summary>A read past the period (re-anchors), during a re-anchor, or with a counter value from before the
    /// anchor (read just before another thread moved it).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Instant Slow(ulong t)
    {
        int s = Volatile.Read(ref _seq);
        if ((s & 1) == 0 && (long)(t - _anchorTicks) >= 0 && t - _anchorTicks >= _periodTicks
            && Interlocked.CompareExchange(ref _seq, s + 1, s) == s)
        {
            Reanchor();
            Volatile.Write(ref _seq, s + 2);
        }
        // Read the line as it is now (spinning out a re-anchor in progress: a few hundred ns at most).
        while (true)
        {
            s = Volatile.Read(ref _seq);
            if ((s & 1) != 0)
            {
                Thread.SpinWait(1);
                continue;
            }
            ulong at = Volatile.Read(ref _anchorTicks);
            long an = Volatile.Read(ref _anchorNanos);
            long m = Volatile.Read(ref _mult);
            if (Volatile.Read(ref _seq) != s) continue;
            long ns = (long)(t - at) >= 0 ? an + (long)(((UInt128)(t - at) * (ulong)m) >> 32) : an;
            long us = ns / 1000;
            long last = Volatile.Read(ref _lastMicros);
            if (us > last) Volatile.Write(ref _lastMicros, us);
            else us = last;
            return new Instant(us);
        }
    }

    /// <summary>Caller holds the sequence count odd.</summary>
    private void Reanchor()
    {
        if (!ReadPair(out ulong t, out long real)) return; // preempted: the next reader tries again
        if (t - _anchorTicks > (ulong)long.MaxValue || t - _anchorTicks < _periodTicks / 2) return;
        long ours = _anchorNanos + (long)(((UInt128)(t - _anchorTicks) * (ulong)_mult) >> 32);
        long rate = RateSince(t, real);
        // Close the gap to the real clock over the next period; never let the line fall or run at twice the rate.
        long m = rate + (long)(((Int128)(real - ours) << 32) / (long)_periodTicks);
        m = Math.Clamp(m, rate / 2, rate * 2);
        _anchorTicks = t;
        _anchorNanos = ours;
        _mult = m;
        _reanchors++;
    }

    /// <summary>Nanoseconds per tick (times 2^32) from the first pair to (<paramref name="t"/>, <paramref name="r"/>).</summary>
    private long RateSince(ulong t, long r) =>
        (long)(((UInt128)(ulong)(r - _startNanos) << 32) / (t - _startTicks));

    /// <summary>A counter value and the real time it stands for: the real clock read between two counter reads, the
    /// narrowest of a few tries (a try that was preempted, or the first call of a function, is wide). False when
    /// even that one was wider than <see cref="MaxPairNanos"/>.</summary>
    private bool ReadPair(out ulong t, out long real)
    {
        t = 0;
        real = 0;
        ulong best = ulong.MaxValue;
        for (int i = 0; i < 4; i++)
        {
            ulong a = _ticks();
            long r = _realNanos();
            ulong b = _ticks();
            if (b - a < best)
            {
                best = b - a;
                t = a + (b - a) / 2;
                real = r;
            }
        }
        return _maxPairTicks == 0 || best <= _maxPairTicks;
    }
}

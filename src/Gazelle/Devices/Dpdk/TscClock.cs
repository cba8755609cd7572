using Gazelle.Time;

namespace Gazelle.Devices.Dpdk;

/// <summary>
/// A monotonic microsecond clock read from the CPU's time-stamp counter (DPDK's <c>rte_rdtsc</c>), for the
/// process root to hand the POSIX layer instead of <see cref="MonotonicClock"/>: on these VMs a vDSO
/// clock_gettime costs about 75 ns (its ordered TSC read alone about 55 ns) and a plain rdtsc about 25 ns, and
/// the layer reads the clock on every send and on every poll. Use it only where the kernel's own clocksource is
/// the TSC (<see cref="KernelUsesTsc"/>: then the counter is constant-rate and synchronised across CPUs).
/// </summary>
/// <remarks>
/// Ticks map to microseconds from an anchor (a tick count and its time) at a rate measured against the
/// reference clock. The anchor is renewed every <see cref="AnchorMicros"/> (of ticks): the rate is measured
/// again over the whole interval since the previous renewal, and the new anchor starts where the old mapping
/// stands or at the reference time, whichever is later, so the clock never goes back; when that leaves it ahead
/// of the reference it runs slower over the next interval to meet it (so it stays within some ten microseconds of
/// CLOCK_MONOTONIC). Readers take the anchor under a sequence lock (no lock, no
/// allocation); one reader at a time renews it. Many threads may read.
/// </remarks>
public sealed class TscClock
{
    /// <summary>How often (in microseconds of ticks) the anchor is renewed from the reference clock.</summary>
    public const long AnchorMicros = 100_000;

    private readonly Func<Instant> _reference;
    private readonly Func<ulong> _ticks;
    /// <summary>Ticks between renewals (from the first rate measured).</summary>
    private readonly ulong _renewTicks;

    // The anchor, under _version (odd while being written).
    private int _version;
    private ulong _anchorTicks;
    private long _anchorMicros;
    /// <summary>Microseconds per tick, 32.32 fixed point.</summary>
    private ulong _rate;
    // The reference reading of the last renewal (the rate is measured from it); renewer only.
    private ulong _refTicks;
    private long _refMicros;

    /// <param name="ticks">The counter (<see cref="Rdtsc"/> in production; a fake in tests).</param>
    /// <param name="reference">The clock the counter is measured against (<see cref="MonotonicClock.Now"/>).</param>
    /// <param name="calibrationMicros">How long the first rate measurement spins (a few milliseconds).</param>
    public TscClock(Func<ulong> ticks, Func<Instant> reference, long calibrationMicros = 5_000)
    {
        _ticks = ticks;
        _reference = reference;
        ulong t0 = ticks();
        long m0 = reference().Microseconds;
        ulong t1;
        long m1;
        do
        {
            t1 = ticks();
            m1 = reference().Microseconds;
        }
        while (m1 - m0 < calibrationMicros || t1 <= t0);
        _rate = RateOf(t1 - t0, m1 - m0);
        if (_rate == 0) throw new InvalidOperationException("the tick counter runs faster than 2^32 per microsecond");
        _renewTicks = Math.Max((ulong)(((UInt128)AnchorMicros << 32) / _rate), 1);
        _anchorTicks = _refTicks = t1;
        _anchorMicros = _refMicros = m1;
    }

    /// <summary>The production clock on the TSC.</summary>
    public static TscClock Create() => new(Rdtsc, MonotonicClock.Now);

    /// <summary>The CPU's time-stamp counter (through libgazelle-dpdk.so).</summary>
    public static ulong Rdtsc() => DpdkNative.gz_dpdk_rdtsc();

    /// <summary>Whether the kernel keeps time with the TSC (/sys/devices/system/clocksource/clocksource0/current_clocksource).</summary>
    public static bool KernelUsesTsc()
    {
        try
        {
            return File.ReadAllText("/sys/devices/system/clocksource/clocksource0/current_clocksource").Trim() == "tsc";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static ulong RateOf(ulong ticks, long micros) => (ulong)(((UInt128)(ulong)Math.Max(micros, 0) << 32) / ticks);

    /// <summary>Now, from the counter.</summary>
    public Instant Now() => At(_ticks());

    /// <summary>The time at counter value <paramref name="ticks"/> (read just now by the caller).</summary>
    public Instant At(ulong ticks)
    {
        while (true)
        {
            int v = Volatile.Read(ref _version);
            if ((v & 1) == 0)
            {
                ulong at = Volatile.Read(ref _anchorTicks);
                long us = Volatile.Read(ref _anchorMicros);
                ulong rate = Volatile.Read(ref _rate);
                if (Volatile.Read(ref _version) == v)
                {
                    // A count read before another thread renewed the anchor lies before it: the anchor's time.
                    if (ticks <= at) return new Instant(us);
                    ulong d = ticks - at;
                    if (d < _renewTicks) return new Instant(us + (long)((d * rate) >> 32));
                    Renew(v, ticks);
                    continue;
                }
            }
            Thread.SpinWait(1);
        }
    }

    /// <summary>Renews the anchor at <paramref name="ticks"/> if nobody else is (version <paramref name="v"/> still current).</summary>
    private void Renew(int v, ulong ticks)
    {
        if (Interlocked.CompareExchange(ref _version, v + 1, v) != v) return;
        long reference = _reference().Microseconds;
        // Where the current mapping stands at `ticks` (bounded: a long idle gap is not extrapolated).
        ulong d = ticks - _anchorTicks;
        long mapped = d < 64 * _renewTicks ? _anchorMicros + (long)(((UInt128)d * _rate) >> 32) : long.MinValue;
        if (ticks > _refTicks && reference > _refMicros)
        {
            ulong rate = RateOf(ticks - _refTicks, reference - _refMicros);
            if (rate > 0) _rate = rate;
        }
        _refTicks = ticks;
        _refMicros = reference;
        _anchorTicks = ticks;
        long start = Math.Max(mapped, Math.Max(reference, _anchorMicros));
        _anchorMicros = start;
        // Ahead of the reference (never set back): run slower over the next interval to meet it again (at most
        // half the pace), as an NTP slew does.
        long ahead = start - reference;
        if (ahead > 0) _rate = (ulong)((UInt128)_rate * (ulong)Math.Max(AnchorMicros - ahead, AnchorMicros / 2) / (ulong)AnchorMicros);
        Volatile.Write(ref _version, v + 2);
    }
}

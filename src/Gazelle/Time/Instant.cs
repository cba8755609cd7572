namespace Gazelle.Time;

/// <summary>
/// A point in time in microseconds from an arbitrary origin. The stack never reads a clock itself:
/// every entry point that needs time receives an <see cref="Instant"/>, so tests drive a virtual clock
/// and production passes a monotonic one (<see cref="MonotonicClock"/>).
/// </summary>
public readonly record struct Instant(long Microseconds) : IComparable<Instant>
{
    public static readonly Instant Zero = new(0);
    /// <summary>"No deadline": later than every real instant.</summary>
    public static readonly Instant Never = new(long.MaxValue);

    public static Instant FromMilliseconds(long ms) => new(ms * 1000);
    public long Milliseconds => Microseconds / 1000;

    public Instant Add(TimeSpanMicros d) => new(Microseconds + d.Value);
    public static Instant operator +(Instant t, TimeSpanMicros d) => new(t.Microseconds + d.Value);
    public static TimeSpanMicros operator -(Instant a, Instant b) => new(a.Microseconds - b.Microseconds);
    public static bool operator <(Instant a, Instant b) => a.Microseconds < b.Microseconds;
    public static bool operator >(Instant a, Instant b) => a.Microseconds > b.Microseconds;
    public static bool operator <=(Instant a, Instant b) => a.Microseconds <= b.Microseconds;
    public static bool operator >=(Instant a, Instant b) => a.Microseconds >= b.Microseconds;
    public static Instant Min(Instant a, Instant b) => a.Microseconds <= b.Microseconds ? a : b;
    public int CompareTo(Instant other) => Microseconds.CompareTo(other.Microseconds);
    public override string ToString() => $"{Microseconds / 1_000_000.0:F6}s";
}

/// <summary>A duration in microseconds.</summary>
public readonly record struct TimeSpanMicros(long Value)
{
    public static TimeSpanMicros FromMilliseconds(long ms) => new(ms * 1000);
    public static TimeSpanMicros FromSeconds(long s) => new(s * 1_000_000);
    public long Milliseconds => Value / 1000;
    public override string ToString() => $"{Value}us";
}

/// <summary>The production clock: CLOCK_MONOTONIC, read straight from libc's vDSO clock_gettime without a GC
/// transition (the same clock as <see cref="System.Diagnostics.Stopwatch"/>, whose path through the runtime's
/// native layer cost about twice the vDSO read; the POSIX layer reads it on every poll).</summary>
public static unsafe partial class MonotonicClock
{
    private const int ClockMonotonic = 1;

    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.LibraryImport("libc.so.6", EntryPoint = "clock_gettime")]
    [System.Runtime.InteropServices.SuppressGCTransition]
    private static partial int ClockGetTime(int clock, TimeSpec* ts);

    public static Instant Now()
    {
        TimeSpec ts;
        if (ClockGetTime(ClockMonotonic, &ts) != 0) return FromStopwatch();
        return new Instant(ts.Seconds * 1_000_000 + ts.Nanoseconds / 1000);
    }

    private static Instant FromStopwatch()
    {
        long ticks = System.Diagnostics.Stopwatch.GetTimestamp();
        return new Instant((long)(ticks * (1_000_000.0 / System.Diagnostics.Stopwatch.Frequency)));
    }
}

using System.Diagnostics;
using Gazelle.Time;

namespace Gazelle.Tests.Foundation;

/// <summary><see cref="TscClock"/> over a simulated counter and real clock (deterministic), and over the machine's
/// own monotonic clock.</summary>
[NonParallelizable]
public unsafe class TscClockTests
{
    // The simulated pair: every counter read advances it by s_step ticks; the real clock is a line over the ticks
    // whose rate a test can change (as if the counter's frequency had been misjudged).
    private static ulong s_ticks, s_step, s_tickBase;
    private static double s_nsPerTick, s_realAtBase;

    private static ulong FakeTicks() => s_ticks += s_step;
    private static long FakeReal() => (long)(s_realAtBase + (s_ticks - s_tickBase) * s_nsPerTick);

    private static void SetRate(double nsPerTick)
    {
        s_realAtBase = FakeReal();
        s_tickBase = s_ticks;
        s_nsPerTick = nsPerTick;
    }

    [SetUp]
    public void Reset()
    {
        s_ticks = 1_000_000_000;
        s_tickBase = s_ticks;
        s_step = 100;
        s_nsPerTick = 0.5; // 2 GHz: 50 ns per read
        s_realAtBase = 7_000_000_000;
    }

    [Test]
    public void FollowsTheRealClockWhenItsRateMovesAndNeverGoesBack()
    {
        var clock = new TscClock(&FakeTicks, &FakeReal);
        long last = 0;
        bool wentBack = false;
        for (int i = 0; i < 400_000; i++) // 20 ms
        {
            long us = clock.Now().Microseconds;
            wentBack |= us < last;
            last = us;
        }
        Assert.That(Math.Abs(last - FakeReal() / 1000), Is.LessThanOrEqualTo(2), "at the calibrated rate");
        SetRate(0.505); // the real clock now runs 1% faster than the counter was judged to
        long worst = 0;
        for (int i = 0; i < 4_000_000; i++) // ~200 ms
        {
            long us = clock.Now().Microseconds;
            wentBack |= us < last;
            last = us;
            if (i > 400_000) worst = Math.Max(worst, Math.Abs(us - FakeReal() / 1000)); // after 20 ms to converge
        }
        Assert.That(wentBack, Is.False);
        Assert.That(clock.Reanchors, Is.GreaterThan(100));
        // Without re-anchoring the line would be 1% of 200 ms = 2 ms behind; the correction keeps it within a period's
        // share of the change (1% of 1 ms) plus rounding.
        Assert.That(worst, Is.LessThanOrEqualTo(20), "microseconds from the real clock");
    }

    [Test]
    public void AReadFromBeforeTheAnchorIsNotEarlierThanWhatWasReturned()
    {
        var clock = new TscClock(&FakeTicks, &FakeReal);
        long a = clock.Now().Microseconds;
        s_ticks -= 50_000; // a counter value from before the anchor (another thread read it, then this one moved it)
        long b = clock.Now().Microseconds;
        Assert.That(b, Is.GreaterThanOrEqualTo(a));
    }

    private static ulong StopwatchTicks() => (ulong)Stopwatch.GetTimestamp();

    [Test]
    public void AgreesWithTheMonotonicClock()
    {
        var clock = new TscClock(&StopwatchTicks, &MonotonicClock.NowNanos);
        var until = MonotonicClock.Now() + TimeSpanMicros.FromMilliseconds(20);
        long worstEarly = 0, worstLate = 0;
        while (true)
        {
            var before = MonotonicClock.Now();
            var ours = clock.Now();
            var after = MonotonicClock.Now();
            worstEarly = Math.Max(worstEarly, (before - ours).Value);
            worstLate = Math.Max(worstLate, (ours - after).Value);
            if (after > until) break;
        }
        // A preempted read only widens [before, after]; the bound is the anchor's error, far below it.
        Assert.That(worstEarly, Is.LessThanOrEqualTo(50));
        Assert.That(worstLate, Is.LessThanOrEqualTo(50));
        Assert.That(clock.Reanchors, Is.GreaterThan(0));
    }
}

using Gazelle.Devices.Dpdk;
using Gazelle.Time;

namespace Gazelle.Tests.Dpdk;

/// <summary>
/// <see cref="TscClock"/> over a fake counter and a fake reference clock: it maps ticks at the rate measured
/// against the reference, follows a change of that rate at the next renewal, and never goes back.
/// </summary>
public class TscClockTests
{
    /// <summary>A counter at <see cref="TicksPerMicro"/> that advances by <see cref="Step"/> on every read, and a
    /// reference that reads it (times <see cref="Slowdown"/> after <see cref="SlowFrom"/>) plus an offset.</summary>
    private sealed class Fake
    {
        public const ulong TicksPerMicro = 2_000;
        public ulong Ticks = 5_000_000_000;
        public ulong Step = 1_000;
        public long Offset = 123_456_789;
        public ulong SlowFrom = ulong.MaxValue;
        public double Slowdown = 1.0;
        public int References;

        public ulong Read() => Ticks += Step;

        public Instant Reference()
        {
            References++;
            double us = (double)Ticks / TicksPerMicro;
            if (Ticks > SlowFrom) us = (double)SlowFrom / TicksPerMicro + (Ticks - SlowFrom) / (double)TicksPerMicro * Slowdown;
            return new Instant(Offset + (long)us);
        }
    }

    [Test]
    public void MapsTicksAtTheReferenceRate()
    {
        var f = new Fake();
        var clock = new TscClock(f.Read, f.Reference);
        for (int i = 0; i < 1000; i++)
        {
            f.Ticks += 7_777_777; // ~3.9 ms a step: renewals on the way
            var now = clock.At(f.Ticks);
            Assert.That(Math.Abs((now - f.Reference()).Value), Is.LessThanOrEqualTo(10), $"step {i}: {(now - f.Reference()).Value}");
        }
    }

    [Test]
    public void ReadsTheReferenceOnlyToRenewItsAnchor()
    {
        var f = new Fake();
        var clock = new TscClock(f.Read, f.Reference);
        int before = f.References;
        for (int i = 0; i < 10_000; i++) clock.Now(); // 10,000 reads 0.5 us apart: 5 ms, no renewal due
        Assert.That(f.References, Is.EqualTo(before));
        f.Ticks += (ulong)TscClock.AnchorMicros * Fake.TicksPerMicro;
        clock.Now();
        Assert.That(f.References, Is.EqualTo(before + 1));
    }

    [Test]
    public void FollowsAReferenceThatSlowsDownWithoutGoingBack()
    {
        var f = new Fake();
        var clock = new TscClock(f.Read, f.Reference);
        f.SlowFrom = f.Ticks;
        f.Slowdown = 0.99; // the reference now runs 1 % slower than the counter's first rate
        var last = clock.Now();
        for (int i = 0; i < 2000; i++)
        {
            f.Ticks += 1_000_000; // 0.5 ms
            var now = clock.Now();
            Assert.That(now, Is.GreaterThanOrEqualTo(last), $"step {i}");
            last = now;
        }
        // One renewal later the rate is the reference's: the clock advances as it does over the next 100 ms.
        var c0 = clock.Now();
        var r0 = f.Reference();
        f.Ticks += 200_000 * Fake.TicksPerMicro / 2; // 100 ms of counter
        var c1 = clock.At(f.Ticks - 1);
        var r1 = f.Reference();
        Assert.That((c1 - c0).Value, Is.EqualTo((r1 - r0).Value).Within(5));
    }

    [Test]
    public void ACountReadBeforeTheAnchorGivesTheAnchorsTime()
    {
        var f = new Fake();
        var clock = new TscClock(f.Read, f.Reference);
        ulong early = f.Ticks;
        f.Ticks += (ulong)TscClock.AnchorMicros * Fake.TicksPerMicro * 2;
        var renewed = clock.Now(); // renews the anchor past `early`
        Assert.That(clock.At(early), Is.LessThanOrEqualTo(renewed));
        Assert.That(clock.At(early), Is.GreaterThan(new Instant(0)));
    }
}

using Gazelle.Posix;

namespace Gazelle.Tests.Posix;

/// <summary>The POSIX layer's own lock (<see cref="LayerLock"/>): mutual exclusion under contention (through its
/// futex sleep), and the owner check that turns a re-entry into an exception instead of a hang.</summary>
public class LayerLockTests
{
    [Test]
    public void ThreadsThatContendAllGetInAndNeverOverlap()
    {
        var l = new LayerLock(checkOwner: false);
        const int Threads = 4, Rounds = 20_000;
        long counter = 0;
        int inside = 0, overlaps = 0;
        var threads = new Thread[Threads];
        for (int k = 0; k < Threads; k++)
        {
            threads[k] = new Thread(() =>
            {
                for (int i = 0; i < Rounds; i++)
                {
                    l.Enter();
                    if (Interlocked.Increment(ref inside) != 1) Interlocked.Increment(ref overlaps);
                    counter++; // not atomic: only the lock keeps it exact
                    if (i % 512 == 0) Thread.Sleep(0); // hold it across a reschedule now and then: others must sleep
                    Interlocked.Decrement(ref inside);
                    l.Exit();
                }
            });
            threads[k].Start();
        }
        foreach (var t in threads) Assert.That(t.Join(TimeSpan.FromMinutes(2)), Is.True, "a thread never got the lock");
        Assert.That(overlaps, Is.Zero);
        Assert.That(counter, Is.EqualTo(Threads * Rounds));
        Assert.That(l.IsHeld, Is.False);
    }

    [Test]
    public void AReentryThrowsWhenTheOwnerIsChecked()
    {
        var l = new LayerLock(checkOwner: true);
        using (l.Hold())
        {
            Assert.Throws<InvalidOperationException>(() => l.Enter());
            Assert.Throws<InvalidOperationException>(() => l.TryEnter());
            bool other = true;
            var t = new Thread(() => other = l.TryEnter());
            t.Start();
            t.Join();
            Assert.That(other, Is.False, "another thread sees it held");
        }
        Assert.That(l.IsHeld, Is.False);
        Assert.Throws<InvalidOperationException>(() => l.Exit(), "an exit without holding it");
        Assert.That(l.TryEnter(), Is.True);
        l.Exit();
    }

    [Test]
    public void TryEnterWithAWaitGetsItOnceReleased()
    {
        var l = new LayerLock(checkOwner: false);
        l.Enter();
        var t = new Thread(() => { Thread.Sleep(20); l.Exit(); });
        t.Start();
        Assert.That(l.TryEnter(TimeSpan.FromMinutes(1)), Is.True);
        t.Join();
        l.Exit();
        Assert.That(l.TryEnter(TimeSpan.Zero), Is.True);
        Assert.That(l.TryEnter(TimeSpan.FromMilliseconds(1)), Is.False);
    }
}

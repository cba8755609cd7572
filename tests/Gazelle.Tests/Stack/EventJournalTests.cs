using Gazelle.Sockets;

namespace Gazelle.Tests.Stack;

public class EventJournalTests
{
    [Test]
    public void RecordsEachSocketOnceInARowAndForgetsOnClear()
    {
        var j = new EventJournal();
        j.Record(3);
        j.Record(3);
        j.Record(5);
        j.Record(3);
        Assert.That(j.Entries.ToArray(), Is.EqualTo(new[] { 3, 5, 3 }));
        Assert.That(j.Overflowed, Is.False);
        j.Clear();
        Assert.That(j.Entries.Length, Is.Zero);
    }

    [Test]
    public void SaysItOverflowedPastItsCapacityUntilCleared()
    {
        var j = new EventJournal();
        for (int i = 0; i < EventJournal.Capacity; i++) j.Record(i);
        Assert.That(j.Overflowed, Is.False);
        j.Record(EventJournal.Capacity);
        Assert.That(j.Overflowed, Is.True);
        Assert.That(j.Entries.Length, Is.EqualTo(EventJournal.Capacity));
        j.Clear();
        Assert.That(j.Overflowed, Is.False);
    }
}

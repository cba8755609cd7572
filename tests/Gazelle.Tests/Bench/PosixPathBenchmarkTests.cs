using Gazelle.Bench;

namespace Gazelle.Tests.Bench;

/// <summary>The POSIX-layer benchmarks do the work they claim (a body that bails out early would be fast).</summary>
[NonParallelizable]
public class PosixPathBenchmarkTests
{
    [Test]
    public void EverySendToIsSentAndReachesThePeer()
    {
        using var b = new PosixPathBenchmarks();
        long before = b.PeerReceived;
        for (int i = 0; i < 3200; i++) Assert.That(b.UdpSendTo(), Is.EqualTo(PosixPathBenchmarks.PayloadLength), $"sendto {i}");
        Assert.That(b.PeerReceived - before, Is.InRange(3200 - 32, 3200), "every datagram but the last batch is drained by the peer");
    }

    [Test]
    public void EpollWaitReportsNothingWhenIdleAndTheOneReadySocketUntilRead()
    {
        using var b = new PosixPathBenchmarks();
        for (int i = 0; i < 100; i++) Assert.That(b.EpollWaitIdle(), Is.Zero);
        b.MakeOneReady();
        for (int i = 0; i < 100; i++) Assert.That(b.EpollWaitOneReady(), Is.EqualTo(1), $"call {i}: level-triggered, still readable");
        Assert.That(b.ReadTheReadyOne(), Is.EqualTo(PosixPathBenchmarks.PayloadLength));
        Assert.That(b.EpollWaitIdle(), Is.Zero, "read: idle again");
    }

    [Test]
    public void EpollCtlDeleteAndAddKeepTheRegistrationWorkingAndAllocateNothing()
    {
        using var b = new PosixPathBenchmarks();
        b.MakeOneReady();
        for (int i = 0; i < 100; i++)
        {
            Assert.That(b.EpollCtlDelAdd(), Is.Zero, $"round {i}");
            Assert.That(b.EpollCtlModTwice(), Is.Zero, $"round {i}");
        }
        Assert.That(b.EpollWaitOneReady(), Is.EqualTo(1), "re-added: its readable socket is reported");
        long least = AllocationProbe.LeastAllocated(() =>
        {
            for (int i = 0; i < 1000; i++)
            {
                b.EpollCtlDelAdd();
                b.EpollCtlModTwice();
            }
        }, out _);
        Assert.That(least, Is.Zero, "a deleted registration is reused by the next add");
        Assert.That(b.ReadTheReadyOne(), Is.EqualTo(PosixPathBenchmarks.PayloadLength));
    }
}

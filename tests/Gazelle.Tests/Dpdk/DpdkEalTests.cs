using Gazelle.Devices.Dpdk;

namespace Gazelle.Tests.Dpdk;

public sealed class DpdkEalTests
{
    [Test]
    public void UnknownOption_GivesOneLineBadArgumentsError()
    {
        var e = DpdkFixture.UnknownOptionError;
        Assert.That(e, Is.Not.Null);
        TestContext.Out.WriteLine(e!.Message);
        Assert.Multiple(() =>
        {
            Assert.That(e!.Error, Is.EqualTo(DpdkError.BadArguments));
            Assert.That(e.Errno, Is.EqualTo(22)); // EINVAL
            Assert.That(e.Message, Does.StartWith("rte_eal_init failed: invalid dpdk_args"));
            Assert.That(e.Message, Does.Contain("--gazelle-no-such-option"));
            Assert.That(e.Message, Does.Not.Contain('\n'));
            Assert.That(e.EalLog, Is.Not.Empty, "EAL's log of the failed init is kept");
        });
    }

    [Test]
    public void MalformedLcores_GivesBadArgumentsErrorQuotingEal()
    {
        var e = DpdkFixture.BadLcoresError;
        Assert.That(e, Is.Not.Null);
        TestContext.Out.WriteLine(e!.Message);
        Assert.That(e!.Error, Is.EqualTo(DpdkError.BadArguments));
        Assert.That(e.Message, Does.Contain("EAL said:"));
        Assert.That(e.Message, Does.Contain("zero-to-one"));
        Assert.That(e.Message, Does.Not.Contain('\n'));
    }

    [Test]
    public void SecondStart_IsRefusedAsAlreadyInitialized()
    {
        Assert.That(Eal.TryStart(DpdkFixture.GoodArgs, out var eal, out var error), Is.False);
        Assert.That(eal, Is.Null);
        TestContext.Out.WriteLine(error!.Message);
        Assert.That(error.Error, Is.EqualTo(DpdkError.AlreadyInitialized));
        Assert.That(error.Message, Does.Contain("once per process"));
        var thrown = Assert.Throws<DpdkException>(() => Eal.Start(["--no-huge"]));
        Assert.That(thrown!.Error, Is.EqualTo(DpdkError.AlreadyInitialized));
    }

    [Test]
    public void RunningEal_ReportsItsShape()
    {
        var eal = DpdkFixture.Eal;
        Assert.Multiple(() =>
        {
            Assert.That(eal.Args, Is.EqualTo(DpdkFixture.GoodArgs));
            Assert.That(eal.LcoreCount, Is.EqualTo(1));
            Assert.That(eal.MbufHeadroom, Is.EqualTo(128)); // RTE_PKTMBUF_HEADROOM of Debian's build
            Assert.That(eal.PortCount, Is.GreaterThanOrEqualTo(1), "--vdev net_ring0 gives a port");
        });
    }

    [Test]
    public void GlueAbi_MatchesTheManagedMirrors()
    {
        Assert.That(Eal.CheckLibraries(), Is.Null);
        for (int which = 1; which <= 7; which++)
        {
            Assert.That(DpdkNative.gz_dpdk_abi_size(which), Is.EqualTo(DpdkNative.ManagedAbiSize(which)), $"struct #{which}");
        }
        Assert.That(DpdkNative.gz_dpdk_abi_size(99), Is.EqualTo(-1));
    }

    [Test]
    public void MissingDpdkLibrary_GivesOneLineLibraryMissingError()
    {
        var e = Eal.CheckLibraries(["librte_eal.so.23", "librte_gazelle_nonexistent.so.23"]);
        Assert.That(e, Is.Not.Null);
        TestContext.Out.WriteLine(e!.Message);
        Assert.That(e.Error, Is.EqualTo(DpdkError.LibraryMissing));
        Assert.That(e.Message, Does.StartWith("DPDK 22.11 libraries not found: cannot load librte_gazelle_nonexistent.so.23"));
        Assert.That(e.Message, Does.Not.Contain('\n'));
    }

    [Test]
    public void GlueLookup_TriesTheEnvironmentVariableFirst()
    {
        var candidates = DpdkNative.GlueCandidates();
        Assert.That(candidates[0], Is.EqualTo(Path.Combine(DpdkFixture.RepoRoot, "build", "libgazelle-dpdk.so")));
        Assert.That(candidates[^1], Is.EqualTo(Path.Combine(AppContext.BaseDirectory, "libgazelle-dpdk.so")));
    }

    [Test]
    public void UnknownPortName_GivesNoDeviceErrorListingPorts()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkFixture.Eal, "net_nosuchport7"));
        TestContext.Out.WriteLine(e!.Message);
        Assert.That(e!.Error, Is.EqualTo(DpdkError.NoDevice));
        Assert.That(e.Message, Does.Contain("net_nosuchport7").And.Contain("net_ring0"));
        var byId = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkFixture.Eal, 31));
        Assert.That(byId!.Error, Is.EqualTo(DpdkError.NoDevice));
    }

    [Test]
    public void PoolLargerThanEalMemory_GivesNoMemoryError()
    {
        // 256 MB of EAL memory cannot hold a million 2 KB mbufs.
        var e = Assert.Throws<DpdkException>(() => DpdkPacketPool.Create(DpdkFixture.Eal, "gz_too_big", 1_000_000, 2048 + 128));
        TestContext.Out.WriteLine(e!.Message);
        Assert.That(e!.Error, Is.EqualTo(DpdkError.NoMemory));
        Assert.That(e.Message, Does.Contain("gz_too_big").And.Contain("-m"));
        // EAL is still usable afterwards.
        using var small = DpdkPacketPool.Create(DpdkFixture.Eal, "gz_small_after", 64, 2048 + 128);
        Assert.That(small.MempoolAvailable, Is.EqualTo(64));
    }

    [Test]
    public void ProbingANonexistentDevice_GivesAnError()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkFixture.Eal.ProbeDevice("net_af_packet77,iface=gz-no-such-if"));
        Assert.That(e!.Message, Does.Contain("rte_dev_probe"));
    }
}

public sealed class DpdkThreadTests
{
    [Test]
    public void AThreadCanRegisterAsAnEalThread()
    {
        var eal = DpdkFixture.Eal;
        uint before = 0, during = 0, after = 0;
        bool registered = false;
        var t = new Thread(() =>
        {
            before = eal.CurrentLcoreId;
            registered = eal.RegisterCurrentThread();
            during = eal.CurrentLcoreId;
            eal.UnregisterCurrentThread();
            after = eal.CurrentLcoreId;
        });
        t.Start();
        t.Join();
        Assert.Multiple(() =>
        {
            Assert.That(before, Is.EqualTo(uint.MaxValue), "a plain thread has no lcore id");
            Assert.That(registered, Is.True);
            Assert.That(during, Is.Not.EqualTo(uint.MaxValue).And.Not.EqualTo((uint)eal.MainLcore));
            Assert.That(after, Is.EqualTo(uint.MaxValue));
        });
    }
}

using System.Diagnostics;

namespace Gazelle.Tests.Dpdk;

/// <summary>shim/dpdk.mk as another Makefile includes it, and what the built glue exports.</summary>
public sealed class DpdkGlueBuildTests
{
    private string _dir = "";

    [SetUp]
    public void MakeTempDir() => _dir = Directory.CreateTempSubdirectory("gz-dpdk-mk-").FullName;

    [TearDown]
    public void RemoveTempDir() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void IncludedFragment_KeepsTheIncludersDefaultGoal_AndBuildsOnRequest()
    {
        var makefile = Path.Combine(_dir, "Makefile");
        File.WriteAllText(makefile, $"include {DpdkFixture.RepoRoot}/shim/dpdk.mk\nall:\n\t@echo top-default\n");
        var build = Path.Combine(_dir, "build");

        var (code, output) = Run("make", "-f", makefile, $"BUILD={build}");
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain("top-default"));
        Assert.That(File.Exists(Path.Combine(build, "libgazelle-dpdk.so")), Is.False, "the fragment stole the default goal");

        (code, output) = Run("make", "-s", "-f", makefile, $"BUILD={build}", "dpdk-glue");
        Assert.That(code, Is.Zero, output);
        Assert.That(File.Exists(Path.Combine(build, "libgazelle-dpdk.so")), Is.True);
    }

    [Test]
    public void Glue_ExportsOnlyUnversionedGzDpdkSymbols_IncludingTheFastPath()
    {
        var (code, output) = Run("nm", "-D", "--defined-only", Path.Combine(DpdkFixture.RepoRoot, "build", "libgazelle-dpdk.so"));
        Assert.That(code, Is.Zero, output);
        var symbols = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[^1]).ToList();
        Assert.That(symbols, Is.Not.Empty);
        Assert.That(symbols, Is.All.StartsWith("gz_dpdk_"), "only the glue's own symbols are exported");
        Assert.That(symbols, Has.None.Contains("@"), "exports must be unversioned");
        Assert.That(symbols, Is.SupersetOf(new[]
        {
            "gz_dpdk_rx_burst", "gz_dpdk_tx_burst", "gz_dpdk_pktmbuf_alloc", "gz_dpdk_pktmbuf_alloc_bulk",
            "gz_dpdk_pktmbuf_free", "gz_dpdk_pktmbuf_free_bulk", "gz_dpdk_ring_enqueue_burst", "gz_dpdk_ring_dequeue_burst",
            "gz_dpdk_lcore_id", "gz_dpdk_errno", "gz_dpdk_mbuf_rss_hash", "gz_dpdk_mbuf_packet_type", "gz_dpdk_mbuf_next",
        }));
    }

    private static (int Code, string Output) Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + err.Result);
    }
}

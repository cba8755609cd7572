using System.Diagnostics;
using Gazelle.Devices.Dpdk;

namespace Gazelle.Tests.Dpdk;

/// <summary>
/// One EAL for the whole test run (rte_eal_init succeeds once per process). Builds the glue with
/// shim/dpdk.mk if it is missing or stale and points GAZELLE_DPDK_GLUE at it. Any missing piece
/// (DPDK, its headers, the glue) fails the tests; nothing is skipped.
/// </summary>
[SetUpFixture]
public sealed class DpdkFixture
{
    /// <summary>EAL on virtual devices only: no hugepages, no PCI, no shared config files (--in-memory is refused with --no-huge by 22.11), unpinned.</summary>
    /// <summary>Names EAL's runtime directory (/var/run/dpdk/&lt;prefix&gt;), removed at the end.</summary>
    public static readonly string FilePrefix = $"gz-test-{Environment.ProcessId}";

    public static readonly string[] GoodArgs =
    [
        "--no-huge", "--no-pci", "--no-shconf", "--file-prefix", FilePrefix, "-m", "256", "--no-telemetry",
        "--lcores", "0@(0-1)", "--log-level", "lib.eal:notice", "--vdev", "net_ring0",
    ];

    /// <summary>An unknown option: rte_eal_init rejects it while parsing (EAL stays startable).</summary>
    public static readonly string[] UnknownOptionArgs = ["--no-huge", "--no-pci", "--no-shconf", "--gazelle-no-such-option"];

    /// <summary>A malformed lcore list.</summary>
    public static readonly string[] BadLcoresArgs = ["--no-huge", "--no-pci", "--no-shconf", "-l", "zero-to-one"];

    public static Eal Eal { get; private set; } = null!;
    public static DpdkException? UnknownOptionError { get; private set; }
    public static DpdkException? BadLcoresError { get; private set; }
    public static string RepoRoot { get; private set; } = "";

    [OneTimeSetUp]
    public void StartEal()
    {
        RepoRoot = FindRepoRoot();
        var glue = BuildGlue(RepoRoot);
        Environment.SetEnvironmentVariable("GAZELLE_DPDK_GLUE", glue);

        // Bad arguments first: only argument errors leave EAL startable again in this process.
        Assert.That(Eal.TryStart(UnknownOptionArgs, out var e1, out var err1), Is.False, "EAL accepted an unknown option");
        e1?.Dispose();
        UnknownOptionError = err1;
        Assert.That(Eal.TryStart(BadLcoresArgs, out var e2, out var err2), Is.False, "EAL accepted a malformed lcore list");
        e2?.Dispose();
        BadLcoresError = err2;

        Eal = Eal.Start(GoodArgs);
    }

    /// <summary>Set by a fixture that leaves memif ports open on purpose (see DpdkMemifTests.LeaveOpen).</summary>
    public static bool MemifPortsLeftOpen { get; set; }

    [OneTimeTearDown]
    public void StopEal()
    {
        // rte_eal_cleanup closes every port, and closing a started memif port races memif's handlers on EAL's
        // interrupt thread (DpdkMemifTests.LeaveOpen): run alone, that fixture's test host crashed at this point
        // about 3 times in 4. With such ports, EAL ends with the process instead.
        if (!MemifPortsLeftOpen) Eal?.Dispose();
        var runtimeDir = Path.Combine("/var/run/dpdk", FilePrefix);
        if (Directory.Exists(runtimeDir)) Directory.Delete(runtimeDir, recursive: true);
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "shim", "dpdk.mk"))) return dir.FullName;
        }
        Assert.Fail("cannot find the repository root (shim/dpdk.mk) above " + AppContext.BaseDirectory);
        return "";
    }

    /// <summary>Runs `make -f shim/dpdk.mk BUILD=build` (a no-op when up to date) and returns the .so path.</summary>
    private static string BuildGlue(string root)
    {
        var psi = new ProcessStartInfo("make", ["-s", "-f", "shim/dpdk.mk", "BUILD=build"])
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.That(p.ExitCode, Is.Zero, $"building the DPDK glue failed (is libdpdk-dev installed?):\n{stdout.Result}\n{stderr}");
        var so = Path.Combine(root, "build", "libgazelle-dpdk.so");
        Assert.That(File.Exists(so), Is.True, "glue not built: " + so);
        return so;
    }
}

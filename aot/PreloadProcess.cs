using System.Security.Cryptography;
using Gazelle.Config;
using Gazelle.Devices;
using Gazelle.Devices.Dpdk;
using Gazelle.Posix;
using Gazelle.Stack;
using Gazelle.Time;

namespace Gazelle.Native;

/// <summary>
/// Everything the preload library keeps for one process: its configuration, its stack on its NIC and
/// the POSIX layer over them, which marks the fds it serves in the shim's table. Without a usable
/// configuration <see cref="Layer"/> is null: the process serves nothing and every socket stays on
/// the kernel, after one line on stderr saying why.
/// </summary>
internal sealed class PreloadProcess
{
    /// <summary>Environment: a file the process keeps rewriting with its stack's counters (every
    /// <see cref="CountersPeriodMs"/> ms and at exit), for tests and diagnosis.</summary>
    public const string CountersVariable = "GAZELLE_COUNTERS";
    private const int CountersPeriodMs = 200;
    /// <summary>How long exit() keeps the process polling for its closed connections' data to be
    /// acknowledged (the kernel would keep retrying for minutes; an exiting program should not hang that long).</summary>
    private static readonly TimeSpanMicros ExitFlushLimit = TimeSpanMicros.FromSeconds(10);
    /// <summary>A closed connection whose peer has said nothing for this long during the exit flush is given up
    /// (its peer is likely gone with its own process: a memif pair whose client exited first kept servers
    /// waiting the whole limit). Several RTOs at the 200 ms minimum.</summary>
    private static readonly TimeSpanMicros ExitPeerSilence = TimeSpanMicros.FromSeconds(2);

    private readonly Eal? _eal;
    private readonly INic? _nic;
    private readonly NetStack? _stack;
    private readonly string? _countersFile;

    private PreloadProcess(PosixLayer? layer, Eal? eal = null, INic? nic = null, NetStack? stack = null)
    {
        Layer = layer;
        _eal = eal;
        _nic = nic;
        _stack = stack;
        if (layer is not null && stack is not null && Environment.GetEnvironmentVariable(CountersVariable) is { Length: > 0 } file)
        {
            _countersFile = file;
            new Thread(WriteCountersPeriodically) { IsBackground = true, Name = "gazelle-counters" }.Start();
        }
    }

    public PosixLayer? Layer { get; }

    public static PreloadProcess Start(FdKindTable fds)
    {
#if GAZELLE_FAKE_STACK
        if (Wire.Ipv4Address.TryParse(Environment.GetEnvironmentVariable("GAZELLE_FAKE_STACK_ADDR") ?? "", out var fake))
        {
            Console.Error.WriteLine($"gazelle: TEST BUILD: {fake}/24 is served by the in-memory stand-in stack");
            var fakeTerritory = new Territory(fake.Value, new Wire.Ipv4Address(255, 255, 255, 0), Wire.Ipv4Address.Any);
            return new PreloadProcess(new PosixLayer(new Tests.Posix.FakeSocketApi(fake.Value), fakeTerritory, fds,
                MonotonicClock.Now, PollPolicy.FromEnvironment()));
        }
#endif
        string? gazelleConf = Environment.GetEnvironmentVariable(ConfigLoader.GazelleConfVariable);
        string? lstackConf = Environment.GetEnvironmentVariable(ConfigLoader.LstackConfPathVariable);
        if (string.IsNullOrWhiteSpace(gazelleConf) && string.IsNullOrWhiteSpace(lstackConf))
        {
            Console.Error.WriteLine("gazelle: no configuration (set GAZELLE_CONF to an lstack.conf): sockets run on the kernel");
            return new PreloadProcess(null);
        }
        var result = ConfigLoader.LoadFile(ConfigLoader.ResolvePath(gazelleConf, lstackConf));
        if (!result.IsOk)
        {
            foreach (var error in result.Errors) Console.Error.WriteLine($"gazelle: {error}");
            Console.Error.WriteLine("gazelle: configuration refused: sockets run on the kernel");
            return new PreloadProcess(null);
        }
        var config = result.Config!;
        Eal? eal = null;
        DpdkPort? port = null;
        try
        {
            (eal, port) = OpenDevice(config);
            // A fresh secret per process (RFC 6528 §3, RFC 6056 §3.3.4): with the constant default, every
            // preloaded process on an address picked the same ephemeral ports and ISNs, so a new client reused
            // the 4-tuple of a previous process's connection still open at the server and reset it.
            var stackConfig = config.ToStackConfig() with { Secret = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) };
            var stack = new NetStack(stackConfig, port);
            var layer = new PosixLayer(stack, Territory.From(stackConfig, KernelInterfaces.Ipv4Subnets()), fds, MonotonicClock.Now, PollPolicy.FromEnvironment());
            return new PreloadProcess(layer, eal, port, stack);
        }
        catch (Exception e) when (e is DpdkException or InvalidOperationException or ArgumentException or DllNotFoundException or EntryPointNotFoundException)
        {
            port?.Dispose();
            eal?.Dispose();
            Console.Error.WriteLine($"gazelle: {config.Source}: cannot start the device ({e.Message}): sockets run on the kernel");
            return new PreloadProcess(null);
        }
    }

    /// <summary>At exit(): closes the program's stack sockets and keeps polling until their data and FINs
    /// are acknowledged (at most <see cref="ExitFlushLimit"/>), then writes the final counters.</summary>
    public void Exit()
    {
        if (Layer is null || _stack is null) return;
        var stack = _stack;
        var start = MonotonicClock.Now();
        int left = Layer.Exit(() => stack.Tcp.Flushing(start, ExitPeerSilence), ExitFlushLimit);
        if (left > 0)
            Console.Error.WriteLine($"gazelle: exit: {left} closed connection(s) still had unacknowledged data after {ExitFlushLimit.Milliseconds / 1000} s; it is lost");
        WriteCounters();
    }

    private void WriteCountersPeriodically()
    {
        while (true)
        {
            WriteCounters();
            Thread.Sleep(CountersPeriodMs);
        }
    }

    /// <summary>Replaces the counters file atomically (write a temporary file, rename) with a snapshot taken between polls.</summary>
    private void WriteCounters()
    {
        if (_countersFile is null || Layer is null || _stack is null) return;
        try
        {
            var stack = _stack;
            var port = _nic as DpdkPort;
            string text = Layer.Inspect(() => CountersReport.Format(stack, port));
            string tmp = $"{_countersFile}.{Environment.ProcessId}.tmp";
            File.WriteAllText(tmp, text);
            File.Move(tmp, _countersFile, overwrite: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        catch (DpdkException) { }
    }

    /// <summary>Starts EAL with dpdk_args and opens the port the backend names (one queue: one stack per process for now).</summary>
    private static (Eal, DpdkPort) OpenDevice(GazelleConfig config)
    {
        var args = new List<string>(config.DpdkArgs);
        string? vdev = config.Backend switch
        {
            DeviceBackend.AfPacket => $"net_af_packet0,iface={config.AfPacketInterface}",
            DeviceBackend.Memif => $"net_memif0,socket={config.MemifSocket}",
            DeviceBackend.InMemory => throw new InvalidOperationException("the in-memory backend lives in one process; a preloaded program needs a device"),
            _ => null,
        };
        if (vdev is not null) args.AddRange(["--vdev", vdev]);
        // The caller is one of the program's threads: EAL must not pin it to the main lcore's CPU.
        var eal = Eal.Start(args, keepCallerAffinity: true);
        try
        {
            var options = new DpdkPortOptions { RxDescriptors = Math.Min(config.NicRxQueueSize, 4096), TxDescriptors = Math.Min(config.NicTxQueueSize, 4096) };
            var port = vdev is not null ? DpdkPort.Open(eal, vdev[..vdev.IndexOf(',')], options) : DpdkPort.Open(eal, 0, options);
            return (eal, port);
        }
        catch
        {
            eal.Dispose();
            throw;
        }
    }
}

using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Gazelle.Config;
using Gazelle.Devices;
using Gazelle.Devices.Dpdk;
using Gazelle.Posix;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Transport.Tcp;

namespace Gazelle.Native;

/// <summary>
/// Everything the preload library keeps for one process: its configuration, its stack on its NIC and
/// the POSIX layer over them, which marks the fds it serves in the shim's table. Without a usable
/// configuration <see cref="Layer"/> is null: the process serves nothing and every socket stays on
/// the kernel, after one line on stderr saying why.
/// </summary>
internal sealed class PreloadProcess
{
    private readonly Eal? _eal;
    private readonly DpdkPort? _port;
    private readonly NetStack? _stack;
    private readonly FdKindTable _fds;

    private PreloadProcess(FdKindTable fds, PosixLayer? layer = null, Eal? eal = null, DpdkPort? port = null, NetStack? stack = null)
    {
        _fds = fds;
        Layer = layer;
        _eal = eal;
        _port = port;
        _stack = stack;
        // Read now, not at exit: programs such as nginx replace their environment after opening their sockets.
        _exitStatsFile = Environment.GetEnvironmentVariable(StatsFileVariable);
        if (layer is not null && stack is not null && Environment.GetEnvironmentVariable(CountersVariable) is { Length: > 0 } file)
        {
            _countersFile = file;
            new Thread(WriteCountersPeriodically) { IsBackground = true, Name = "gazelle-counters" }.Start();
        }
    }

    /// <summary>Environment: a file the process rewrites every <see cref="CountersPeriodMs"/> ms with its stats
    /// (the lines of docs/stats.md), to watch a program that is still running (tests, diagnosis).</summary>
    public const string CountersVariable = "GAZELLE_COUNTERS";
    private const int CountersPeriodMs = 200;
    private readonly string? _countersFile;

    private void WriteCountersPeriodically()
    {
        string tmp = $"{_countersFile}.{Environment.ProcessId}.tmp";
        while (true)
        {
            // Replaced atomically (write, rename), so a reader never sees half a file.
            if (Stats() is { } text)
            {
                try
                {
                    File.WriteAllText(tmp, text);
                    File.Move(tmp, _countersFile!, overwrite: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            }
            Thread.Sleep(CountersPeriodMs);
        }
    }

    public PosixLayer? Layer { get; }

    public static PreloadProcess Start(FdKindTable fds, nint signalCountsOfThread, nint epollKernelFds)
    {
        string? gazelleConf = Environment.GetEnvironmentVariable(ConfigLoader.GazelleConfVariable);
        string? lstackConf = Environment.GetEnvironmentVariable(ConfigLoader.LstackConfPathVariable);
        if (string.IsNullOrWhiteSpace(gazelleConf) && string.IsNullOrWhiteSpace(lstackConf))
        {
            Console.Error.WriteLine("gazelle: no configuration (set GAZELLE_CONF to an lstack.conf): sockets run on the kernel");
            return new PreloadProcess(fds);
        }
        var result = ConfigLoader.LoadFile(ConfigLoader.ResolvePath(gazelleConf, lstackConf));
        if (!result.IsOk)
        {
            foreach (var error in result.Errors) Console.Error.WriteLine($"gazelle: {error}");
            Console.Error.WriteLine("gazelle: configuration refused: sockets run on the kernel");
            return new PreloadProcess(fds);
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
            var stackConfig = config.ToStackConfig() with
            {
                Secret = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)),
                // SO_RCVBUF / SO_SNDBUF requests are clamped as the kernel clamps them on this machine.
                ReceiveBufferMax = KernelSysctl("/proc/sys/net/core/rmem_max", 212992),
                SendBufferMax = KernelSysctl("/proc/sys/net/core/wmem_max", 212992),
            };
            var stack = new NetStack(stackConfig, port);
            // The layer sends every owed ACK before a call waits, so a client's handshake ACK may wait for its request.
            stack.Tcp.DeferHandshakeAck = true;
            var policy = PollPolicy.FromEnvironment();
            var layer = new PosixLayer(stack, Territory.From(stackConfig, KernelInterfaces.Ipv4Subnets()), fds, MonotonicClock.Now, policy,
                signalCountsOfThread, epollKernelFds);
            if (policy.KeeperMillis > 0) layer.StartKeeper();
            return new PreloadProcess(fds, layer, eal, port, stack);
        }
        catch (Exception e) when (e is DpdkException or InvalidOperationException or ArgumentException or DllNotFoundException or EntryPointNotFoundException)
        {
            port?.Dispose();
            eal?.Dispose();
            Console.Error.WriteLine($"gazelle: {config.Source}: cannot start the device ({e.Message}): sockets run on the kernel");
            return new PreloadProcess(fds);
        }
    }

    /// <summary>An integer sysctl of the kernel, or <paramref name="fallback"/> when it cannot be read.</summary>
    private static int KernelSysctl(string path, int fallback)
    {
        try
        {
            return int.TryParse(File.ReadAllText(path).Trim(), out int v) && v > 0 ? v : fallback;
        }
        catch (IOException)
        {
            return fallback;
        }
        catch (UnauthorizedAccessException)
        {
            return fallback;
        }
    }

    /// <summary>Starts EAL with dpdk_args and opens the port the backend names (one queue: one stack per process for now).</summary>
    private static (Eal, DpdkPort) OpenDevice(GazelleConfig config)
    {
        var args = new List<string>(config.DpdkArgs);
        string? vdev = config.Backend switch
        {
            DeviceBackend.AfPacket => $"net_af_packet0,iface={config.AfPacketInterface}",
            // Memif buffers (bsize) as long as a frame at a long MTU: one descriptor per frame, no chain to fold.
            DeviceBackend.Memif => $"net_memif0,socket={config.MemifSocket}" + (config.Mtu > 1500 ? $",bsize={DpdkPort.FrameBytes(config.Mtu)}" : ""),
            DeviceBackend.InMemory => throw new InvalidOperationException("the in-memory backend lives in one process; a preloaded program needs a device"),
            _ => null,
        };
        if (vdev is not null) args.AddRange(["--vdev", vdev]);
        // The caller is one of the program's threads: EAL must not pin it to the main lcore's CPU.
        var eal = Eal.Start(args, keepCallerAffinity: true);
        try
        {
            // Every program thread that drives the stack does so holding the layer's lock: they act as EAL's main
            // lcore in turn (its mempool cache), the thread that started EAL included.
            var options = new DpdkPortOptions
            {
                RxDescriptors = Math.Min(config.NicRxQueueSize, 4096), TxDescriptors = Math.Min(config.NicTxQueueSize, 4096), Mtu = config.Mtu,
                ActAsLcore = eal.MainLcore,
                // Two bursts: refused frames of a full burst kept, a refill of one burst (DpdkPacketPool.ReadyCapacity).
                TxReadyBuffers = 2 * 32,
            };
            // Frames hold their buffers briefly, except TCP payload kept until read (at most
            // StackConfig.TcpHeldFrames = 512 and a quarter of the pool, within the in-flight share, which stays
            // >= 512): at a long MTU the same bytes in flight need fewer, larger mbufs, so the pool keeps about
            // the memory of MTU 1500.
            if (config.Mtu > 1500)
                options = options with { MbufsInFlight = Math.Max(512, (int)((long)options.MbufsInFlight * DpdkPort.FrameBytes(1500) / DpdkPort.FrameBytes(config.Mtu))) };
            var port = vdev is not null ? DpdkPort.Open(eal, vdev[..vdev.IndexOf(',')], options) : DpdkPort.Open(eal, 0, options);
            return (eal, port);
        }
        catch
        {
            eal.Dispose();
            throw;
        }
    }

    /// <summary>How long the stats wait for the layer's lock (a thread inside a call holds it briefly).</summary>
    private static readonly TimeSpan StatsLockWait = TimeSpan.FromMilliseconds(100);

    /// <summary>Names the file the exit handler writes the stats to (docs/stats.md).</summary>
    public const string StatsFileVariable = "GAZELLE_STATS";

    private readonly string? _exitStatsFile;

    /// <summary>Whether GAZELLE_STATS (as it was when the stack started) asks for the stats at exit.</summary>
    public bool WantsExitStats => !string.IsNullOrEmpty(_exitStatsFile);

    /// <summary>Sockets with a live stack side the program holds (before the exit flush closes them).</summary>
    public int OpenStackSockets()
    {
        int n = 0;
        if (Layer is { } layer) layer.Inspect(StatsLockWait, () => n = layer.StackSocketFds);
        return n;
    }

    /// <summary>At exit, after the flush: when GAZELLE_STATS names a file, writes the stats there, preceded by
    /// what the exit did (docs/stats.md).</summary>
    public void WriteExitStats(int leftOpen, bool delivered)
    {
        string? path = _exitStatsFile;
        if (string.IsNullOrEmpty(path) || Layer is not { } layer || _stack is not { } stack) return;
        var sb = new StringBuilder();
        sb.Append("exit.left_open ").Append(leftOpen).Append('\n');
        sb.Append("exit.delivered ").Append(delivered ? 1 : 0).Append('\n');
        layer.Inspect(StatsLockWait, () => AppendStats(layer, stack, sb));
        try { File.WriteAllText(path, sb.ToString()); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Console.Error.WriteLine($"gazelle: {StatsFileVariable}: {e.Message}"); }
    }

    private const int StateCount = (int)TcpState.Closing + 1;

    /// <summary>The stats as "name value" lines (docs/stats.md), read under the layer's lock after one poll;
    /// null when the stack does not serve this process or the lock was not free.</summary>
    public string? Stats()
    {
        if (Layer is not { } layer || _stack is not { } stack) return null;
        var sb = new StringBuilder();
        return layer.Inspect(StatsLockWait, () => AppendStats(layer, stack, sb)) ? sb.ToString() : null;
    }

    private void AppendStats(PosixLayer layer, NetStack stack, StringBuilder sb)
    {
        void Line(string name, long value) => sb.Append(name).Append(' ').Append(value).Append('\n');
        Line("tcp.connections", stack.Tcp.LiveConnections);
        Line("tcp.flows", stack.Tcp.FlowTableCount);
        Line("tcp.capacity", stack.Tcp.PoolCapacity);
        Span<int> states = stackalloc int[StateCount];
        stack.Tcp.CountByState(states);
        for (int s = 1; s < StateCount; s++) Line("tcp.state." + ((TcpState)s).ToString().ToLowerInvariant(), states[s]);
        Line("tcp.held_frames", stack.Tcp.HeldFramesInUse);
        Line("udp.sockets", stack.Udp.OpenSockets);
        if (_port is not null)
        {
            var pool = _port.Pool(0);
            Line("pool.capacity", pool.Capacity);
            Line("pool.in_use", pool.InUse);
            Line("pool.mbufs_in_use", pool.MempoolInUse);
            Line("pool.ready", pool.ReadyBuffers);
        }
        Line("posix.fds", layer.HeldFds);
        Line("posix.stack_fds", layer.StackSocketFds);
        Line("posix.polls", layer.Polls);
        Line("posix.pooled_numbers", layer.PooledNumbers);
        Line("posix.numbers_from_pool", layer.NumbersFromPool);
        int marked = 0;
        for (int fd = 0; fd < _fds.Limit; fd++) if (_fds[fd] is not (FdKind.Kernel or FdKind.Pooled)) marked++;
        Line("shim.marked_fds", marked);
        foreach (var (name, value, _) in stack.Counters.Snapshot()) if (value != 0) Line("counter." + name, value);
        foreach (var f in typeof(TcpCounters).GetFields(BindingFlags.Public | BindingFlags.Instance))
            if (f.FieldType == typeof(long) && (long)f.GetValue(stack.Tcp.Counters)! is var v && v != 0) Line("counter.TcpLayer." + f.Name, v);
    }
}

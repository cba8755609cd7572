using Gazelle.Stack;
using Gazelle.Wire;

namespace Gazelle.Posix;

/// <summary>
/// Which side serves an address: the stack's address, its subnet and (when a gateway is configured)
/// every destination beyond it belong to the stack; loopback, multicast/broadcast outside the stack's
/// subnet, the subnets of the kernel's own interfaces and, without a gateway, every other subnet stay
/// on the kernel.
/// </summary>
public sealed class Territory
{
    private readonly Ipv4Address _address;
    private readonly Ipv4Address _mask;
    private readonly Ipv4Address _gateway;
    private readonly (Ipv4Address Network, Ipv4Address Mask)[] _kernelSubnets;

    public Territory(Ipv4Address address, Ipv4Address mask, Ipv4Address gateway,
        (Ipv4Address Network, Ipv4Address Mask)[]? kernelSubnets = null)
    {
        _address = address;
        _mask = mask;
        _gateway = gateway;
        _kernelSubnets = kernelSubnets ?? [];
    }

    public static Territory From(StackConfig config, (Ipv4Address, Ipv4Address)[]? kernelSubnets = null) =>
        new(config.Address, config.Netmask, config.Gateway, kernelSubnets);

    public Ipv4Address StackAddress => _address;

    /// <summary>bind(): only the stack's own address makes a socket the stack's (INADDR_ANY is both sides'; the caller handles it).</summary>
    public bool IsStackLocal(Ipv4Address local) => local == _address;

    /// <summary>connect()/sendto(): does the stack reach <paramref name="remote"/>?</summary>
    public bool IsStackDestination(Ipv4Address remote)
    {
        if (remote.IsUnspecified || remote.IsLoopback) return false;
        if (remote.InSubnet(_address, _mask)) return true;
        if (remote.IsMulticast || remote.IsBroadcast) return false;
        foreach (var (network, mask) in _kernelSubnets)
            if (remote.InSubnet(network, mask)) return false;
        return !_gateway.IsUnspecified;
    }
}

/// <summary>
/// How the layer waits. Poll mode busy-polls the stack; after <see cref="SpinMicros"/> without
/// progress it sleeps in the kernel wait (epoll_wait/poll/ppoll on the kernel fds), first for
/// <see cref="FirstSleepMicros"/>, doubling up to <see cref="BlockMillis"/> per round, so an idle program
/// leaves the machine's other cores alone. Set with GAZELLE_SPIN_US (0 = sleep at once, -1 = never
/// sleep), GAZELLE_SLEEP_US and GAZELLE_BLOCK_MS; the keeper's period with GAZELLE_KEEPER_MS.
/// </summary>
public sealed record PollPolicy
{
    /// <summary>Idle busy-polling before backing off. A request/response peer answers within tens of
    /// microseconds; 1 ms of spinning catches every answer of a busy exchange without a kernel sleep
    /// (measured: sockperf ping-pong over memif p50 1.9 µs spinning vs ~550 µs when each answer waited
    /// out a sleep), and an idle waiter stops spinning after 1 ms.</summary>
    public long SpinMicros { get; init; } = 1000;
    /// <summary>First kernel sleep after spinning; each further round doubles it.</summary>
    public long FirstSleepMicros { get; init; } = 20;
    /// <summary>Longest single kernel sleep while backed off; bounds the latency an idle program adds.</summary>
    public int BlockMillis { get; init; } = 1;
    /// <summary>With a value above 0, datagram sends are batched and a flush thread hands a batch the program
    /// left held to the device within about twice this (PosixLayer.Batching.cs); 0 = every datagram leaves
    /// within its send call.</summary>
    public long DatagramFlushMicros { get; init; }
    /// <summary>Keeper period: the layer's background thread polls the stack when no thread of the program has
    /// for that long (<see cref="PosixLayer.KeepUp"/>, <see cref="PosixLayer.StartKeeper"/>); 0 = no keeper (the
    /// default: in-process users drive their stack themselves). The preload uses 10 ms: TCP's timers are
    /// coarser (RTO >= 200 ms, delayed ACK 40 ms), and 100 wake-ups a second cost an idle program nothing
    /// measurable.</summary>
    public int KeeperMillis { get; init; }
    /// <summary>The layer's lock (<see cref="LayerLock"/>, not reentrant) throws when the thread holding it takes it
    /// again, instead of hanging. On by default (tests); the preload turns it off (it reads the thread id, which
    /// the lock exists to avoid) unless GAZELLE_CHECK_LOCK=1 (the integration tests set it).</summary>
    public bool CheckLockOwner { get; init; } = true;

    public static PollPolicy FromEnvironment()
    {
        var p = new PollPolicy();
        if (long.TryParse(Environment.GetEnvironmentVariable("GAZELLE_SPIN_US"), out long spin)) p = p with { SpinMicros = spin };
        if (long.TryParse(Environment.GetEnvironmentVariable("GAZELLE_SLEEP_US"), out long sleep) && sleep > 0)
            p = p with { FirstSleepMicros = sleep };
        if (int.TryParse(Environment.GetEnvironmentVariable("GAZELLE_BLOCK_MS"), out int block) && block >= 0)
            p = p with { BlockMillis = block };
        // The preloaded program batches datagrams unless GAZELLE_FLUSH_US=0.
        p = p with { DatagramFlushMicros = long.TryParse(Environment.GetEnvironmentVariable("GAZELLE_FLUSH_US"), out long flush) && flush >= 0 ? flush : 100 };
        p = p with { KeeperMillis = int.TryParse(Environment.GetEnvironmentVariable("GAZELLE_KEEPER_MS"), out int keeper) && keeper >= 0 ? keeper : 10 };
        p = p with { CheckLockOwner = Environment.GetEnvironmentVariable("GAZELLE_CHECK_LOCK") == "1" };
        return p;
    }
}

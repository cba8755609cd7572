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
/// progress it blocks in the kernel wait (epoll_wait/poll/ppoll on the kernel fds) for at most
/// <see cref="BlockMillis"/> per round, so an idle program leaves a 2-core machine's other core alone.
/// Set with GAZELLE_SPIN_US (0 = block at once, -1 = never block) and GAZELLE_BLOCK_MS.
/// </summary>
public sealed record PollPolicy
{
    /// <summary>Idle busy-polling before backing off. 100 µs covers a kernel-peer round trip on loopback-class
    /// latencies (≈30 µs measured) several times over, yet keeps an idle waiter under ~10% of a core.</summary>
    public long SpinMicros { get; init; } = 100;
    /// <summary>Longest single kernel wait while backed off; bounds added latency when idle.</summary>
    public int BlockMillis { get; init; } = 1;

    public static PollPolicy FromEnvironment()
    {
        var p = new PollPolicy();
        if (long.TryParse(Environment.GetEnvironmentVariable("GAZELLE_SPIN_US"), out long spin)) p = p with { SpinMicros = spin };
        if (int.TryParse(Environment.GetEnvironmentVariable("GAZELLE_BLOCK_MS"), out int block) && block >= 0)
            p = p with { BlockMillis = block };
        return p;
    }
}

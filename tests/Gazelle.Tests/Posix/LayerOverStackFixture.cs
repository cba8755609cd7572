using System.Runtime.InteropServices;
using Gazelle.Devices.InMemory;
using Gazelle.Posix;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Tests.Posix;

/// <summary>
/// The POSIX layer over a real <see cref="NetStack"/> (address <see cref="IpA"/>) and a peer stack (<see cref="IpB"/>)
/// on one in-memory network: what the layer sends, the peer takes in when a test runs it. Each fixture picks its
/// layer's <see cref="Policy"/> and clock (the real one, or the virtual <see cref="_now"/> when what is sent must not
/// depend on how fast the machine runs).
/// </summary>
public abstract unsafe class LayerOverStackFixture
{
    protected static readonly Ipv4Address IpA = Ipv4Address.Parse("10.62.0.1");
    protected static readonly Ipv4Address IpB = Ipv4Address.Parse("10.62.0.2");
    protected static readonly Ipv4Address Mask = Ipv4Address.Parse("255.255.255.0");

    private byte* _tableMemory;
    protected InMemoryNetwork _network = null!;
    protected NetStack _stack = null!, _peer = null!;
    protected PosixLayer _layer = null!;
    protected Instant _now = new(1_000_000);

    /// <summary>How the layer waits (and whether it batches datagrams).</summary>
    protected abstract PollPolicy Policy { get; }
    /// <summary>Whether the layer reads <see cref="_now"/> instead of the machine's clock.</summary>
    protected virtual bool VirtualClock => false;
    /// <summary>The layer's clock when <see cref="VirtualClock"/>: <see cref="_now"/>, as the test moves it.</summary>
    protected virtual Instant ReadVirtualClock() => _now;
    /// <summary>UDP sockets the layer's stack has room for.</summary>
    protected virtual int LayerUdpSockets => 16;

    [SetUp]
    public void SetUpLayerOverStack()
    {
        _tableMemory = (byte*)NativeMemory.AllocZeroed(65536);
        _network = new InMemoryNetwork();
        _stack = new NetStack(new StackConfig { Address = IpA, Netmask = Mask, MaxUdpSockets = LayerUdpSockets },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:62:01"), Name = "layer" }));
        _peer = new NetStack(new StackConfig { Address = IpB, Netmask = Mask, MaxUdpSockets = 16 },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:62:02"), Name = "peer" }));
        _layer = new PosixLayer(_stack, new Territory(IpA, Mask, Ipv4Address.Any), new FdKindTable(_tableMemory, 65536),
            VirtualClock ? ReadVirtualClock : MonotonicClock.Now, Policy);
    }

    [TearDown]
    public void TearDownLayerOverStack()
    {
        _layer.Dispose();
        _stack.Shutdown();
        _peer.Shutdown();
        _network.Dispose();
        NativeMemory.Free(_tableMemory);
    }

    protected static SockAddrIn Addr(Ipv4Address a, int port) => new()
    {
        Family = AF_INET,
        PortNetworkOrder = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)port),
        AddressNetworkOrder = a.NetworkOrder,
    };
}

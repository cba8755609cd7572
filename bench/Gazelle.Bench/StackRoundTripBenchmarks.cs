using BenchmarkDotNet.Attributes;
using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

using static Gazelle.Bench.BenchSetup;

namespace Gazelle.Bench;

/// <summary>
/// One full request/response between two stacks on the in-memory network (two user-veths on a
/// user-vbridge, one thread): the client sends a 64-byte UDP datagram, both stacks poll and the bridge
/// switches until quiet, the server receives it and echoes it back, and the client receives the echo.
/// Everything a packet crosses is real: socket send, UDP/IPv4/Ethernet output, the veth TX ring, the
/// bridge's MAC lookup, software RSS and the RX ring, link/IPv4/UDP input, the socket queue. The
/// virtual clock advances 1 µs per round trip (ARP entries stay fresh: reachable time is 60 s).
/// <see cref="TcpRoundTrip"/> does the same over one established TCP connection with TCP_NODELAY on
/// both ends (each request and response is one segment; the ACKs ride on them).
/// </summary>
[MemoryDiagnoser]
public class StackRoundTripBenchmarks : IDisposable
{
    public const int PayloadLength = 64;
    private const ushort ServerPort = 7;
    private const ushort TcpServerPort = 8080;

    private static readonly MacAddress MacA = MacAddress.Parse("02:00:00:00:00:0a");
    private static readonly MacAddress MacB = MacAddress.Parse("02:00:00:00:00:0b");
    private static readonly Ipv4Address IpA = Ipv4Address.Parse("10.0.0.1");
    private static readonly Ipv4Address IpB = Ipv4Address.Parse("10.0.0.2");
    private static readonly Ipv4Address Mask = Ipv4Address.Parse("255.255.255.0");

    private readonly InMemoryNetwork _network = new();
    private readonly NetStack _client, _server;
    private readonly SocketHandle _clientSocket, _serverSocket;
    private readonly SocketHandle _tcpClient, _tcpServer;
    private readonly byte[] _request = new byte[PayloadLength];
    private readonly byte[] _buffer = new byte[2048];
    private Instant _now = Instant.FromMilliseconds(1);

    public StackRoundTripBenchmarks()
    {
        _client = new NetStack(new StackConfig { Address = IpA, Netmask = Mask },
            _network.AddHost(new UserVethOptions { MacAddress = MacA, Name = "client" }));
        _server = new NetStack(new StackConfig { Address = IpB, Netmask = Mask },
            _network.AddHost(new UserVethOptions { MacAddress = MacB, Name = "server" }));
        Check(_server.Open(SocketKind.Udp, out _serverSocket));
        Check(_server.Bind(_serverSocket, new Ipv4Endpoint(IpB, ServerPort)));
        Check(_client.Open(SocketKind.Udp, out _clientSocket));
        Check(_client.Connect(_clientSocket, new Ipv4Endpoint(IpB, ServerPort)));
        new Random(7).NextBytes(_request);
        // The first exchange resolves ARP both ways; it must succeed for the benchmark to mean anything.
        if (UdpRoundTrip() != PayloadLength) throw new InvalidOperationException("UDP round trip failed in setup");

        Check(_server.Open(SocketKind.Tcp, out var listener));
        Check(_server.Bind(listener, new Ipv4Endpoint(IpB, TcpServerPort)));
        Check(_server.Listen(listener, 4));
        Check(_client.Open(SocketKind.Tcp, out _tcpClient));
        var connect = _client.Connect(_tcpClient, new Ipv4Endpoint(IpB, TcpServerPort));
        if (connect != Errno.EINPROGRESS) Check(connect);
        Run();
        Check(_server.Accept(listener, out _tcpServer, out _));
        Span<byte> one = stackalloc byte[4];
        one[0] = 1;
        Check(_client.SetOption(_tcpClient, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one));
        Check(_server.SetOption(_tcpServer, TcpLayer.IPPROTO_TCP, TcpLayer.TCP_NODELAY, one));
        if (TcpRoundTrip() != PayloadLength) throw new InvalidOperationException("TCP round trip failed in setup");
    }

    public NetStack Client => _client;
    public NetStack Server => _server;
    public InMemoryNetwork Network => _network;

    /// <summary>Returns the echoed length (0 when anything was lost on the way).</summary>
    [Benchmark]
    public int UdpRoundTrip()
    {
        _now += new TimeSpanMicros(1);
        if (_client.Send(_clientSocket, _request, MessageFlags.None, out _) != Errno.Ok) return 0;
        Run();
        if (_server.ReceiveFrom(_serverSocket, _buffer, MessageFlags.None, out int n, out var from) != Errno.Ok) return 0;
        if (_server.SendTo(_serverSocket, _buffer.AsSpan(0, n), from, MessageFlags.None, out _) != Errno.Ok) return 0;
        Run();
        return _client.Receive(_clientSocket, _buffer, MessageFlags.None, out int echoed) == Errno.Ok ? echoed : 0;
    }

    /// <summary>Returns the echoed length (0 when the request or the response did not arrive whole in one poll round).</summary>
    [Benchmark]
    public int TcpRoundTrip()
    {
        _now += new TimeSpanMicros(1);
        if (_client.Send(_tcpClient, _request, MessageFlags.None, out int sent) != Errno.Ok || sent != PayloadLength) return 0;
        Run();
        if (_server.Receive(_tcpServer, _buffer, MessageFlags.None, out int n) != Errno.Ok || n != PayloadLength) return 0;
        if (_server.Send(_tcpServer, _buffer.AsSpan(0, n), MessageFlags.None, out _) != Errno.Ok) return 0;
        Run();
        return _client.Receive(_tcpClient, _buffer, MessageFlags.None, out int echoed) == Errno.Ok ? echoed : 0;
    }

    private void Run() => RunUntilQuiet(_client, _server, _network, _now);

    [GlobalCleanup]
    public void Dispose()
    {
        _client.Shutdown();
        _server.Shutdown();
        _network.Dispose();
    }
}

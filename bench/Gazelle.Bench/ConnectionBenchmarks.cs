using BenchmarkDotNet.Attributes;
using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;

using static Gazelle.Bench.BenchSetup;

namespace Gazelle.Bench;

/// <summary>
/// One short connection between two stacks on the in-memory network, as an HTTP client and a server
/// answering with "Connection: close" do it: the client opens and connects, the server accepts, the
/// client sends a 64-byte request, the server answers 64 bytes and closes first, the client reads the
/// answer and EOF and closes. The server therefore keeps every connection in TIME_WAIT (60 s), so after
/// the first <see cref="PoolSize"/> connections its pool is full of them and each new connection recycles
/// the oldest (TcpLayer's TimeWaitQueue; a walk over the whole pool per connection before). The client's
/// ephemeral ports turn over as a real client's do. The virtual clock advances 10 µs per connection.
/// </summary>
[MemoryDiagnoser]
public class ConnectionBenchmarks : IDisposable
{
    private const ushort Port = 8080;
    private static readonly Ipv4Address IpA = Ipv4Address.Parse("10.0.0.1");
    private static readonly Ipv4Address IpB = Ipv4Address.Parse("10.0.0.2");
    private static readonly Ipv4Address Mask = Ipv4Address.Parse("255.255.255.0");

    private InMemoryNetwork _network = null!;
    private NetStack _client = null!, _server = null!;
    private SocketHandle _listener;
    private readonly byte[] _request = new byte[64];
    private readonly byte[] _buffer = new byte[2048];
    private Instant _now = Instant.FromMilliseconds(1);

    /// <summary>Connections per stack (tcp_conn_count): the TIME_WAITs the server holds.</summary>
    [Params(1500)]
    public int PoolSize { get; set; } = 1500;

    [GlobalSetup]
    public void Setup()
    {
        _network = new InMemoryNetwork();
        _client = new NetStack(new StackConfig { Address = IpA, Netmask = Mask, MaxTcpConnections = PoolSize },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:00:0a"), Name = "client" }));
        _server = new NetStack(new StackConfig { Address = IpB, Netmask = Mask, MaxTcpConnections = PoolSize },
            _network.AddHost(new UserVethOptions { MacAddress = MacAddress.Parse("02:00:00:00:00:0b"), Name = "server" }));
        Check(_server.Open(SocketKind.Tcp, out _listener));
        Check(_server.Bind(_listener, new Ipv4Endpoint(IpB, Port)));
        Check(_server.Listen(_listener, 64));
        // Fill the server's pool with TIME_WAITs, so that every measured connection recycles one.
        for (int i = 0; i < PoolSize + 16; i++)
            if (ShortConnection() != 64) throw new InvalidOperationException($"connection {i} failed in setup");
        if (_server.Tcp.Counters.TimeWaitRecycled == 0) throw new InvalidOperationException("the server's pool never filled");
    }

    public NetStack Client => _client;
    public NetStack Server => _server;

    /// <summary>Returns the answer's length (0 when any step did not complete in its poll rounds).</summary>
    [Benchmark]
    public int ShortConnection()
    {
        _now += new TimeSpanMicros(10);
        if (_client.Open(SocketKind.Tcp, out var c) != Errno.Ok) return 0;
        if (_client.Connect(c, new Ipv4Endpoint(IpB, Port)) != Errno.EINPROGRESS) { _client.Close(c); return 0; }
        Run();
        if (_server.Accept(_listener, out var s, out _) != Errno.Ok) { _client.Close(c); return 0; }
        int answered = 0;
        if (_client.Send(c, _request, MessageFlags.None, out _) == Errno.Ok)
        {
            Run();
            if (_server.Receive(s, _buffer, MessageFlags.None, out int n) == Errno.Ok && n == _request.Length
                && _server.Send(s, _buffer.AsSpan(0, n), MessageFlags.None, out _) == Errno.Ok)
            {
                _server.Close(s); // the server closes first: its side ends in TIME_WAIT
                Run();
                if (_client.Receive(c, _buffer, MessageFlags.None, out answered) != Errno.Ok) answered = 0;
                _client.Receive(c, _buffer, MessageFlags.None, out _); // EOF
            }
            else _server.Close(s);
        }
        else _server.Close(s);
        _client.Close(c);
        Run();
        return answered;
    }

    private void Run() => RunUntilQuiet(_client, _server, _network, _now);

    [GlobalCleanup]
    public void Dispose()
    {
        _client?.Shutdown();
        _server?.Shutdown();
        _network?.Dispose();
    }
}

using System.Buffers.Binary;
using System.Text;
using Gazelle.Sockets;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>SO_REUSEPORT: listeners that all set it share a port, and new connections are spread over the
/// group by a hash of the 4-tuple (as Linux does); without it the port stays exclusive.</summary>
public class ReusePortTests
{
    private static readonly Ipv4Endpoint Any80 = new(Ipv4Address.Any, 80);

    private static SocketHandle Listener(TcpLayer b, bool reusePort, Errno expectBind = Errno.Ok)
    {
        Assert.That(b.Open(SocketKind.Tcp, out var s), Is.EqualTo(Errno.Ok));
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(v, reusePort ? 1 : 0);
        Assert.That(b.SetOption(s, TcpLayer.SOL_SOCKET, TcpLayer.SO_REUSEPORT, v), Is.EqualTo(Errno.Ok));
        Assert.That(b.Bind(s, Any80), Is.EqualTo(expectBind));
        if (expectBind == Errno.Ok) Assert.That(b.Listen(s, 64), Is.EqualTo(Errno.Ok));
        return s;
    }

    [Test]
    public void ConnectionsAreSpreadOverTheGroupAndEachIsServed()
    {
        const int Listeners = 4, Connections = 32;
        var link = new SimLink(41);
        var a = link.A; var b = link.B;
        var listeners = new SocketHandle[Listeners];
        for (int i = 0; i < Listeners; i++) listeners[i] = Listener(b, reusePort: true);
        Assert.That(b.GetState(listeners[3]), Is.EqualTo(TcpState.Listen));

        // Without the option the port stays taken, whichever side lacks it.
        var plain = Listener(b, reusePort: false, expectBind: Errno.EADDRINUSE);
        b.Close(plain);

        var clients = new SocketHandle[Connections];
        for (int i = 0; i < Connections; i++)
        {
            Assert.That(a.Open(SocketKind.Tcp, out clients[i]), Is.EqualTo(Errno.Ok));
            Assert.That(a.Connect(clients[i], new Ipv4Endpoint(SimLink.AddrB, 80)), Is.EqualTo(Errno.EINPROGRESS));
        }
        var perListener = new int[Listeners];
        var servers = new List<SocketHandle>();
        long end = link.Now + 5_000_000;
        while (servers.Count < Connections && link.Now < end)
        {
            for (int i = 0; i < Listeners; i++)
                while (b.Accept(listeners[i], out var s, out _) == Errno.Ok) { servers.Add(s); perListener[i]++; }
            if (servers.Count < Connections && !link.Step()) break;
        }
        TestContext.Out.WriteLine("accepted per listener: " + string.Join(", ", perListener));
        Assert.That(servers, Has.Count.EqualTo(Connections));
        Assert.That(perListener.Count(n => n > 0), Is.GreaterThanOrEqualTo(3), "spread over the group");
        Assert.That(perListener.Max(), Is.LessThan(Connections / 2));

        // Every connection is served: a request per client, echoed by whichever listener's connection got it.
        for (int i = 0; i < Connections; i++)
            Assert.That(a.Send(clients[i], Encoding.ASCII.GetBytes($"req {i:D2}"), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
        var buf = new byte[64];
        var echoed = new HashSet<int>();
        var answered = new HashSet<int>();
        end = link.Now + 5_000_000;
        while (answered.Count < Connections && link.Now < end)
        {
            foreach (var s in servers)
                if (!echoed.Contains(s.Value) && b.Receive(s, buf, MessageFlags.None, out int n) == Errno.Ok && n == 6)
                {
                    Assert.That(b.Send(s, buf.AsSpan(0, n), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
                    echoed.Add(s.Value);
                }
            for (int i = 0; i < Connections; i++)
                if (!answered.Contains(i) && a.Receive(clients[i], buf, MessageFlags.None, out int n) == Errno.Ok && n > 0)
                {
                    Assert.That(Encoding.ASCII.GetString(buf, 0, n), Is.EqualTo($"req {i:D2}"));
                    answered.Add(i);
                }
            if (answered.Count < Connections && !link.Step()) break;
        }
        Assert.That(answered, Has.Count.EqualTo(Connections));

        // A member leaves: the rest of the group takes every new connection.
        Assert.That(b.Close(listeners[0]), Is.EqualTo(Errno.Ok));
        Assert.That(a.Open(SocketKind.Tcp, out var late), Is.EqualTo(Errno.Ok));
        a.Connect(late, new Ipv4Endpoint(SimLink.AddrB, 80));
        bool got = false;
        end = link.Now + 2_000_000;
        while (!got && link.Now < end)
        {
            for (int i = 1; i < Listeners; i++) got |= b.Accept(listeners[i], out _, out _) == Errno.Ok;
            if (!got && !link.Step()) break;
        }
        Assert.That(got, Is.True);
        Assert.That(a.GetState(late), Is.EqualTo(TcpState.Established));
    }

    [Test]
    public void WithoutTheOptionOnEverySocketThePortIsInUse()
    {
        var link = new SimLink(42);
        var b = link.B;
        Listener(b, reusePort: false);
        Listener(b, reusePort: true, expectBind: Errno.EADDRINUSE);
        Listener(b, reusePort: false, expectBind: Errno.EADDRINUSE);

        // Two sockets bound with SO_REUSEADDR only may not both listen.
        var link2 = new SimLink(43);
        var c = link2.B;
        Span<byte> one = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(one, 1);
        c.Open(SocketKind.Tcp, out var x); c.Open(SocketKind.Tcp, out var y);
        c.SetOption(x, TcpLayer.SOL_SOCKET, TcpLayer.SO_REUSEADDR, one);
        c.SetOption(y, TcpLayer.SOL_SOCKET, TcpLayer.SO_REUSEADDR, one);
        Assert.That(c.Bind(x, Any80), Is.EqualTo(Errno.Ok));
        Assert.That(c.Bind(y, Any80), Is.EqualTo(Errno.Ok));
        Assert.That(c.Listen(x, 8), Is.EqualTo(Errno.Ok));
        Assert.That(c.Listen(y, 8), Is.EqualTo(Errno.EADDRINUSE));
    }
}

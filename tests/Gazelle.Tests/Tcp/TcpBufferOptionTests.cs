using System.Buffers.Binary;
using Gazelle.Sockets;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>SO_RCVBUF / SO_SNDBUF: Linux's values (doubled, clamped, floored) and their effect on the
/// receive window and the send ring, before and after the connection exists.</summary>
public class TcpBufferOptionTests : TcpFixture
{
    private Errno Set(SocketHandle s, int name, int value)
    {
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(v, value);
        return Tcp.SetOption(s, TcpLayer.SOL_SOCKET, name, v);
    }

    private int Get(SocketHandle s, int name)
    {
        Span<byte> v = stackalloc byte[4];
        Assert.That(Tcp.GetOption(s, TcpLayer.SOL_SOCKET, name, v, out int len), Is.EqualTo(Errno.Ok));
        Assert.That(len, Is.EqualTo(4));
        return BinaryPrimitives.ReadInt32LittleEndian(v);
    }

    [Test]
    public void ValuesAreDoubledClampedAndFlooredAsLinuxReportsThem()
    {
        Assert.That(Tcp.Open(SocketKind.Tcp, out var s), Is.EqualTo(Errno.Ok));
        Assert.That(Set(s, TcpLayer.SO_RCVBUF, 65536), Is.EqualTo(Errno.Ok));
        Assert.That(Get(s, TcpLayer.SO_RCVBUF), Is.EqualTo(131072));
        Assert.That(Set(s, TcpLayer.SO_SNDBUF, 65536), Is.EqualTo(Errno.Ok));
        Assert.That(Get(s, TcpLayer.SO_SNDBUF), Is.EqualTo(131072));
        Set(s, TcpLayer.SO_RCVBUF, 1);
        Set(s, TcpLayer.SO_SNDBUF, 1);
        Assert.That(Get(s, TcpLayer.SO_RCVBUF), Is.EqualTo(SocketBufferSize.MinReceive));
        Assert.That(Get(s, TcpLayer.SO_SNDBUF), Is.EqualTo(SocketBufferSize.MinSend));
        // Negative is a huge unsigned request: clamped to rmem_max (Linux's default 212992 here), doubled.
        Set(s, TcpLayer.SO_RCVBUF, -5);
        Assert.That(Get(s, TcpLayer.SO_RCVBUF), Is.EqualTo(2 * 212992));
        Tcp.Close(s);
    }

    [Test]
    public void ReceiveBufferSetOnTheListenerSizesTheSynAckWindowAndIsInherited()
    {
        ListenOn();
        Assert.That(Set(Listener, TcpLayer.SO_RCVBUF, 4096), Is.EqualTo(Errno.Ok));
        Send(SynWithOptions(new SeqNum(PeerIsn)));
        var synAck = Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.That(synAck.Header.Window, Is.EqualTo(4096), "the ring holds half of the reported 8192");
        Send(Seg(TcpFlags.Ack, new SeqNum(PeerIsn + 1), synAck.Header.Seq + 1));
        Assert.That(Tcp.Accept(Listener, out var c, out _), Is.EqualTo(Errno.Ok));
        Assert.That(Get(c, TcpLayer.SO_RCVBUF), Is.EqualTo(8192));
    }

    [Test]
    public void ReceiveBufferChangedAfterConnectMovesTheWindowWithoutTakingItBack()
    {
        ListenOn();
        Set(Listener, TcpLayer.SO_RCVBUF, 4096);
        var c = Established();
        // Grown: the window opens at once.
        Assert.That(Set(c, TcpLayer.SO_RCVBUF, 30000), Is.EqualTo(Errno.Ok));
        var update = Expect(TcpFlags.Ack);
        Assert.That(update.Header.Window, Is.EqualTo(30000));
        // Shrunk: what was advertised is still accepted (RFC 9293 §3.8.6.2.2), then the window follows the ring.
        Assert.That(Set(c, TcpLayer.SO_RCVBUF, 2048), Is.EqualTo(Errno.Ok));
        Assert.That(Get(c, TcpLayer.SO_RCVBUF), Is.EqualTo(4096));
        for (int i = 0; i < 20; i++) SendData(1500);
        Assert.That(Tcp.Available(c, out int avail), Is.EqualTo(Errno.Ok));
        Assert.That(avail, Is.EqualTo(30000));
        Assert.That(Tcp.Counters.BytesTrimmed, Is.Zero);
        Out.Segments.Clear();
        var buf = new byte[30000];
        Tcp.Receive(c, buf, MessageFlags.None, out int got);
        Assert.That(got, Is.EqualTo(30000));
        var reopened = Expect(TcpFlags.Ack);
        Assert.That(reopened.Header.Window, Is.EqualTo(2048), "half of the reported 4096");
    }

    [Test]
    public void SendBufferChangedAfterConnectBoundsWhatSendTakesAndKeepsTheQueue()
    {
        ListenOn();
        Set(Listener, TcpLayer.SO_SNDBUF, 8192); // the accepted connection's ring: 8192 bytes
        var c = Established();
        var stream = new List<byte>();
        var a = Bytes(20000);
        Assert.That(Tcp.Send(c, a, MessageFlags.None, out int sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.EqualTo(8192));
        stream.AddRange(a.AsSpan(0, sent).ToArray());
        Assert.That(Tcp.Send(c, Bytes(10), MessageFlags.None, out _), Is.EqualTo(Errno.EAGAIN));
        var got = new byte[64 * 1024];
        SeqNum start = OurNxt;
        int contiguous = 0;
        void Deliver()
        {
            while (Out.Segments.Count > 0)
            {
                var (h, p) = Out.Segments.Dequeue();
                p.CopyTo(got, h.Seq - start);
                if (h.Seq - start <= contiguous) contiguous = Math.Max(contiguous, h.Seq - start + p.Length);
            }
        }
        Deliver();
        // The peer acknowledges 3000 bytes: the ring's head moves, the next data wraps around its end.
        Send(Seg(TcpFlags.Ack, PeerNxt, start + 3000));
        var b = Bytes(5000, seed: 1);
        Assert.That(Tcp.Send(c, b, MessageFlags.None, out sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.EqualTo(3000));
        stream.AddRange(b.AsSpan(0, sent).ToArray());
        // Grown while the ring holds wrapped data: the queue stays, in order, and more is taken.
        Assert.That(Set(c, TcpLayer.SO_SNDBUF, 20000), Is.EqualTo(Errno.Ok));
        var d = Bytes(20000, seed: 2);
        Assert.That(Tcp.Send(c, d, MessageFlags.None, out sent), Is.EqualTo(Errno.Ok));
        Assert.That(sent, Is.EqualTo(20000 - 8192));
        stream.AddRange(d.AsSpan(0, sent).ToArray());
        for (int round = 0; round < 100 && contiguous < stream.Count; round++)
        {
            Deliver();
            Send(Seg(TcpFlags.Ack, PeerNxt, start + contiguous));
            Deliver();
            if (Out.Segments.Count == 0 && contiguous < stream.Count) Advance(250);
        }
        Assert.That(got.AsSpan(0, contiguous).ToArray(), Is.EqualTo(stream.ToArray()));
    }
}

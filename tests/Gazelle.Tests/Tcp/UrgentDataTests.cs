using System.Buffers.Binary;
using System.Text;
using Gazelle.Devices.Capture;
using Gazelle.Sockets;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>Urgent data (RFC 9293 §3.8.5, RFC 6093) between two stacks, with Linux's default semantics: the
/// last byte of a send(MSG_OOB) travels out of band, read with recv(MSG_OOB); SIOCATMARK tells when the
/// reader reaches it; SO_OOBINLINE keeps it in the stream. The expected outcomes are the ones Linux gives
/// (measured on the kernel with the same sequences: tests/integration/programs/posix_oracle_urgent.c).</summary>
public class UrgentDataTests
{
    private readonly byte[] _buf = new byte[256];

    private static (SimLink link, Transfer t) Connected(bool inline = false)
    {
        var link = new SimLink(51);
        var t = new Transfer(link, 51);
        Assert.That(t.Connect(), Is.True);
        if (inline)
        {
            Span<byte> one = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(one, 1);
            Assert.That(link.B.SetOption(t.Server, TcpLayer.SOL_SOCKET, TcpLayer.SO_OOBINLINE, one), Is.EqualTo(Errno.Ok));
        }
        return (link, t);
    }

    private static void Send(SimLink link, Transfer t, string s, MessageFlags flags = MessageFlags.None)
    {
        Assert.That(link.A.Send(t.Client, Encoding.ASCII.GetBytes(s), flags, out int n), Is.EqualTo(Errno.Ok));
        Assert.That(n, Is.EqualTo(s.Length));
        for (int i = 0; i < 1000 && link.Step(); i++) { } // deliver, ACK, let timers settle
    }

    private string Recv(SimLink link, Transfer t, MessageFlags flags = MessageFlags.None)
    {
        var e = link.B.Receive(t.Server, _buf, flags, out int n);
        return e == Errno.Ok ? Encoding.ASCII.GetString(_buf, 0, n) : e.ToString();
    }

    private static bool AtMark(SimLink link, Transfer t)
    {
        Assert.That(link.B.AtUrgentMark(t.Server, out bool m), Is.EqualTo(Errno.Ok));
        return m;
    }

    private static int Available(SimLink link, Transfer t)
    {
        link.B.Available(t.Server, out int n);
        return n;
    }

    [Test]
    public void UrgentByteIsReadOutOfBandAtTheMark()
    {
        var (link, t) = Connected();
        Send(link, t, "abc");
        Send(link, t, "d", MessageFlags.Oob);
        Send(link, t, "efg");
        var b = link.B;
        Assert.That(b.GetReadiness(t.Server) & (Readiness.Readable | Readiness.Priority), Is.EqualTo(Readiness.Readable | Readiness.Priority));
        Assert.That(AtMark(link, t), Is.False);
        Assert.That(Available(link, t), Is.EqualTo(3), "FIONREAD stops at the mark");
        Assert.That(Recv(link, t), Is.EqualTo("abc"), "a read stops at the mark");
        Assert.That(AtMark(link, t), Is.True);
        Assert.That(Recv(link, t, MessageFlags.Oob | MessageFlags.Peek), Is.EqualTo("d"));
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("d"));
        Assert.That(b.GetReadiness(t.Server) & Readiness.Priority, Is.EqualTo(Readiness.None));
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("EINVAL"), "read once");
        Assert.That(AtMark(link, t), Is.True);
        Assert.That(Recv(link, t), Is.EqualTo("efg"), "the urgent byte is not in the stream");
        Assert.That(AtMark(link, t), Is.False);
        Assert.That(b.Counters.UrgentReceived, Is.EqualTo(1));
        Assert.That(link.A.Counters.UrgentSent, Is.EqualTo(1));
    }

    [Test]
    public void ReadingPastTheMarkLosesTheUrgentByte()
    {
        var (link, t) = Connected();
        Send(link, t, "abc");
        Send(link, t, "d", MessageFlags.Oob);
        Send(link, t, "efg");
        Assert.That(Recv(link, t), Is.EqualTo("abc"));
        Assert.That(Recv(link, t), Is.EqualTo("efg"));
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("EINVAL"));
    }

    [Test]
    public void OutOfBandFirstThenTheStream()
    {
        var (link, t) = Connected();
        Send(link, t, "abc");
        Send(link, t, "d", MessageFlags.Oob);
        Send(link, t, "efg");
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("d"));
        Assert.That(Recv(link, t), Is.EqualTo("abc"));
        Assert.That(AtMark(link, t), Is.True);
        Assert.That(Recv(link, t), Is.EqualTo("efg"));
    }

    [Test]
    public void OobInlineKeepsTheByteInTheStream()
    {
        var (link, t) = Connected(inline: true);
        Send(link, t, "abc");
        Send(link, t, "d", MessageFlags.Oob);
        Send(link, t, "efg");
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("EINVAL"));
        Assert.That(Recv(link, t), Is.EqualTo("abc"));
        Assert.That(AtMark(link, t), Is.True);
        Assert.That(Recv(link, t), Is.EqualTo("defg"));
        Assert.That(AtMark(link, t), Is.False);
    }

    [Test]
    public void OnlyTheLastByteOfAnUrgentSendIsOutOfBand()
    {
        var (link, t) = Connected();
        Send(link, t, "xyz", MessageFlags.Oob);
        Assert.That(Recv(link, t), Is.EqualTo("xy"));
        Assert.That(link.B.GetReadiness(t.Server) & (Readiness.Readable | Readiness.Priority), Is.EqualTo(Readiness.Priority),
            "only the urgent byte is left: not readable in band");
        Assert.That(Available(link, t), Is.Zero);
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("z"));
        Assert.That(Recv(link, t), Is.EqualTo("EAGAIN"));
        Assert.That(link.B.GetReadiness(t.Server) & (Readiness.Readable | Readiness.Priority), Is.EqualTo(Readiness.None));
    }

    [Test]
    public void ANewerMarkDiscardsAnUnreadUrgentByte()
    {
        var (link, t) = Connected();
        Send(link, t, "a", MessageFlags.Oob);
        Send(link, t, "b", MessageFlags.Oob);
        Assert.That(AtMark(link, t), Is.True);
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("b"));
        Assert.That(Recv(link, t), Is.EqualTo("EAGAIN"));
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("EINVAL"));
    }

    [Test]
    public void NoUrgentDataIsEinval()
    {
        var (link, t) = Connected();
        Send(link, t, "abc");
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("EINVAL"));
        Assert.That(Recv(link, t), Is.EqualTo("abc"));
    }

    /// <summary>On the wire: URG with the pointer one past the urgent byte, on the segment carrying it,
    /// sent at once although Nagle would hold a small segment while data is unacknowledged.</summary>
    [Test]
    public void SenderSetsUrgAndThePointerAndIgnoresNagle()
    {
        var (link, t) = Connected();
        link.DelayMicros = 50_000;
        var path = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"urg-{Guid.NewGuid():N}.pcap");
        using (var cap = new PcapWriter(File.Create(path)))
        {
            link.Capture = cap;
            Assert.That(link.A.Send(t.Client, "abc"u8, MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
            Assert.That(link.A.Send(t.Client, "hi!"u8, MessageFlags.Oob, out _), Is.EqualTo(Errno.Ok));
            link.Capture = null;
        }
        var pcap = File.ReadAllBytes(path);
        File.Delete(path);
        // Two data segments left before any ACK: Nagle did not hold the urgent one.
        int off = 24, seen = 0;
        while (off + 16 <= pcap.Length)
        {
            int len = BinaryPrimitives.ReadInt32LittleEndian(pcap.AsSpan(off + 8));
            var frame = pcap.AsSpan(off + 16, len);
            off += 16 + len;
            Assert.That(Ipv4Packet.TryCreate(frame[14..], out var ip), Is.True);
            Assert.That(TcpHeader.TryCreate(ip.Payload, out var th), Is.True);
            Assert.That(th.TryParse(out var repr), Is.True);
            if (th.Payload.Length == 0) continue;
            seen++;
            string data = Encoding.ASCII.GetString(th.Payload);
            if (data == "abc") Assert.That(repr.Has(TcpFlags.Urg), Is.False);
            else
            {
                Assert.That(data, Is.EqualTo("hi!"));
                Assert.That(repr.Has(TcpFlags.Urg), Is.True);
                Assert.That(repr.UrgentPointer, Is.EqualTo(3), "one past the last urgent byte (BSD / RFC 6093)");
            }
        }
        Assert.That(seen, Is.EqualTo(2));
        for (int i = 0; i < 1000 && link.Step(); i++) { }
        Assert.That(Recv(link, t), Is.EqualTo("abchi"));
        Assert.That(Recv(link, t, MessageFlags.Oob), Is.EqualTo("!"));
    }
}

using Gazelle.Sockets;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;

namespace Gazelle.Tests.Tcp;

/// <summary>Seeded random segments and ICMP errors against live connections: counted drops, never exceptions or leaks.</summary>
public class TcpFuzzTests : TcpFixture
{
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void RandomSegmentsNeverThrow(int seed)
    {
        var rng = new Random(seed);
        var c = Established(timestamps: seed % 2 == 0, sack: true, wscale: 7);
        Tcp.Send(c, Bytes(20_000), MessageFlags.None, out _);
        var payload = new byte[3000];
        var flagsPool = new[] { TcpFlags.Ack, TcpFlags.Syn, TcpFlags.Rst, TcpFlags.Fin | TcpFlags.Ack, TcpFlags.Syn | TcpFlags.Ack,
            TcpFlags.Rst | TcpFlags.Ack, TcpFlags.Ack | TcpFlags.Psh, TcpFlags.None, (TcpFlags)0xFF };
        for (int i = 0; i < 20_000; i++)
        {
            var f = flagsPool[rng.Next(flagsPool.Length)];
            SeqNum seq = rng.Next(4) switch { 0 => PeerNxt, 1 => PeerNxt + rng.Next(-70000, 70000), 2 => new SeqNum((uint)rng.Next()), _ => PeerNxt - 1 };
            SeqNum ack = rng.Next(3) switch { 0 => OurNxt + rng.Next(0, 20_001), 1 => new SeqNum((uint)rng.Next()), _ => OurNxt - rng.Next(0, 100_000) };
            var r = Seg(f, seq, ack, (ushort)rng.Next(65536));
            r.SrcPort = rng.Next(10) == 0 ? (ushort)rng.Next(65536) : RemotePort;
            r.DstPort = rng.Next(10) == 0 ? (ushort)rng.Next(65536) : LocalPort;
            if (rng.Next(4) == 0)
            {
                r.Options.SackCount = (byte)rng.Next(5);
                for (int k = 0; k < r.Options.SackCount; k++)
                    r.Options.Sack[k] = new SackBlock(OurNxt + rng.Next(-5000, 25000), OurNxt + rng.Next(-5000, 25000));
            }
            if (rng.Next(8) == 0) { r.Options.Mss = (ushort)rng.Next(65536); r.Options.WindowScale = (byte)rng.Next(256); }
            if (rng.Next(3) == 0) { r.Options.HasTimestamp = true; r.Options.TsVal = (uint)rng.Next(); }
            int len = rng.Next(3) == 0 ? rng.Next(payload.Length) : 0;
            rng.NextBytes(payload.AsSpan(0, len));
            Tcp.Input(rng.Next(20) == 0 ? new Ipv4Address((uint)rng.Next()) : Remote, Local, r, payload.AsSpan(0, len), Now);
            if (rng.Next(50) == 0)
                Tcp.OnDestinationUnreachable(Local, Remote, LocalPort, RemotePort, OurNxt + rng.Next(0, 20000), (byte)rng.Next(16), rng.Next(0, 2000), Now);
            if (rng.Next(20) == 0) Tcp.Receive(c, payload, MessageFlags.None, out _);
            if (rng.Next(100) == 0) Tcp.Send(c, payload.AsSpan(0, 500), MessageFlags.None, out _);
            if (rng.Next(10) == 0) NowUs += rng.Next(0, 300_000);
            Tcp.Poll(Now);
            Out.Segments.Clear();
        }
        Assert.That(Tcp.Counters.SegmentsIn, Is.EqualTo(20_000 + 1 + 1));
        // TearDown closes everything and checks nothing leaked.
    }
}

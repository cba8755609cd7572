using System.Buffers.Binary;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>Randomly mutated (seeded) frames into a stack: nothing escapes, every frame is accounted
/// for by exactly one outcome counter, and every buffer comes back.</summary>
public class FuzzTests
{
    private static List<byte[]> Corpus(ushort connectedPort)
    {
        var c = new List<byte[]>();
        c.Add(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA, MacAddress.Broadcast));
        c.Add(Arp(ArpOperation.Reply, MacHost, IpHost, MacA, IpA, MacA));
        c.Add(Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpHost, MacAddress.Broadcast));
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, EchoRequest(1, 2, "abcdefgh"u8)));
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1234, 5000, "to a bound port"u8)));
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1234, 5001, "to a closed port"u8)));
        c.Add(Ipv4Frame(MacHost, MacAddress.Broadcast, IpHost, Ipv4Address.Parse("10.0.0.255"), IpProtocol.Udp, Udp(IpHost, Ipv4Address.Parse("10.0.0.255"), 1, 5000, "bcast"u8)));
        var syn = new byte[40];
        var tcp = new TcpRepr { SrcPort = 4000, DstPort = 80, Seq = new SeqNum(1), Flags = TcpFlags.Syn, Window = 1000, Options = TcpOptions.None };
        tcp.Options.Mss = 1460; tcp.Options.SackPermitted = true; tcp.Options.HasTimestamp = true; tcp.Options.WindowScale = 7;
        TcpHeader.Emit(tcp, syn);
        TcpHeader.WriteChecksum(syn, IpHost, IpA);
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Tcp, syn));
        // Fragments of one UDP datagram to the bound port.
        var big = Udp(IpHost, IpA, 1234, 5000, new byte[2000]);
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, big.AsSpan(0, 1480), id: 42, more: true));
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, big.AsSpan(1480), id: 42, more: false, fragOffset: 1480));
        // ICMP errors quoting a datagram we sent (port unreachable, fragmentation needed).
        var quoted = new byte[28];
        new Ipv4Repr { Source = IpA, Destination = IpHost, Protocol = IpProtocol.Udp, Ttl = 64, PayloadLength = 108 }.Emit(quoted);
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(20), connectedPort);
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(22), 9);
        foreach (var (code, mtu) in new[] { (Icmpv4UnreachableCode.Port, (ushort)0), (Icmpv4UnreachableCode.FragmentationNeeded, (ushort)576) })
        {
            var m = new byte[8 + quoted.Length];
            quoted.CopyTo(m, 8);
            Icmpv4Repr.Unreachable(code, mtu).Emit(m);
            c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, m));
        }
        var vlan = new byte[18 + 28];
        new EthernetRepr(MacA, MacHost, EtherType.Arp, 5, true).Emit(vlan);
        c.Add(vlan);
        return c;
    }

    /// <summary>Recomputes the IPv4 header checksum and the L4 checksum where the frame still allows,
    /// so mutations reach the deeper parsers instead of all dying at a checksum.</summary>
    private static void FixChecksums(Span<byte> f)
    {
        if (f.Length < 34 || f[12] != 0x08 || f[13] != 0x00) return;
        var ip = f[14..];
        int ihl = (ip[0] & 0xF) * 4;
        if (ihl < 20 || ihl > ip.Length) return;
        ip[10] = 0; ip[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip[..ihl]));
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (total < ihl || total > ip.Length || (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3FFF) != 0) return;
        var l4 = ip[ihl..total];
        var src = Ipv4Address.Read(ip[12..]);
        var dst = Ipv4Address.Read(ip[16..]);
        switch (ip[9])
        {
            case IpProtocol.Icmp when l4.Length >= 8:
                l4[2] = 0; l4[3] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(l4[2..], InternetChecksum.Compute(l4));
                break;
            case IpProtocol.Udp when l4.Length >= 8:
                int ulen = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
                if (ulen < 8 || ulen > l4.Length) return;
                new UdpRepr(BinaryPrimitives.ReadUInt16BigEndian(l4), BinaryPrimitives.ReadUInt16BigEndian(l4[2..])).Emit(l4[..ulen], src, dst);
                break;
            case IpProtocol.Tcp when l4.Length >= 20:
                TcpHeader.WriteChecksum(l4, src, dst);
                break;
        }
    }

    [Test]
    public void MutatedFramesAreCountedNeverThrownAndLeakNothing()
    {
        const int Frames = 220_000;
        var rng = new Random(20261124);
        using var nic = new TestNic(MacA, poolSize: 256);
        var s = new NetStack(ConfigFor(IpA, gateway: Ipv4Address.Parse("10.0.0.254")), nic);
        Assert.That(s.Open(SocketKind.Udp, out var bound), Is.EqualTo(Errno.Ok));
        Assert.That(s.Bind(bound, new Ipv4Endpoint(Ipv4Address.Any, 5000)), Is.EqualTo(Errno.Ok));
        Assert.That(s.Open(SocketKind.Udp, out var connected), Is.EqualTo(Errno.Ok));
        Assert.That(s.Connect(connected, new Ipv4Endpoint(IpHost, 9)), Is.EqualTo(Errno.Ok));
        Assert.That(s.GetLocalEndpoint(connected, out var local), Is.EqualTo(Errno.Ok));
        Assert.That(s.Open(SocketKind.Tcp, out var listener), Is.EqualTo(Errno.Ok));
        Assert.That(s.Bind(listener, new Ipv4Endpoint(Ipv4Address.Any, 80)), Is.EqualTo(Errno.Ok));
        Assert.That(s.Listen(listener, 16), Is.EqualTo(Errno.Ok));
        var corpus = Corpus(local.Port);
        var now = Instant.FromMilliseconds(1);
        var frame = new byte[2000];
        var rx = new byte[70000];
        int injected = 0;

        while (injected < Frames)
        {
            for (int k = 0; k < 32 && injected < Frames; k++, injected++)
            {
                var seed = corpus[rng.Next(corpus.Count)];
                int len = seed.Length;
                seed.CopyTo(frame, 0);
                int mutations = rng.Next(0, 5);
                for (int m = 0; m < mutations; m++)
                {
                    switch (rng.Next(6))
                    {
                        case 0: frame[rng.Next(len)] ^= (byte)(1 << rng.Next(8)); break;
                        case 1: frame[14 + rng.Next(Math.Max(1, len - 14))] = (byte)rng.Next(256); break;
                        case 2: frame[14 + rng.Next(Math.Max(1, len - 14))] = rng.Next(2) == 0 ? (byte)0 : (byte)0xFF; break;
                        case 3: len = rng.Next(0, len + 1); break;
                        case 4:
                            int grow = rng.Next(1, 64);
                            if (len + grow <= frame.Length)
                            {
                                rng.NextBytes(frame.AsSpan(len, grow));
                                len += grow;
                            }
                            break;
                        case 5: BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14 + 2 * rng.Next(Math.Max(1, (len - 16) / 2))), (ushort)rng.Next(65536)); break;
                    }
                }
                if (rng.Next(3) != 0) FixChecksums(frame.AsSpan(0, len));
                nic.Inject(frame.AsSpan(0, len));
            }
            s.Poll(now);
            while (nic.Sent.TryDequeue(out var b)) b.Release();
            if (rng.Next(8) == 0)
            {
                while (s.ReceiveFrom(bound, rx, MessageFlags.None, out _, out _) == Errno.Ok) { }
                s.TakeError(connected);
                while (s.Accept(listener, out var conn, out _) == Errno.Ok) s.Close(conn);
                s.SendTo(bound, "reply"u8, new Ipv4Endpoint(IpHost, 1234), MessageFlags.None, out _);
            }
            now += TimeSpanMicros.FromMilliseconds(rng.Next(0, 300));
        }

        Assert.That(s.Counters.Link.FramesReceived, Is.EqualTo(Frames));
        Assert.That(s.Counters.SumOfFrameOutcomes(), Is.EqualTo(Frames), s.Counters.ToString());
        // The corpus reaches deep: these outcomes all occurred.
        var c = s.Counters;
        Assert.That(new[] { c.Udp.Delivered, c.Icmp.EchoRequestsAnswered, c.Arp.RequestsAnswered, c.Ip.FragmentsStored,
                            c.Icmp.ErrorsDelivered, c.Tcp.Delivered, c.Udp.NoPort, c.Ip.BadChecksum, c.Link.RxTooShort, c.Ip.Malformed },
                    Has.All.GreaterThan(0), c.ToString());

        s.Close(bound);
        s.Close(connected);
        s.Close(listener);
        for (int i = 1; i <= 60; i++) s.Poll(now + TimeSpanMicros.FromSeconds(10 * i)); // TCP and reassembly timers run out
        s.Shutdown();
        nic.DrainAll();
        Assert.That(nic.Pool.InUse, Is.Zero, "pool back to baseline");
        Assert.That(s.Arp.PendingPackets, Is.Zero);
        Assert.That(s.Ip.Reassembler.InProgress, Is.Zero, "reassembly timed out");
        Assert.That(s.Udp.OpenSockets, Is.Zero);
        Assert.That(s.Tcp.LiveConnections, Is.Zero, "TCP pool back to baseline");
    }
}

using System.Buffers.Binary;
using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>
/// A million seeded, mutated frames into stack A while it holds live ESTABLISHED TCP connections (both
/// directions of open), UDP sockets and a listener with a peer stack B on a user-vbridge, and while real
/// traffic flows on all of them. Nothing may escape; every frame ends in exactly one outcome counter; the live
/// connections deliver every byte exactly; every pool returns to its baseline.
/// <para>
/// Honesty about RFC 5961: an attacker who knows a live 4-tuple can legitimately hurt it (an in-window segment
/// with an acceptable ACK is data; a RST with SEG.SEQ = RCV.NXT is a reset). So the frames aimed at the live
/// connections are built to be ones the RFCs say must be discarded without effect, and each is checked against
/// the connection's state at the moment the stack processes it (injected frames go ahead of the peer's in the
/// next poll, and none of them can move RCV.NXT, SND.UNA or TS.Recent, so the state the generator read is the
/// state the stack uses):
/// (a) SEG.SEQ far outside the receive window, any flags, ACK, options, payload (RFC 9293 §3.10.7.4, first check);
/// (b) RST in the window but not at RCV.NXT (RFC 5961 §3.2: challenge ACK);
/// (c) SYN in a synchronized state (RFC 5961 §4.2: challenge ACK);
/// (d) SEG.ACK beyond SND.MAX (RFC 9293 §3.10.7.4 fifth check: ACK and drop, text and FIN included);
/// (e) SEG.ACK below SND.UNA − MAX.SND.WND (RFC 5961 §5.2: challenge ACK and drop);
/// (f) no ACK bit (RFC 9293 §3.10.7.4 fifth check: drop);
/// (g) TSval older than TS.Recent (PAWS, RFC 7323 §5.3), with an otherwise acceptable ACK and data.
/// Randomly mutated frames (which could turn into anything) never carry the peer's address: <see cref="Guard"/>
/// rewrites it, so they reach the parsers, the listener, ARP, reassembly and ICMP but cannot impersonate B.
/// And the case the RFC says must succeed is checked too: two sacrificial "victim" connections each get one RST
/// with SEG.SEQ = RCV.NXT; exactly those two must be reset, and every other connection must survive.
/// </para>
/// </summary>
public class FuzzTests
{
    private const ushort ListenA = 80, ListenB = 8080, UdpA = 5000, UdpB = 6000;
    private const int StreamBytes = 1_000_000;
    private static readonly Ipv4Address Gateway = Ipv4Address.Parse("10.0.0.254");

    /// <summary>Byte <paramref name="pos"/> of stream <paramref name="id"/>: position-derived, so a lost,
    /// duplicated or misplaced byte shows.</summary>
    private static byte Pattern(int id, long pos) => (byte)((ulong)(pos * 2654435761L + id * 0x9E3779B9L) >> 13);

    private sealed class Stream
    {
        public required int Id;
        public required NetStack From, To;
        public required SocketHandle Tx, Rx;
        public long Sent, Received;
        public long PausedUntilRound;
        public bool Dead;
    }

    private sealed class Conn
    {
        public SocketHandle OnA = SocketHandle.Invalid, OnB = SocketHandle.Invalid;
        public ushort PortA, PortB;
        public bool Victim;
        public bool ResetInjected, ResetSeen;
        public Stream AtoB = null!, BtoA = null!;
    }

    // ------------------------------------------------------------------ frame helpers

    private static int L3Offset(ReadOnlySpan<byte> f, out ushort etherType)
    {
        etherType = 0;
        if (f.Length < 14) return -1;
        etherType = BinaryPrimitives.ReadUInt16BigEndian(f[12..]);
        if (etherType != EtherType.Vlan) return 14;
        if (f.Length < 18) return -1;
        etherType = BinaryPrimitives.ReadUInt16BigEndian(f[16..]);
        return 18;
    }

    /// <summary>Recomputes the IPv4 header checksum and the L4 checksum where the frame still allows,
    /// so mutations reach the deeper parsers instead of all dying at a checksum.</summary>
    private static void FixChecksums(Span<byte> f)
    {
        int off = L3Offset(f, out ushort et);
        if (off < 0 || et != EtherType.Ipv4 || f.Length < off + 20) return;
        var ip = f[off..];
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

    /// <summary>RFC 1624 incremental update of the checksum at <paramref name="at"/> for one 16-bit word changed.</summary>
    private static void AdjustChecksum(Span<byte> at, ushort oldWord, ushort newWord)
    {
        uint sum = (ushort)~BinaryPrimitives.ReadUInt16BigEndian(at) + (uint)(ushort)~oldWord + newWord;
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(at, (ushort)~sum);
    }

    /// <summary>
    /// Keeps a randomly mutated frame from impersonating the peer: an ARP sender or IPv4 source equal to B's
    /// address becomes the stranger's, with the IP and TCP/UDP checksums adjusted so a frame that was valid
    /// stays valid (and an invalid one invalid). Then no mutated frame can reach a live connection or poison the
    /// ARP entry of B; only the generator's frames, safe by construction, do.
    /// </summary>
    private static void Guard(Span<byte> f)
    {
        int off = L3Offset(f, out ushort et);
        if (off < 0) return;
        if (et == EtherType.Arp)
        {
            if (f.Length >= off + 18 && Ipv4Address.Read(f[(off + 14)..]) == IpB) IpHost.Write(f[(off + 14)..]);
            return;
        }
        if (et != EtherType.Ipv4 || f.Length < off + 16 || Ipv4Address.Read(f[(off + 12)..]) != IpB) return;
        var ip = f[off..];
        uint oldSrc = IpB.Value, newSrc = IpHost.Value;
        IpHost.Write(ip[12..]);
        if (ip.Length < 12) return;
        AdjustChecksum(ip[10..], (ushort)(oldSrc >> 16), (ushort)(newSrc >> 16));
        AdjustChecksum(ip[10..], (ushort)oldSrc, (ushort)newSrc);
        int ihl = (ip[0] & 0xF) * 4;
        if (ihl < 20 || ip.Length < ihl || (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1FFF) != 0) return;
        int csum = ip[9] switch { IpProtocol.Tcp => 16, IpProtocol.Udp => 6, _ => -1 };
        if (csum < 0 || ip.Length < ihl + csum + 2) return;
        var c = ip[(ihl + csum)..];
        if (ip[9] == IpProtocol.Udp && c[0] == 0 && c[1] == 0) return; // no UDP checksum
        AdjustChecksum(c, (ushort)(oldSrc >> 16), (ushort)(newSrc >> 16));
        AdjustChecksum(c, (ushort)oldSrc, (ushort)newSrc);
    }

    /// <summary>Ethernet (B → A) + IPv4 (B → A) + TCP around <paramref name="h"/>; returns the frame length.</summary>
    private static int BuildSegment(Span<byte> frame, in TcpRepr h, ReadOnlySpan<byte> payload, Random rng, bool garbageOptions, ushort ipId)
    {
        new EthernetRepr(MacA, MacB, EtherType.Ipv4).Emit(frame);
        var seg = frame[34..];
        int hlen = TcpHeader.Emit(h, seg);
        if (garbageOptions)
        {
            // Option bytes the parser must survive (unknown kinds, bad lengths, EOL early); the data offset
            // covers them, so the fixed header (ports, SEQ, ACK, flags) keeps its meaning.
            int extra = 4 * rng.Next(1, (60 - hlen) / 4 + 1);
            if (hlen + extra <= 60)
            {
                rng.NextBytes(seg.Slice(hlen, extra));
                hlen += extra;
                seg[12] = (byte)((hlen / 4) << 4);
            }
        }
        payload.CopyTo(seg[hlen..]);
        int tcpLen = hlen + payload.Length;
        TcpHeader.WriteChecksum(seg[..tcpLen], IpB, IpA);
        new Ipv4Repr { Source = IpB, Destination = IpA, Protocol = IpProtocol.Tcp, Ttl = (byte)rng.Next(1, 256), Identification = ipId, PayloadLength = tcpLen }
            .Emit(frame[14..]);
        return 34 + tcpLen;
    }

    private static void InjectFragment(InjectingNic nic, byte[] buf, ReadOnlySpan<byte> data, ushort id, int fragOffset, bool more)
    {
        new EthernetRepr(MacA, MacB, EtherType.Ipv4).Emit(buf);
        new Ipv4Repr { Source = IpB, Destination = IpA, Protocol = IpProtocol.Tcp, Ttl = 64, Identification = id, FragmentOffset = fragOffset, MoreFragments = more, PayloadLength = data.Length }
            .Emit(buf.AsSpan(14));
        data.CopyTo(buf.AsSpan(34));
        nic.Inject(buf.AsSpan(0, 34 + data.Length));
    }

    private static TcpFlags Some(Random rng, TcpFlags allowed) => (TcpFlags)(rng.Next(256) & (int)allowed);

    /// <summary>
    /// A valid-looking segment (checksums right) to the live connection <paramref name="c"/> that the RFCs say
    /// must be discarded (classes a–g of the class comment), built from the connection's current state.
    /// </summary>
    private static int LiveSegment(Span<byte> frame, Tcb t, Random rng, byte[] payloadScratch, ushort ipId, out int cls)
    {
        const TcpFlags Harmless = TcpFlags.Psh | TcpFlags.Fin | TcpFlags.Urg | TcpFlags.Ece | TcpFlags.Cwr;
        var h = new TcpRepr { SrcPort = t.RemotePort, DstPort = t.LocalPort, Window = (ushort)rng.Next(65536), Options = TcpOptions.None, Ack = new SeqNum((uint)rng.NextInt64(1L << 32)) };
        uint wnd = (uint)Math.Max(0, t.RcvAdv - t.RcvNxt);
        SeqNum inWindow = t.RcvNxt + (int)(wnd == 0 ? 0 : (uint)rng.NextInt64(wnd));
        cls = rng.Next(t.TsOk ? 7 : 6);
        bool garbage = rng.Next(4) == 0;
        if (rng.Next(3) == 0)
        {
            // Well-formed options with arbitrary values (SACK blocks anywhere, any timestamps).
            if (rng.Next(2) == 0) h.Options.Mss = (ushort)rng.Next(65536);
            if (rng.Next(2) == 0) h.Options.WindowScale = (byte)rng.Next(15);
            h.Options.SackPermitted = rng.Next(2) == 0;
            if (rng.Next(2) == 0) { h.Options.HasTimestamp = true; h.Options.TsVal = t.TsRecent + (uint)rng.Next(-5000, 5000); h.Options.TsEcr = (uint)rng.NextInt64(1L << 32); }
            h.Options.SackCount = (byte)rng.Next(0, 5);
            for (int i = 0; i < h.Options.SackCount; i++)
            {
                var l = t.SndUna + rng.Next(-100_000, 300_000);
                h.Options.Sack[i] = new SackBlock(l, l + rng.Next(-2000, 70_000));
            }
        }
        switch (cls)
        {
            case 0: // (a) far outside the window, on either side: anything goes
                h.Seq = rng.Next(2) == 0 ? t.RcvNxt + (int)(wnd + (1u << 20) + (uint)rng.Next(1 << 30)) : t.RcvNxt - ((1 << 20) + rng.Next(1 << 30));
                h.Flags = (TcpFlags)rng.Next(256);
                break;
            case 1: // (b) RST in the window, not at RCV.NXT
                h.Seq = inWindow == t.RcvNxt ? inWindow + rng.Next(1, 1 << 16) : inWindow;
                h.Flags = TcpFlags.Rst | Some(rng, Harmless | TcpFlags.Ack);
                break;
            case 2: // (c) SYN in a synchronized state
                h.Seq = rng.Next(2) == 0 ? inWindow : new SeqNum((uint)rng.NextInt64(1L << 32));
                h.Flags = TcpFlags.Syn | Some(rng, TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Urg | TcpFlags.Ece | TcpFlags.Cwr);
                break;
            case 3: // (d) ACK of data never sent
                h.Seq = inWindow;
                h.Flags = TcpFlags.Ack | Some(rng, Harmless);
                h.Ack = t.SndMax + (1 << 20) + rng.Next(1 << 29);
                break;
            case 4: // (e) ACK older than SND.UNA - MAX.SND.WND
                h.Seq = inWindow;
                h.Flags = TcpFlags.Ack | Some(rng, Harmless);
                h.Ack = t.SndUna - (int)Math.Max(t.MaxSndWnd, 1u) - (1 << 20) - rng.Next(1 << 29);
                break;
            case 5: // (f) no ACK bit
                h.Seq = inWindow;
                h.Flags = Some(rng, Harmless);
                break;
            default: // (g) PAWS: an old timestamp on an otherwise acceptable segment; options must parse as built
                h.Seq = inWindow;
                h.Flags = TcpFlags.Ack | Some(rng, TcpFlags.Psh | TcpFlags.Fin);
                h.Ack = t.SndUna;
                h.Options = TcpOptions.None;
                h.Options.HasTimestamp = true;
                h.Options.TsVal = t.TsRecent - 1 - (uint)rng.Next(1 << 30);
                h.Options.TsEcr = (uint)rng.NextInt64(1L << 32);
                garbage = false;
                break;
        }
        int plen = rng.Next(3) == 0 ? 0 : rng.Next(1, 1400);
        rng.NextBytes(payloadScratch.AsSpan(0, plen));
        return BuildSegment(frame, h, payloadScratch.AsSpan(0, plen), rng, garbage, ipId);
    }

    /// <summary>An ICMP error from a router, the stranger or B quoting one of A's connections or its connected
    /// UDP socket, with an in-flight or arbitrary sequence number and a next-hop MTU from tiny to jumbo.</summary>
    private static int IcmpError(Span<byte> frame, Tcb? t, ushort udpLocalPort, Random rng)
    {
        ReadOnlySpan<ushort> mtus = [0, 68, 100, 296, 508, 576, 1006, 1280, 1400, 1492, 1500, 9000];
        int quoteL4 = rng.Next(4) == 0 ? 28 : 8;
        Span<byte> m = stackalloc byte[8 + 20 + 28];
        m = m[..(8 + 20 + quoteL4)];
        m.Clear();
        var quoted = m[8..];
        bool tcp = t is not null;
        new Ipv4Repr { Source = IpA, Destination = tcp ? IpB : IpHost, Protocol = tcp ? IpProtocol.Tcp : IpProtocol.Udp, Ttl = 64, DontFragment = true, PayloadLength = rng.Next(8, 1481) }.Emit(quoted);
        var l4 = quoted[20..];
        rng.NextBytes(l4);
        if (tcp)
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4, t!.LocalPort);
            BinaryPrimitives.WriteUInt16BigEndian(l4[2..], t.RemotePort);
            uint flight = (uint)Math.Max(0, t.SndMax - t.SndUna);
            BinaryPrimitives.WriteUInt32BigEndian(l4[4..], rng.Next(3) != 0 ? (t.SndUna + (int)(uint)rng.NextInt64(flight + 1)).Value : (uint)rng.NextInt64(1L << 32));
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4, udpLocalPort);
            BinaryPrimitives.WriteUInt16BigEndian(l4[2..], 9);
        }
        int kind = rng.Next(10);
        byte code = kind < 4 ? Icmpv4UnreachableCode.FragmentationNeeded : (byte)rng.Next(16);
        var type = kind < 8 ? Icmpv4Type.DestinationUnreachable : kind == 8 ? Icmpv4Type.TimeExceeded : (Icmpv4Type)rng.Next(4, 13);
        new Icmpv4Repr(type, code, 0, 0, mtus[rng.Next(mtus.Length)]).Emit(m);
        var src = rng.Next(3) switch { 0 => IpHost, 1 => Gateway, _ => IpB };
        new EthernetRepr(MacA, rng.Next(2) == 0 ? MacHost : MacB, EtherType.Ipv4).Emit(frame);
        new Ipv4Repr { Source = src, Destination = IpA, Protocol = IpProtocol.Icmp, Ttl = 64, PayloadLength = m.Length }.Emit(frame[14..]);
        m.CopyTo(frame[34..]);
        return 34 + m.Length;
    }

    private static List<byte[]> Corpus(ushort connectedUdpPort, ushort[] liveLocalPorts)
    {
        var c = new List<byte[]>
        {
            Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA, MacAddress.Broadcast),
            Arp(ArpOperation.Reply, MacHost, IpHost, MacA, IpA, MacA),
            Arp(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpHost, MacAddress.Broadcast),
            Arp(ArpOperation.Reply, MacHost, IpA, MacA, IpA, MacA), // claims our address
            Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, EchoRequest(1, 2, "abcdefgh"u8)),
            Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1234, UdpA, "to a bound port"u8)),
            Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, Udp(IpHost, IpA, 1234, 5001, "to a closed port"u8)),
            Ipv4Frame(MacHost, MacAddress.Broadcast, IpHost, Ipv4Address.Parse("10.0.0.255"), IpProtocol.Udp, Udp(IpHost, Ipv4Address.Parse("10.0.0.255"), 1, UdpA, "bcast"u8)),
            Ipv4Frame(MacHost, MacA, IpHost, IpA, 99, "unknown protocol"u8),
        };
        // TCP from the stranger: a SYN with every option to the listener, and segments to the live local ports
        // (the stranger's 4-tuples are not the live ones: these meet the listener or the no-socket path).
        var tcp = new TcpRepr { SrcPort = 4000, DstPort = ListenA, Seq = new SeqNum(1), Flags = TcpFlags.Syn, Window = 1000, Options = TcpOptions.None };
        tcp.Options.Mss = 1460; tcp.Options.SackPermitted = true; tcp.Options.HasTimestamp = true; tcp.Options.WindowScale = 7;
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Tcp, Segment(tcp, default)));
        foreach (ushort p in liveLocalPorts)
        {
            var d = new TcpRepr { SrcPort = ListenB, DstPort = p, Seq = new SeqNum(77), Ack = new SeqNum(99), Flags = TcpFlags.Ack | TcpFlags.Psh, Window = 500, Options = TcpOptions.None };
            d.Options.HasTimestamp = true; d.Options.TsVal = 5; d.Options.SackCount = 2;
            d.Options.Sack[0] = new SackBlock(new SeqNum(100), new SeqNum(200));
            d.Options.Sack[1] = new SackBlock(new SeqNum(300), new SeqNum(400));
            c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Tcp, Segment(d, "payload bytes"u8)));
        }
        // Fragments of one UDP datagram to the bound port, and of a TCP segment.
        var big = Udp(IpHost, IpA, 1234, UdpA, new byte[2000]);
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, big.AsSpan(0, 1480), id: 42, more: true));
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Udp, big.AsSpan(1480), id: 42, more: false, fragOffset: 1480));
        var seg = Segment(tcp, new byte[600]);
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Tcp, seg.AsSpan(0, 304), id: 43, more: true));
        c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Tcp, seg.AsSpan(304), id: 43, more: false, fragOffset: 304));
        // ICMP errors quoting a datagram of the connected UDP socket (port unreachable, fragmentation needed).
        var quoted = new byte[28];
        new Ipv4Repr { Source = IpA, Destination = IpHost, Protocol = IpProtocol.Udp, Ttl = 64, PayloadLength = 108 }.Emit(quoted);
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(20), connectedUdpPort);
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(22), 9);
        foreach (var (code, mtu) in new[] { (Icmpv4UnreachableCode.Port, (ushort)0), (Icmpv4UnreachableCode.FragmentationNeeded, (ushort)576) })
        {
            var m = new byte[8 + quoted.Length];
            quoted.CopyTo(m, 8);
            Icmpv4Repr.Unreachable(code, mtu).Emit(m);
            c.Add(Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, m));
        }
        // 802.1Q-tagged ARP and IPv4 (this stack runs untagged: counted drops).
        var vlan = new byte[18 + 28];
        new EthernetRepr(MacA, MacHost, EtherType.Arp, 5, true).Emit(vlan);
        new ArpRepr(ArpOperation.Request, MacHost, IpHost, MacAddress.Zero, IpA).Emit(vlan.AsSpan(18));
        c.Add(vlan);
        var plain = Ipv4Frame(MacHost, MacA, IpHost, IpA, IpProtocol.Icmp, EchoRequest(3, 4, "tagged"u8));
        var tagged = new byte[plain.Length + 4];
        new EthernetRepr(MacA, MacHost, EtherType.Ipv4, 7, true, 3).Emit(tagged);
        plain.AsSpan(14).CopyTo(tagged.AsSpan(18));
        c.Add(tagged);
        // IPv4 with options (IHL 7): RFC 791 options the stack must skip.
        var withOptions = new byte[14 + 28 + 8 + 6];
        new EthernetRepr(MacA, MacHost, EtherType.Ipv4).Emit(withOptions);
        var ipo = withOptions.AsSpan(14);
        new Ipv4Repr { Source = IpHost, Destination = IpA, Protocol = IpProtocol.Icmp, Ttl = 64, PayloadLength = 8 + 8 + 6 }.Emit(ipo);
        ipo[0] = 0x47;
        ipo[20] = 0x01; ipo[21] = 0x07; ipo[22] = 0x03; ipo[23] = 0x04; ipo[24] = 0x01; ipo[25] = 0x01; ipo[26] = 0x01; ipo[27] = 0x00;
        EchoRequest(9, 9, "optio"u8).CopyTo(ipo[28..]);
        c.Add(withOptions);
        return c;
    }

    private static byte[] Segment(in TcpRepr h, ReadOnlySpan<byte> payload)
    {
        var s = new byte[TcpHeader.EmittedLength(h) + payload.Length];
        int hlen = TcpHeader.Emit(h, s);
        payload.CopyTo(s.AsSpan(hlen));
        TcpHeader.WriteChecksum(s, IpHost, IpA);
        return s;
    }

    /// <summary>Bit flips, byte overwrites, truncation, growth, length-field lies, inserted garbage (options),
    /// inserted 802.1Q tags; the checksums are then fixed two times in three so the lies get past them.</summary>
    private static int Mutate(byte[] frame, int len, Random rng)
    {
        int mutations = rng.Next(1, 5);
        for (int m = 0; m < mutations && len > 0; m++)
        {
            int off = L3Offset(frame.AsSpan(0, len), out _);
            switch (rng.Next(9))
            {
                case 0: frame[rng.Next(len)] ^= (byte)(1 << rng.Next(8)); break;
                case 1: frame[Math.Min(len - 1, 14 + rng.Next(Math.Max(1, len - 14)))] = (byte)rng.Next(256); break;
                case 2: frame[Math.Min(len - 1, 14 + rng.Next(Math.Max(1, len - 14)))] = rng.Next(2) == 0 ? (byte)0 : (byte)0xFF; break;
                case 3: len = rng.Next(0, len + 1); break;
                case 4:
                    int grow = rng.Next(1, 64);
                    if (len + grow <= frame.Length) { rng.NextBytes(frame.AsSpan(len, grow)); len += grow; }
                    break;
                case 5:
                    if (len >= 16) BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14 + 2 * rng.Next(Math.Max(1, (len - 16) / 2))), (ushort)rng.Next(65536));
                    break;
                case 6:
                    // A length field lies: IHL, total length, fragment field, UDP length or TCP data offset.
                    if (off < 0 || len < off + 20) break;
                    var ip = frame.AsSpan(off, len - off);
                    int ihl = Math.Max(20, (ip[0] & 0xF) * 4);
                    switch (rng.Next(5))
                    {
                        case 0: ip[0] = (byte)(0x40 | rng.Next(16)); break;
                        case 1: BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)Math.Max(0, ip.Length + rng.Next(-40, 40))); break;
                        case 2: BinaryPrimitives.WriteUInt16BigEndian(ip[6..], (ushort)rng.Next(65536)); break;
                        case 3: if (ip.Length >= ihl + 6) BinaryPrimitives.WriteUInt16BigEndian(ip[(ihl + 4)..], (ushort)rng.Next(0, ip.Length + 20)); break;
                        case 4: if (ip.Length >= ihl + 13) ip[ihl + 12] = (byte)((rng.Next(16) << 4) | (ip[ihl + 12] & 0xF)); break;
                    }
                    break;
                case 7:
                    // Inserted garbage: shifts everything after it (IP options, TCP options, payload).
                    int ins = rng.Next(1, 41);
                    if (len + ins > frame.Length) break;
                    int at = rng.Next(Math.Min(len, 14), len + 1);
                    frame.AsSpan(at, len - at).CopyTo(frame.AsSpan(at + ins));
                    rng.NextBytes(frame.AsSpan(at, ins));
                    len += ins;
                    break;
                case 8:
                    // An 802.1Q tag (any id and priority) inserted after the MAC addresses.
                    if (len < 12 || len + 4 > frame.Length) break;
                    frame.AsSpan(12, len - 12).CopyTo(frame.AsSpan(16));
                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), EtherType.Vlan);
                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), (ushort)rng.Next(65536));
                    len += 4;
                    break;
            }
        }
        if (rng.Next(3) != 0) FixChecksums(frame.AsSpan(0, len));
        return len;
    }

    private static string Describe(object counters)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var f in counters.GetType().GetFields())
            if (f.GetValue(counters) is long v && v != 0) sb.Append("Tcp.").Append(f.Name).Append(" = ").Append(v).Append('\n');
        return sb.ToString();
    }

    /// <summary>The full run untagged; a shorter one with both stacks on VLAN 42 (frames injected mostly tagged
    /// 42, some with another id or none).</summary>
    [TestCase(-1, 1_000_000)]
    [TestCase(42, 200_000)]
    public void MutatedFramesIntoAStackWithLiveConnections(int vlan, int frames)
    {
        const int LiveConns = 8, Victims = 2;
        var rng = new Random(20261124);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var va = new UserVeth(new UserVethOptions { MacAddress = MacA, Name = "fuzz-a" });
        var vb = new UserVeth(new UserVethOptions { MacAddress = MacB, Name = "fuzz-b" });
        var bridge = new UserVbridge();
        bridge.AddPort(va);
        bridge.AddPort(vb);
        var nic = new InjectingNic(va);
        try
        {
            StackConfig Sized(Ipv4Address ip, ulong secret) => ConfigFor(ip, Gateway) with
            {
                Secret = secret, MaxTcpConnections = 64, TcpSendBufferBytes = 64 * 1024, TcpReceiveBufferBytes = 64 * 1024, VlanId = vlan,
            };
            var a = new NetStack(Sized(IpA, 0xA11CE), nic);
            var b = new NetStack(Sized(IpB, 0xB0B), vb);
            var now = Instant.FromMilliseconds(1);

            void Step()
            {
                a.Poll(now);
                for (int i = 0; i < 64 && (nic.Pending > 0 || va.PendingReceive(0) > 0); i++) a.Poll(now);
                b.Poll(now);
                for (int i = 0; i < 64 && vb.PendingReceive(0) > 0; i++) b.Poll(now);
                bridge.Pump(now);
            }

            // ---- set-up: a listener on each side, connections opened from both sides, UDP sockets.
            Assert.That(a.Open(SocketKind.Tcp, out var listenA), Is.EqualTo(Errno.Ok));
            Assert.That(a.Bind(listenA, new Ipv4Endpoint(Ipv4Address.Any, ListenA)), Is.EqualTo(Errno.Ok));
            Assert.That(a.Listen(listenA, 16), Is.EqualTo(Errno.Ok));
            Assert.That(b.Open(SocketKind.Tcp, out var listenB), Is.EqualTo(Errno.Ok));
            Assert.That(b.Bind(listenB, new Ipv4Endpoint(Ipv4Address.Any, ListenB)), Is.EqualTo(Errno.Ok));
            Assert.That(b.Listen(listenB, 16), Is.EqualTo(Errno.Ok));
            var conns = new List<Conn>();
            for (int i = 0; i < LiveConns + Victims; i++)
            {
                var c = new Conn { Victim = i >= LiveConns };
                bool fromA = c.Victim || i % 2 == 0;
                var (opener, peer) = fromA ? (a, IpB) : (b, IpA);
                Assert.That(opener.Open(SocketKind.Tcp, out var h), Is.EqualTo(Errno.Ok));
                Assert.That(opener.Connect(h, new Ipv4Endpoint(peer, fromA ? ListenB : ListenA)), Is.EqualTo(Errno.EINPROGRESS));
                Assert.That(opener.GetLocalEndpoint(h, out var local), Is.EqualTo(Errno.Ok));
                if (fromA) { c.OnA = h; c.PortA = local.Port; c.PortB = ListenB; }
                else { c.OnB = h; c.PortB = local.Port; c.PortA = ListenA; }
                conns.Add(c);
            }
            // Up to 2 s of virtual time: SYNs that queued behind ARP beyond its queue go again after the 1 s RTO, and
            // the ACK that completes an open may wait 1 ms for data to carry it (TcpLayer.AckSoonEnabled).
            for (int r = 0; r < 20_000 && conns.Exists(c => !c.OnA.IsValid || !c.OnB.IsValid); r++)
            {
                Step();
                now += new TimeSpanMicros(100);
                while (a.Accept(listenA, out var h, out var remote) == Errno.Ok) conns.Find(c => c.PortB == remote.Port && !c.OnA.IsValid)!.OnA = h;
                while (b.Accept(listenB, out var h, out var remote) == Errno.Ok) conns.Find(c => c.PortA == remote.Port && !c.OnB.IsValid)!.OnB = h;
            }
            Assert.That(conns.TrueForAll(c => a.Tcp.GetState(c.OnA) == TcpState.Established && b.Tcp.GetState(c.OnB) == TcpState.Established), Is.True, "connections up");
            var streams = new List<Stream>();
            foreach (var c in conns)
            {
                c.AtoB = new Stream { Id = streams.Count, From = a, To = b, Tx = c.OnA, Rx = c.OnB };
                streams.Add(c.AtoB);
                c.BtoA = new Stream { Id = streams.Count, From = b, To = a, Tx = c.OnB, Rx = c.OnA };
                streams.Add(c.BtoA);
            }
            Assert.That(a.Open(SocketKind.Udp, out var udpA), Is.EqualTo(Errno.Ok));
            Assert.That(a.Bind(udpA, new Ipv4Endpoint(Ipv4Address.Any, UdpA)), Is.EqualTo(Errno.Ok));
            Assert.That(a.Open(SocketKind.Udp, out var udpConnected), Is.EqualTo(Errno.Ok));
            Assert.That(a.Connect(udpConnected, new Ipv4Endpoint(IpHost, 9)), Is.EqualTo(Errno.Ok));
            Assert.That(a.GetLocalEndpoint(udpConnected, out var udpConnectedLocal), Is.EqualTo(Errno.Ok));
            Assert.That(b.Open(SocketKind.Udp, out var udpB), Is.EqualTo(Errno.Ok));
            Assert.That(b.Bind(udpB, new Ipv4Endpoint(Ipv4Address.Any, UdpB)), Is.EqualTo(Errno.Ok));
            int tcpBaseline = a.Tcp.LiveConnections, flowBaseline = a.Tcp.FlowTableCount, udpBaseline = a.Udp.OpenSockets;
            Assert.That(tcpBaseline, Is.EqualTo(1 + LiveConns + Victims));

            if (vlan > 0) nic.TagWith(vlan, new Random(vlan));
            var corpus = Corpus(udpConnectedLocal.Port, conns.ConvertAll(c => c.PortA).ToArray());
            var frame = new byte[4096];
            var fragBuf = new byte[2048];
            var payloadScratch = new byte[2048];
            var sendBuf = new byte[4096];
            var recvBuf = new byte[8192];
            var udpBuf = new byte[2048];
            long round = 0;
            int udpSent = 0, udpReceivedAtA = 0, udpEchoedToB = 0;
            string? failure = null;
            ushort ipId = 1;
            var classes = new long[7];

            void Fail(string what) => failure ??= $"round {round}, {now}: {what}";

            void UdpTraffic(bool send = true)
            {
                if (send && rng.Next(4) == 0)
                {
                    int len = rng.Next(4, 600);
                    BinaryPrimitives.WriteInt32BigEndian(udpBuf, udpSent);
                    for (int i = 4; i < len; i++) udpBuf[i] = Pattern(1000, udpSent * 7919L + i);
                    if (b.SendTo(udpB, udpBuf.AsSpan(0, len), new Ipv4Endpoint(IpA, UdpA), MessageFlags.None, out _) == Errno.Ok) udpSent++;
                }
                Errno e;
                while ((e = a.ReceiveFrom(udpA, recvBuf, MessageFlags.None, out int k, out var from)) != Errno.EAGAIN)
                {
                    if (e != Errno.Ok) { a.TakeError(udpA); continue; }
                    if (from != new Ipv4Endpoint(IpB, UdpB)) continue; // the stranger's datagrams (fuzz)
                    int seq = BinaryPrimitives.ReadInt32BigEndian(recvBuf);
                    if (seq != udpReceivedAtA) { Fail($"UDP at A: datagram {seq}, expected {udpReceivedAtA}"); break; }
                    for (int i = 4; i < k; i++)
                        if (recvBuf[i] != Pattern(1000, seq * 7919L + i)) { Fail($"UDP datagram {seq} byte {i}"); break; }
                    udpReceivedAtA++;
                    if (a.SendTo(udpA, recvBuf.AsSpan(0, k), from, MessageFlags.None, out _) != Errno.Ok) Fail("UDP echo send");
                }
                while (b.ReceiveFrom(udpB, recvBuf, MessageFlags.None, out int k, out var from) == Errno.Ok)
                {
                    if (BinaryPrimitives.ReadInt32BigEndian(recvBuf) != udpEchoedToB) Fail($"UDP echo at B out of order");
                    udpEchoedToB++;
                }
                if (send && rng.Next(64) == 0)
                {
                    // To the stranger: waits in the ARP queue until resolution fails (or the fuzz taught its MAC).
                    a.SendTo(udpA, "to the stranger"u8, new Ipv4Endpoint(IpHost, 1234), MessageFlags.None, out _);
                    a.Send(udpConnected, "connected"u8, MessageFlags.None, out _);
                    a.TakeError(udpConnected);
                }
            }

            void Traffic(double progress)
            {
                foreach (var s in streams)
                {
                    if (s.Dead) continue;
                    long allowed = Math.Min(StreamBytes, (long)(StreamBytes * progress) + 4096);
                    if (s.Sent < allowed && rng.Next(2) == 0)
                    {
                        int len = (int)Math.Min(rng.Next(1, sendBuf.Length), allowed - s.Sent);
                        for (int i = 0; i < len; i++) sendBuf[i] = Pattern(s.Id, s.Sent + i);
                        var e = s.From.Send(s.Tx, sendBuf.AsSpan(0, len), MessageFlags.None, out int k);
                        if (e == Errno.Ok) s.Sent += k;
                        else if (e != Errno.EAGAIN) StreamError(s, e, "send");
                    }
                    if (round < s.PausedUntilRound) continue;
                    if (progress <= 1 && rng.Next(3000) == 0) { s.PausedUntilRound = round + rng.Next(100, 3000); continue; } // the window fills
                    for (int reads = 0; reads < 4; reads++)
                    {
                        var e = s.To.Receive(s.Rx, recvBuf.AsSpan(0, rng.Next(1, recvBuf.Length)), MessageFlags.None, out int k);
                        if (e == Errno.EAGAIN) break;
                        if (e != Errno.Ok) { StreamError(s, e, "receive"); break; }
                        if (k == 0) { Fail($"stream {s.Id}: unexpected EOF"); break; }
                        for (int i = 0; i < k; i++)
                            if (recvBuf[i] != Pattern(s.Id, s.Received + i)) { Fail($"stream {s.Id}: wrong byte at {s.Received + i}"); break; }
                        s.Received += k;
                    }
                }
            }

            void StreamError(Stream s, Errno e, string op)
            {
                Fail($"stream {s.Id}: {op} failed with {e}");
                s.Dead = true;
            }

            // After its RST, a victim is closed at once (RFC 9293 §3.10.7.4: RESET → CLOSED, "connection reset"):
            // what was already readable is still read (byte-exact), then the error, once.
            void CheckVictim(Conn v)
            {
                if (a.Tcp.GetState(v.OnA) != TcpState.Closed) { Fail($"victim {v.BtoA.Id}: {a.Tcp.GetState(v.OnA)} after its RST"); return; }
                while (true)
                {
                    var e = a.Receive(v.OnA, recvBuf, MessageFlags.None, out int k);
                    if (e == Errno.ECONNRESET) { v.ResetSeen = true; return; }
                    if (e != Errno.Ok || k == 0) { Fail($"victim {v.BtoA.Id}: {e}/{k} instead of ECONNRESET"); return; }
                    for (int i = 0; i < k; i++)
                        if (recvBuf[i] != Pattern(v.BtoA.Id, v.BtoA.Received + i)) { Fail($"victim stream {v.BtoA.Id}: wrong byte"); return; }
                    v.BtoA.Received += k;
                }
            }

            // ---- the fuzz: rounds of up to 32 injected frames, then both stacks poll, the bridge switches,
            // and the applications move data on every connection.
            int injected = 0;
            var live = conns.FindAll(c => !c.Victim);
            while (injected < frames && failure is null)
            {
                round++;
                int batch = rng.Next(1, 32); // with a victim's RST at most one burst: all processed first in the next poll
                for (int k = 0; k < batch; k++, injected++)
                {
                    int len;
                    int kind = rng.Next(100);
                    if (kind < 3 && k + 4 <= batch)
                    {
                        // A class-safe segment to a live connection as IP fragments (reordered, overlapping or
                        // duplicated), all in this batch so the datagram completes in this poll; IDs never repeat.
                        var t = a.Tcp.Peek(live[rng.Next(live.Count)].OnA)!;
                        ushort id = ipId++;
                        len = LiveSegment(frame, t, rng, payloadScratch, id, out int cls);
                        classes[cls]++;
                        int l4 = len - 34;
                        int cut = 8 * rng.Next(1, l4 / 8);
                        int firstLen = Math.Min(l4, cut + (rng.Next(2) == 0 ? 8 : 0));
                        bool secondFirst = rng.Next(2) == 0;
                        if (secondFirst) InjectFragment(nic, fragBuf, frame.AsSpan(34 + cut, l4 - cut), id, cut, false);
                        InjectFragment(nic, fragBuf, frame.AsSpan(34, firstLen), id, 0, true);
                        if (rng.Next(4) == 0) { InjectFragment(nic, fragBuf, frame.AsSpan(34, firstLen), id, 0, true); k++; injected++; }
                        if (!secondFirst) InjectFragment(nic, fragBuf, frame.AsSpan(34 + cut, l4 - cut), id, cut, false);
                        k++; injected++;
                        continue;
                    }
                    if (kind < 43)
                    {
                        var t = a.Tcp.Peek(live[rng.Next(live.Count)].OnA)!;
                        len = LiveSegment(frame, t, rng, payloadScratch, ipId++, out int cls);
                        if (rng.Next(10) == 0) { len = Mutate(frame, len, rng); Guard(frame.AsSpan(0, len)); }
                        else classes[cls]++;
                    }
                    else if (kind < 50)
                    {
                        var t = rng.Next(5) == 0 ? null : a.Tcp.Peek(live[rng.Next(live.Count)].OnA);
                        len = IcmpError(frame, t, udpConnectedLocal.Port, rng);
                        if (rng.Next(8) == 0) { len = Mutate(frame, len, rng); Guard(frame.AsSpan(0, len)); }
                    }
                    else
                    {
                        var seed = corpus[rng.Next(corpus.Count)];
                        seed.CopyTo(frame, 0);
                        len = Mutate(frame, seed.Length, rng);
                        Guard(frame.AsSpan(0, len));
                    }
                    nic.Inject(frame.AsSpan(0, len));
                }
                foreach (var v in conns)
                {
                    // RFC 5961 §3.2: a RST at exactly RCV.NXT resets. Each victim gets one, a third and two thirds in.
                    if (!v.Victim || v.ResetInjected || injected < frames * (conns.IndexOf(v) - LiveConns + 1) / (Victims + 1)) continue;
                    var t = a.Tcp.Peek(v.OnA)!;
                    var rst = new TcpRepr { SrcPort = t.RemotePort, DstPort = t.LocalPort, Seq = t.RcvNxt, Flags = TcpFlags.Rst, Options = TcpOptions.None };
                    nic.Inject(frame.AsSpan(0, BuildSegment(frame, rst, default, rng, false, ipId++)), ours: true);
                    v.ResetInjected = true;
                    v.AtoB.Dead = v.BtoA.Dead = true;
                }
                Step();
                foreach (var v in conns) if (v.Victim && v.ResetInjected && !v.ResetSeen) CheckVictim(v);
                while (a.Accept(listenA, out var fuzzConn, out _) == Errno.Ok) a.Close(fuzzConn); // the stranger's
                Traffic((double)injected / frames);
                UdpTraffic();
                now += new TimeSpanMicros(rng.Next(0, 100));
                if (rng.Next(2000) == 0) now += TimeSpanMicros.FromMilliseconds(rng.Next(1, 3000));
            }
            Assert.That(failure, Is.Null, $"A:\n{a.Counters}{Describe(a.Tcp.Counters)}\nB:\n{b.Counters}{Describe(b.Tcp.Counters)}");
            TestContext.Out.WriteLine($"{injected} frames in {round} rounds, virtual {now}, {clock.ElapsedMilliseconds} ms; segments by class a..g: {string.Join(", ", classes)}");

            // ---- the live connections finish their streams, byte-exact.
            for (int r = 0; r < 400_000 && failure is null; r++)
            {
                if (streams.TrueForAll(s => s.Dead || s.Received == StreamBytes)) break;
                round++;
                Step();
                Traffic(2);
                UdpTraffic();
                now += new TimeSpanMicros(100);
            }
            for (int i = 0; i < 4; i++)
            {
                Step();
                UdpTraffic(send: false); // the datagrams and echoes still on their way
            }
            Assert.That(failure, Is.Null, $"A:\n{a.Counters}{Describe(a.Tcp.Counters)}\nB:\n{b.Counters}{Describe(b.Tcp.Counters)}");
            TestContext.Out.WriteLine($"streams done at round {round}, virtual {now}, {clock.ElapsedMilliseconds} ms");
            foreach (var c in live)
                foreach (var s in new[] { c.AtoB, c.BtoA })
                    Assert.That((s.Sent, s.Received), Is.EqualTo(((long)StreamBytes, (long)StreamBytes)), $"stream {s.Id} ({a.Tcp.GetState(c.OnA)}/{b.Tcp.GetState(c.OnB)})");
            Assert.That(udpReceivedAtA, Is.EqualTo(udpSent), "every UDP datagram B sent reached A, in order");
            Assert.That(udpEchoedToB, Is.EqualTo(udpSent), "and every echo came back");
            Assert.That(conns.FindAll(c => c.Victim).TrueForAll(c => c.ResetSeen), Is.True, "each victim was reset by its exact-sequence RST");
            Assert.That(live.TrueForAll(c => a.Tcp.GetState(c.OnA) == TcpState.Established && b.Tcp.GetState(c.OnB) == TcpState.Established), Is.True, "the live connections survived");

            // ---- idle until every timer the fuzz started has run out (SYN-RECEIVED, orphans, TIME-WAIT,
            // reassembly, ARP): with the live connections still open, every pool is back to its baseline.
            foreach (var v in conns.FindAll(c => c.Victim))
            {
                Assert.That(a.Close(v.OnA), Is.EqualTo(Errno.Ok));
                Assert.That(b.Close(v.OnB), Is.EqualTo(Errno.Ok));
            }
            for (int i = 0; i < 4000; i++)
            {
                Step();
                while (a.Accept(listenA, out var fuzzConn, out _) == Errno.Ok) a.Close(fuzzConn);
                UdpTraffic(send: false); // nothing new to the stranger: its ARP queue must drain
                now += TimeSpanMicros.FromMilliseconds(100);
            }
            for (int i = 0; i < 16 && (va.PendingTransmit + vb.PendingTransmit + va.PendingReceive(0) + vb.PendingReceive(0)) > 0; i++) Step();
            Assert.That(a.Tcp.LiveConnections, Is.EqualTo(tcpBaseline - Victims), "TCB pool at baseline (live connections and the listener)");
            Assert.That(a.Tcp.FlowTableCount, Is.EqualTo(flowBaseline - Victims), "flow table at baseline");
            foreach (var c in live)
            {
                foreach (var t in new[] { a.Tcp.Peek(c.OnA)!, b.Tcp.Peek(c.OnB)! })
                    Assert.That((t.SndCount, t.RcvReadable, t.OooCount, t.SackCount), Is.EqualTo((0, 0, 0, 0)), "per-connection rings empty");
            }
            Assert.That(a.Udp.OpenSockets, Is.EqualTo(udpBaseline));
            Assert.That(a.Arp.PendingPackets, Is.Zero, "ARP queue empty");
            Assert.That(a.Ip.Reassembler.InProgress, Is.Zero, "reassembly timed out");
            Assert.That((va.RxPool.InUse, va.TxPool.InUse, vb.RxPool.InUse, vb.TxPool.InUse, nic.Pool.InUse), Is.EqualTo((0, 0, 0, 0, 0)), "packet pools at baseline");

            // ---- every frame is accounted for once, and the generator reached deep.
            var n = a.Counters;
            var tc = a.Tcp.Counters;
            TestContext.Out.WriteLine($"A: {n.Link.FramesReceived} frames received; TCP: {tc.ChallengeAcks} challenge ACKs, {tc.RtoTimeouts} RTOs, {tc.PmtuUpdates} PMTU updates, {n.Tcp.SendFailed} segments not sent ({n.Ip.TxTooBig} too big); ARP: {n.Arp.Evictions} evictions, {n.Arp.PendingQueueFull} queue-full drops");
            Assert.That(n.Link.FramesReceived, Is.GreaterThanOrEqualTo(frames));
            Assert.That(n.SumOfFrameOutcomes(), Is.EqualTo(n.Link.FramesReceived), n.ToString());
            Assert.That(n.Ip.TxTooBig, Is.Zero, "TCP never sized a segment past the path MTU (every connection to B follows it)");
            Assert.That(new[] { n.Udp.Delivered, n.Icmp.EchoRequestsAnswered, n.Arp.RequestsAnswered, n.Ip.FragmentsStored,
                                n.Icmp.ErrorsDelivered, n.Tcp.Delivered, n.Udp.NoPort, n.Ip.BadChecksum, n.Link.RxTooShort, n.Ip.Malformed,
                                vlan > 0 ? n.Link.RxOtherVlan + n.Link.RxUntagged : n.Link.RxVlanTagged, n.Tcp.Malformed, n.Tcp.BadChecksum, n.Arp.AddressConflict,
                                tc.OutOfWindow, tc.RstChallenged, tc.SynChallenged, tc.AckTooNew, tc.AckTooOld, tc.NoAckFlag, tc.PawsRejected,
                                tc.RstOutOfWindow, tc.ChallengeAcks, tc.PmtuUpdates, tc.IcmpSoftErrors, tc.ResetsReceived },
                        Has.All.GreaterThan(0), n + Describe(tc));

            // ---- orderly close of everything: both pools empty.
            foreach (var c in live)
            {
                Assert.That(a.Close(c.OnA), Is.EqualTo(Errno.Ok));
                Assert.That(b.Close(c.OnB), Is.EqualTo(Errno.Ok));
            }
            a.Close(listenA); b.Close(listenB); a.Close(udpA); a.Close(udpConnected); b.Close(udpB);
            for (int i = 0; i < 2000; i++)
            {
                Step();
                now += TimeSpanMicros.FromMilliseconds(100);
            }
            Assert.That((a.Tcp.LiveConnections, b.Tcp.LiveConnections, a.Tcp.FlowTableCount, b.Tcp.FlowTableCount), Is.EqualTo((0, 0, 0, 0)));
            Assert.That((a.Udp.OpenSockets, b.Udp.OpenSockets), Is.EqualTo((0, 0)));
            a.Shutdown();
            b.Shutdown();
            TestContext.Out.WriteLine($"total {clock.ElapsedMilliseconds} ms");
        }
        finally
        {
            nic.Dispose();
            va.Dispose();
            vb.Dispose();
        }
    }
}

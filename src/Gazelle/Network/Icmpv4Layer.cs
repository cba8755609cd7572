using System.Buffers.Binary;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Network;

/// <summary>
/// ICMPv4 for a host (RFC 792, RFC 1122 §3.2.2): answers echo requests, sends rate-limited
/// unreachable errors, and hands received errors to the transport that sent the quoted datagram
/// (fragmentation-needed also lowers the path MTU, RFC 1191).
/// </summary>
public sealed class Icmpv4Layer
{
    /// <summary>Bytes of the offending datagram quoted in errors we send: its header and the start of its
    /// payload, keeping the error within 576 bytes (RFC 1812 §4.3.2.3; RFC 792 needs only 8).</summary>
    public const int MaxQuoted = 576 - Ipv4Repr.HeaderLength - Icmpv4Packet.HeaderLength;

    private readonly Ipv4Layer _ip;
    private readonly long _tokensPerSecond;
    private readonly long _burst;
    // Token bucket in millionths of a token, so refill is integer arithmetic over microseconds.
    private long _microTokens;
    private Instant _lastRefill;

    /// <param name="errorsPerSecond">Sustained rate of errors sent (Linux's icmp_msgs_per_sec default is 1000).</param>
    /// <param name="burst">Errors that may be sent back to back (Linux's icmp_msgs_burst default is 50).</param>
    public Icmpv4Layer(Ipv4Layer ip, IcmpCounters counters, int errorsPerSecond = 1000, int burst = 50)
    {
        _ip = ip;
        Counters = counters;
        _tokensPerSecond = errorsPerSecond;
        _burst = burst;
        _microTokens = burst * 1_000_000L;
    }

    public IcmpCounters Counters { get; }

    /// <summary>The most recent echo reply received (there are no ping sockets; this serves diagnostics and tests).</summary>
    public EchoReplyInfo LastEchoReply { get; private set; }

    /// <summary>Sends an echo request (ping) to <paramref name="destination"/>.</summary>
    public Sockets.Errno SendEchoRequest(Ipv4Address destination, ushort identifier, ushort sequence, ReadOnlySpan<byte> data)
    {
        Span<byte> h = stackalloc byte[Icmpv4Packet.HeaderLength];
        Icmpv4Repr.EchoRequest(identifier, sequence).Emit(h);
        FillChecksum(h, data, default);
        return _ip.Send(new Ipv4SendParams(_ip.LocalAddress, destination, IpProtocol.Icmp), h, data, default);
    }

    /// <summary>Processes a received ICMP message; counts exactly one outcome.</summary>
    public void Input(in Ipv4Repr ip, ReadOnlySpan<byte> bytes, bool broadcast, IIcmpErrorSink sink)
    {
        if (!Icmpv4Packet.TryCreate(bytes, out var p))
        {
            Counters.Malformed++;
            return;
        }
        if (!p.VerifyChecksum())
        {
            Counters.BadChecksum++;
            return;
        }
        if (!Icmpv4Repr.TryParse(p, out var repr))
        {
            Counters.UnsupportedType++;
            return;
        }
        switch (repr.Type)
        {
            case Icmpv4Type.EchoRequest:
                if (broadcast)
                {
                    Counters.BroadcastEchoIgnored++;
                    return;
                }
                Span<byte> h = stackalloc byte[Icmpv4Packet.HeaderLength];
                Icmpv4Repr.EchoReply(repr.Identifier, repr.Sequence).Emit(h);
                FillChecksum(h, p.Payload, default);
                var err = _ip.Send(new Ipv4SendParams(_ip.LocalAddress, ip.Source, IpProtocol.Icmp), h, p.Payload, default);
                if (err != Sockets.Errno.Ok) Counters.EchoReplyFailed++;
                Counters.EchoRequestsAnswered++;
                return;
            case Icmpv4Type.EchoReply:
                LastEchoReply = new EchoReplyInfo(ip.Source, repr.Identifier, repr.Sequence, p.Payload.Length);
                Counters.EchoRepliesReceived++;
                return;
            default:
                ErrorInput(repr, p.Payload, sink);
                return;
        }
    }

    private void ErrorInput(in Icmpv4Repr repr, ReadOnlySpan<byte> quoted, IIcmpErrorSink sink)
    {
        // RFC 1122 §3.2.2: the quoted IP header plus at least 8 bytes (the ports) identify the endpoint.
        if (!Ipv4Packet.TryCreateQuoted(quoted, out var q) || q.Payload.Length < 4)
        {
            Counters.Malformed++;
            return;
        }
        if (q.Source != _ip.LocalAddress || q.IsFragment && q.FragmentOffset != 0)
        {
            Counters.ErrorsIgnored++;
            return;
        }
        // Fragmentation needed (RFC 1191). A TCP quote is checked by TCP first (RFC 5927 §4.1: the quoted
        // sequence number must be in flight), so it carries the reported MTU and the sink applies it; anything
        // else lowers the path MTU here and carries the result.
        bool fragNeeded = repr.Type == Icmpv4Type.DestinationUnreachable && repr.Code == Icmpv4UnreachableCode.FragmentationNeeded;
        int mtu;
        if (fragNeeded && q.Protocol == IpProtocol.Tcp)
        {
            mtu = PathMtuTable.Estimate(repr.NextHopMtu, q.TotalLength);
        }
        else
        {
            if (fragNeeded && _ip.PathMtus.Update(q.Destination, repr.NextHopMtu, q.TotalLength, _ip.Now)) Counters.PathMtuUpdates++;
            mtu = _ip.PathMtu(q.Destination);
        }
        var l4 = q.Payload;
        var error = new IcmpError(repr.Type, repr.Code, q.Protocol,
            new Ipv4Endpoint(q.Source, BinaryPrimitives.ReadUInt16BigEndian(l4)),
            new Ipv4Endpoint(q.Destination, BinaryPrimitives.ReadUInt16BigEndian(l4[2..])),
            mtu,
            new SeqNum(l4.Length >= 8 ? BinaryPrimitives.ReadUInt32BigEndian(l4[4..]) : 0));
        if (sink.OnIcmpError(error)) Counters.ErrorsDelivered++;
        else Counters.ErrorsIgnored++;
    }

    /// <summary>
    /// Sends a destination-unreachable error about a received datagram (its header bytes and payload),
    /// unless RFC 1122 §3.2.2 forbids it (the datagram was broadcast, an ICMP error, or a non-initial
    /// fragment) or the rate limit is exhausted. Returns true when sent.
    /// </summary>
    public bool SendUnreachable(byte code, in Ipv4Repr offending, ReadOnlySpan<byte> offendingHeader, ReadOnlySpan<byte> offendingPayload, bool broadcast, Instant now)
    {
        if (broadcast || offending.FragmentOffset != 0) return false;
        if (offending.Protocol == IpProtocol.Icmp && offendingPayload.Length > 0
            && offendingPayload[0] is not ((byte)Icmpv4Type.EchoRequest or (byte)Icmpv4Type.EchoReply))
            return false;
        if (!TakeToken(now))
        {
            Counters.ErrorsRateLimited++;
            return false;
        }
        int quotedPayload = Math.Min(offendingPayload.Length, MaxQuoted - offendingHeader.Length);
        var payload = offendingPayload[..Math.Max(0, quotedPayload)];
        Span<byte> h = stackalloc byte[Icmpv4Packet.HeaderLength];
        Icmpv4Repr.Unreachable(code).Emit(h);
        FillChecksum(h, offendingHeader, payload);
        var err = _ip.Send(new Ipv4SendParams(_ip.LocalAddress, offending.Source, IpProtocol.Icmp), h, offendingHeader, payload);
        if (err != Sockets.Errno.Ok) return false;
        Counters.ErrorsSent++;
        return true;
    }

    /// <summary>Rewrites the checksum of an ICMP header followed (on the wire) by <paramref name="a"/> then <paramref name="b"/>.</summary>
    private static void FillChecksum(Span<byte> header, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        BinaryPrimitives.WriteUInt16BigEndian(header[Icmpv4Packet.ChecksumOffset..], 0);
        uint sum = InternetChecksum.Add(InternetChecksum.Sum(header), InternetChecksum.SumAt(a, header.Length));
        sum = InternetChecksum.Add(sum, InternetChecksum.SumAt(b, header.Length + a.Length));
        BinaryPrimitives.WriteUInt16BigEndian(header[Icmpv4Packet.ChecksumOffset..], InternetChecksum.Finish(sum));
    }

    private bool TakeToken(Instant now)
    {
        long elapsed = (now - _lastRefill).Value;
        _lastRefill = now;
        if (elapsed > 0) _microTokens = Math.Min(_burst * 1_000_000L, _microTokens + elapsed * _tokensPerSecond);
        if (_microTokens < 1_000_000L) return false;
        _microTokens -= 1_000_000L;
        return true;
    }
}

/// <summary>An echo reply: who answered, the identifier and sequence it echoed, and its data length.</summary>
public readonly record struct EchoReplyInfo(Ipv4Address From, ushort Identifier, ushort Sequence, int DataLength);

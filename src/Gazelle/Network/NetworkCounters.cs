namespace Gazelle.Network;

/// <summary>IPv4 counters of one stack.</summary>
public sealed class Ipv4Counters
{
    /// <summary>Dropped: bad version, IHL or total length.</summary>
    [FrameOutcome] public long Malformed;
    /// <summary>Dropped: header checksum did not verify.</summary>
    [FrameOutcome] public long BadChecksum;
    /// <summary>Dropped: source is broadcast, multicast, loopback, unspecified or ours (RFC 1122 §3.2.1.3).</summary>
    [FrameOutcome] public long BadSource;
    /// <summary>Dropped: destination is not our address or a broadcast address (hosts do not forward).</summary>
    [FrameOutcome] public long NotForUs;
    /// <summary>Dropped: protocol other than ICMP, UDP and TCP (a protocol unreachable may be sent).</summary>
    [FrameOutcome] public long UnknownProtocol;
    /// <summary>Fragments stored for reassembly (the datagram is not complete yet).</summary>
    [FrameOutcome] public long FragmentsStored;
    /// <summary>Dropped: fragment overlapping one already received; its whole datagram is discarded.</summary>
    [FrameOutcome] public long FragmentOverlaps;
    /// <summary>Dropped: exact duplicate of a fragment already held (the datagram is kept).</summary>
    [FrameOutcome] public long FragmentDuplicates;
    /// <summary>Dropped: fragment with a bad length (not a multiple of 8 before the last, past 65535 bytes,
    /// or contradicting the known end).</summary>
    [FrameOutcome] public long FragmentInvalid;
    /// <summary>Dropped: a datagram needs more fragments than a reassembly slot tracks.</summary>
    [FrameOutcome] public long FragmentTooMany;

    /// <summary>Datagrams reassembled and delivered.</summary>
    public long Reassembled;
    /// <summary>Partial datagrams discarded at the reassembly timeout.</summary>
    public long ReassemblyTimeouts;
    /// <summary>Partial datagrams evicted because every reassembly slot was busy.</summary>
    public long ReassemblyEvictions;
    /// <summary>Datagrams sent.</summary>
    public long DatagramsSent;
    /// <summary>Datagrams whose payload went to the device by reference (TCP's send ring, no copy into the packet buffer:
    /// <c>NicOffloads.TxPayloadByReference</c>).</summary>
    public long PayloadsByReference;
    /// <summary>Fragments created for datagrams larger than the path MTU.</summary>
    public long FragmentsCreated;
    /// <summary>Send failed: no route (off-subnet destination and no gateway).</summary>
    public long TxNoRoute;
    /// <summary>Send failed: no transmit buffer.</summary>
    public long TxNoBuffer;
    /// <summary>Send failed: bigger than the path MTU with DF set.</summary>
    public long TxTooBig;
    /// <summary>Datagrams (or fragments) sent to our own address, queued for local delivery instead of the NIC.</summary>
    public long LoopbackSent;
    /// <summary>Locally delivered datagrams taken back as input (each then has one frame-outcome counted,
    /// so frame outcomes sum to FramesReceived + LoopbackReceived).</summary>
    public long LoopbackReceived;
    /// <summary>Dropped: a datagram to our own address found the local delivery queue full.</summary>
    public long LoopbackQueueFull;
}

/// <summary>ICMPv4 counters of one stack.</summary>
public sealed class IcmpCounters
{
    /// <summary>Echo requests answered with an echo reply.</summary>
    [FrameOutcome] public long EchoRequestsAnswered;
    /// <summary>Echo replies received (no ping sockets: counted and dropped).</summary>
    [FrameOutcome] public long EchoRepliesReceived;
    /// <summary>Errors (unreachable, time exceeded) delivered to a transport endpoint.</summary>
    [FrameOutcome] public long ErrorsDelivered;
    /// <summary>Errors that matched no endpoint, or quoted a datagram we did not send.</summary>
    [FrameOutcome] public long ErrorsIgnored;
    /// <summary>Dropped: shorter than 8 bytes, or an error without a usable quoted header.</summary>
    [FrameOutcome] public long Malformed;
    /// <summary>Dropped: checksum did not verify.</summary>
    [FrameOutcome] public long BadChecksum;
    /// <summary>Dropped: a type (or code) this stack does not handle.</summary>
    [FrameOutcome] public long UnsupportedType;
    /// <summary>Dropped: echo request to a broadcast address (RFC 1122 §3.2.2.6 allows silence).</summary>
    [FrameOutcome] public long BroadcastEchoIgnored;

    /// <summary>Errors we sent (port/protocol unreachable).</summary>
    public long ErrorsSent;
    /// <summary>Errors not sent because of the rate limit.</summary>
    public long ErrorsRateLimited;
    /// <summary>Echo replies that could not be sent (no buffer, no route).</summary>
    public long EchoReplyFailed;
    /// <summary>Path MTU decreases learned from fragmentation-needed messages (RFC 1191).</summary>
    public long PathMtuUpdates;
}

namespace Gazelle.Link;

/// <summary>Ethernet-level counters of one stack.</summary>
public sealed class LinkCounters
{
    /// <summary>Frames taken from the NIC.</summary>
    public long FramesReceived;
    /// <summary>Frames the NIC accepted for transmission.</summary>
    public long FramesTransmitted;

    /// <summary>Dropped: shorter than an Ethernet header (or a truncated 802.1Q tag).</summary>
    [FrameOutcome] public long RxTooShort;
    /// <summary>Dropped: destination MAC is neither ours nor broadcast (multicast included).</summary>
    [FrameOutcome] public long RxNotForUs;
    /// <summary>Dropped: our own frame came back (source MAC is ours).</summary>
    [FrameOutcome] public long RxOwnSource;
    /// <summary>Dropped: 802.1Q-tagged frame (this stack runs untagged).</summary>
    [FrameOutcome] public long RxVlanTagged;
    /// <summary>Dropped: untagged frame (this stack runs on a VLAN).</summary>
    [FrameOutcome] public long RxUntagged;
    /// <summary>Dropped: tagged with a VLAN id other than the stack's.</summary>
    [FrameOutcome] public long RxOtherVlan;
    /// <summary>Dropped: EtherType other than IPv4 and ARP.</summary>
    [FrameOutcome] public long RxUnknownEtherType;

    /// <summary>Transmit dropped: the device's queue refused the frame and the link could not keep it (the device took
    /// nothing for <see cref="EthernetLink.StallMicros"/>, the link's queue was full, or the payload lay by reference in
    /// memory that may change).</summary>
    public long TxDeviceFull;
    /// <summary>Frames the device refused (its ring full) that the link kept for the next flush: not drops.</summary>
    public long TxDeviceBusy;
    /// <summary>Times the device took nothing for <see cref="EthernetLink.StallMicros"/> while frames waited, so the link
    /// dropped them (and drops refused frames until the device takes one again).</summary>
    public long TxDeviceStalled;
    /// <summary>Transmit dropped: the transmit pool had no free buffer.</summary>
    public long TxNoBuffer;
}

/// <summary>ARP counters of one stack.</summary>
public sealed class ArpCounters
{
    /// <summary>Requests for our address that were answered.</summary>
    [FrameOutcome] public long RequestsAnswered;
    /// <summary>Replies, gratuitous announcements and other packets that taught or refreshed the cache.</summary>
    [FrameOutcome] public long Learned;
    /// <summary>Packets neither for our address nor about a cached host (RFC 826: ignored).</summary>
    [FrameOutcome] public long IgnoredNotForUs;
    /// <summary>Dropped: truncated, not Ethernet/IPv4, or an unknown operation.</summary>
    [FrameOutcome] public long Malformed;
    /// <summary>Dropped: sender MAC is zero, broadcast or multicast, or sender IP is broadcast/multicast.</summary>
    [FrameOutcome] public long BadSender;
    /// <summary>Dropped: another host claims our IP address.</summary>
    [FrameOutcome] public long AddressConflict;

    /// <summary>Requests we sent (resolution, retries, refreshes and the gratuitous announcement).</summary>
    public long RequestsSent;
    /// <summary>Packets dropped because the per-next-hop queue awaiting resolution was full.</summary>
    public long PendingQueueFull;
    /// <summary>Packets dropped because resolution failed after every retry.</summary>
    public long ResolutionFailed;
    /// <summary>Packets dropped because every cache entry was still resolving.</summary>
    public long TableFull;
    /// <summary>Resolved entries evicted to make room.</summary>
    public long Evictions;
    /// <summary>Unicast refresh requests sent for entries about to expire.</summary>
    public long Refreshes;
}

namespace Gazelle.Transport.Udp;

/// <summary>UDP counters of one stack.</summary>
public sealed class UdpCounters
{
    /// <summary>Datagrams queued on a socket.</summary>
    [FrameOutcome] public long Delivered;
    /// <summary>Dropped: no socket on the destination port (a port unreachable may be sent).</summary>
    [FrameOutcome] public long NoPort;
    /// <summary>Dropped: broadcast to a port no socket is bound to.</summary>
    [FrameOutcome] public long BroadcastNoPort;
    /// <summary>Dropped: checksum did not verify.</summary>
    [FrameOutcome] public long BadChecksum;
    /// <summary>Dropped: shorter than its header, or a length field beyond the IP payload.</summary>
    [FrameOutcome] public long Malformed;
    /// <summary>Dropped: the socket's receive queue was full (count or bytes).</summary>
    [FrameOutcome] public long ReceiveQueueFull;

    /// <summary>Datagrams sent.</summary>
    public long DatagramsSent;
    /// <summary>Sends that failed in the IP layer (no route, no buffer, too big).</summary>
    public long SendErrors;
    /// <summary>Sends answered EAGAIN because the device refuses frames and the link's queue is full (a blocking
    /// caller waits and tries again): not drops.</summary>
    public long SendsWaitingForRoom;
}

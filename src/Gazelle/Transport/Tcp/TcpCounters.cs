namespace Gazelle.Transport.Tcp;

/// <summary>Every event and drop of one <see cref="TcpLayer"/>, by name. Plain fields: one stack per core
/// owns them, so no atomics are needed. Readers snapshot them from the stack's own thread.</summary>
public sealed class TcpCounters
{
    // ---- traffic ----
    /// <summary>Segments handed to <see cref="TcpLayer.Input"/>.</summary>
    public long SegmentsIn;
    /// <summary>Segments of an established connection taken by header prediction (the fast path for
    /// in-order data and pure ACKs, <see cref="TcpLayer.HeaderPrediction"/>): not a drop, a share of the input.</summary>
    public long HeaderPredicted;
    /// <summary>Segments given to <see cref="ITcpOutput.Send"/> (including retransmissions and RSTs).</summary>
    public long SegmentsOut;
    /// <summary>Payload bytes accepted in order into receive buffers.</summary>
    public long BytesReceived;
    /// <summary>Payload bytes sent for the first time.</summary>
    public long BytesSent;
    /// <summary>Received segments whose in-order payload stayed in its frame until read (HeldFrames): not a
    /// drop, a copy saved.</summary>
    public long FramesHeld;
    /// <summary>In-order payloads copied into the receive ring because the stack's store of held frames was
    /// full (or the ring already had bytes to follow): not a drop, the slower path.</summary>
    public long HoldRefused;
    /// <summary>Bytes copied from a send or receive ring into a bigger one as it grew (not a drop: a cost;
    /// a connection's first ring after an empty spell is rented at the size it last had, so a steady stream
    /// regrows only while it ramps up).</summary>
    public long RingRegrowBytes;
    /// <summary>Segments the output layer refused (no buffer / ARP queue full); treated as lost.</summary>
    public long OutputFailed;

    // ---- connections ----
    /// <summary>Active opens started (connect).</summary>
    public long ActiveOpens;
    /// <summary>Passive opens (a SYN accepted by a listener).</summary>
    public long PassiveOpens;
    /// <summary>Connections that reached ESTABLISHED.</summary>
    public long Established;
    /// <summary>Connections aborted by a RST we received.</summary>
    public long ResetsReceived;
    /// <summary>Of <see cref="ResetsReceived"/>: TIME_WAIT entries ended early by a RST (RFC 9293 §3.10.7.4; the
    /// peer had already forgotten the connection, e.g. it answered a duplicate of our last ACK with RST).</summary>
    public long ResetsInTimeWait;
    /// <summary>RST segments we sent.</summary>
    public long ResetsSent;
    /// <summary>Connections aborted because retransmissions or keepalives ran out (ETIMEDOUT).</summary>
    public long TimeoutAborts;
    /// <summary>Connections aborted by close() with SO_LINGER 0 or with unread data (RFC 2525 §2.17).</summary>
    public long UserAborts;
    /// <summary>Closed connections reset because SO_LINGER's timeout ran out before their data was acknowledged.</summary>
    public long LingerTimeouts;
    /// <summary>TIME_WAIT connections taken over by a new SYN (RFC 6191 / RFC 9293 §3.6.1).</summary>
    public long TimeWaitReused;
    /// <summary>TIME_WAIT connections recycled early because the connection pool was full.</summary>
    public long TimeWaitRecycled;
    /// <summary>A connection object could not be allocated (pool exhausted).</summary>
    public long PoolExhausted;

    // ---- listen ----
    /// <summary>SYN cookies sent because the SYN queue was full.</summary>
    public long SynCookiesSent;
    /// <summary>Valid SYN cookies that created a connection.</summary>
    public long SynCookiesAccepted;
    /// <summary>ACKs to a listener that carried an invalid or expired cookie (dropped, RST sent).</summary>
    public long SynCookiesFailed;
    /// <summary>SYNs dropped because the accept queue was full.</summary>
    public long ListenOverflows;
    /// <summary>SYN-ACKs retransmitted.</summary>
    public long SynAckRetransmits;

    // ---- drops ----
    /// <summary>Segments for no connection and no listener (a RST answered them unless they were RSTs).</summary>
    public long NoSocket;
    /// <summary>Segments with a malformed header (bad ports, SYN+FIN, SYN+RST...).</summary>
    public long BadSegments;
    /// <summary>Segments outside the receive window (RFC 9293 §3.10.7.4 first check); an ACK answered them.</summary>
    public long OutOfWindow;
    /// <summary>Segments rejected by PAWS (RFC 7323 §5).</summary>
    public long PawsRejected;
    /// <summary>Segments without ACK in a synchronized state.</summary>
    public long NoAckFlag;
    /// <summary>ACKs for data never sent (SEG.ACK &gt; SND.MAX); an ACK answered them.</summary>
    public long AckTooNew;
    /// <summary>ACKs older than SND.UNA - MAX.SND.WND (RFC 5961 §5.2); a challenge ACK answered them.</summary>
    public long AckTooOld;
    /// <summary>RSTs whose sequence number was in the window but not exact (RFC 5961 §3.2): challenge ACK.</summary>
    public long RstChallenged;
    /// <summary>RSTs outside the window, silently dropped.</summary>
    public long RstOutOfWindow;
    /// <summary>SYNs on synchronized connections (RFC 5961 §4): challenge ACK.</summary>
    public long SynChallenged;
    /// <summary>Challenge ACKs sent (RFC 5961).</summary>
    public long ChallengeAcks;
    /// <summary>Bad ACK in SYN-SENT / SYN-RECEIVED: answered with RST.</summary>
    public long BadSynAck;
    /// <summary>Out-of-order data dropped because the interval list was full.</summary>
    public long OutOfOrderDropped;
    /// <summary>Payload bytes trimmed because they fell outside the receive window.</summary>
    public long BytesTrimmed;
    /// <summary>Segments that arrived after the receive side was shut down (RST sent, RFC 9293 §3.10.7.4).</summary>
    public long DataAfterClose;
    /// <summary>ICMP errors for no connection or with a sequence number outside SND.UNA..SND.MAX (RFC 5927).</summary>
    public long IcmpIgnored;

    // ---- reception ----
    /// <summary>Segments that arrived out of order and were queued in the receive ring.</summary>
    public long OutOfOrderQueued;
    /// <summary>Segments that carried only already-received data.</summary>
    public long DuplicateSegments;
    /// <summary>D-SACK blocks sent to report duplicate segments (RFC 2883).</summary>
    public long DsacksSent;
    /// <summary>Delayed ACKs sent when their timer ran out.</summary>
    public long DelayedAcks;
    /// <summary>ACKs owed for a poll (TcpLayer.AckSoonEnabled) that nothing the program sent carried, sent alone.</summary>
    public long AcksSentLate;
    /// <summary>ACKs owed for a reply (TcpLayer.AckSoonEnabled) sent alone because the program began to wait for
    /// input first (TcpLayer.SendOwedAcks).</summary>
    public long AcksSentBeforeWait;

    // ---- loss recovery ----
    /// <summary>Retransmission timeouts (RFC 6298 §5).</summary>
    public long RtoTimeouts;
    /// <summary>Fast retransmits (entering loss recovery on duplicate ACKs / SACK, RFC 6675 / RFC 6582).</summary>
    public long FastRetransmits;
    /// <summary>Retransmissions RACK found lost (a segment sent after them was delivered first), resent without an RTO.</summary>
    public long LostRetransmits;
    /// <summary>Tail loss probes sent (RFC 8985 §7).</summary>
    public long TailLossProbes;
    /// <summary>Segments RACK marked lost (RFC 8985 §6.2: a later-sent segment was delivered and they are older
    /// than RACK.rtt + reo_wnd).</summary>
    public long RackLost;
    /// <summary>RACK reordering timers that expired (RFC 8985 §6.3).</summary>
    public long RackReorderTimeouts;
    /// <summary>Connections that saw a segment delivered below one sent after it (RACK.reordering_seen).</summary>
    public long RackReorderingSeen;
    /// <summary>Steps the RACK reordering window grew by on D-SACK evidence (RFC 8985 §6.2 step 4).</summary>
    public long RackReoWndGrowths;
    /// <summary>D-SACKs reporting a retransmission of the latest recovery as received twice (spurious retransmissions).</summary>
    public long SpuriousRetransmits;
    /// <summary>Recoveries undone because D-SACKs reported every one of their retransmissions (RFC 3708).</summary>
    public long DsackUndos;
    /// <summary>Fast recoveries found spurious by their timestamps (RFC 3522 Eifel) and undone (RFC 4015).</summary>
    public long SpuriousRecoveriesUndone;
    /// <summary>Segments retransmitted (by any mechanism).</summary>
    public long RetransmittedSegments;
    /// <summary>Duplicate ACKs received.</summary>
    public long DuplicateAcks;
    /// <summary>SACK blocks received that were invalid (outside SND.UNA..SND.MAX) and ignored.</summary>
    public long SackBlocksInvalid;
    /// <summary>Zero-window probes sent (persist timer).</summary>
    public long WindowProbes;
    /// <summary>Keepalive probes sent.</summary>
    public long KeepaliveProbes;
    /// <summary>MSS lowered by an ICMP fragmentation-needed message.</summary>
    public long PmtuUpdates;
    /// <summary>Connections aborted by a hard ICMP error in SYN-SENT/SYN-RECEIVED.</summary>
    public long IcmpHardErrors;
    /// <summary>Soft ICMP errors recorded.</summary>
    public long IcmpSoftErrors;

    // ---- HyStart++ (RFC 9406) ----
    /// <summary>Initial slow starts that saw the round's minimum RTT rise and entered Conservative Slow Start.</summary>
    public long HyStartCssEntered;
    /// <summary>CSS left for slow start again: the RTT fell below the CSS baseline (the rise was jitter).</summary>
    public long HyStartCssSpurious;
    /// <summary>Slow starts ended by HyStart++ (CSS_ROUNDS rounds of CSS) before any loss: ssthresh = cwnd.</summary>
    public long HyStartExits;

    // ---- urgent data (RFC 9293 §3.8.5, RFC 6093) ----
    /// <summary>New urgent marks taken from received URG segments.</summary>
    public long UrgentReceived;
    /// <summary>URG segments whose pointer named bytes already read or received (ignored, as Linux does).</summary>
    public long UrgentIgnored;
    /// <summary>send(MSG_OOB) calls that set the urgent pointer.</summary>
    public long UrgentSent;
}

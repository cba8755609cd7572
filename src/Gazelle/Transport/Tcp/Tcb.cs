using Gazelle.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// A transmission control block (RFC 9293 §3.3.1): one pooled object per socket, addressed by its
/// index (the socket handle). Its send and receive rings come from the stack's <see cref="RingPool"/> when
/// bytes must be held, grow by doubling up to SO_SNDBUF/SO_RCVBUF, and go back once they have been empty for a
/// while (<see cref="RingKeepMicros"/>).
/// </summary>
internal sealed class Tcb
{
    public const int MaxOooIntervals = 64;
    public const int MaxSackScoreboard = 128;

    public readonly int Index;
    public readonly CubicCongestion Cubic = new();
    public readonly RenoCongestion Reno = new();

    public readonly HyStart HyStart = new();
    public readonly TcpCounters Counters;
    private readonly RingPool _rings;
    private readonly HeldFrames _held;

    private readonly SegmentRecordPool _segPool;

    public Tcb(int index, RingPool rings, TcpCounters? counters = null, EventJournal? journal = null, HeldFrames? held = null,
        SegmentRecordPool? segments = null)
    {
        Index = index; _rings = rings; Cc = Cubic; Counters = counters ?? new TcpCounters(); _journal = journal;
        _held = held ?? new HeldFrames(0);
        _segPool = segments ?? new SegmentRecordPool(1);
    }

    // ---- ownership ----
    public bool InUse;
    /// <summary>The application holds the handle (not yet closed).</summary>
    public bool UserOwned;
    /// <summary>Listener this connection came from while it sits in the SYN or accept queue, else -1.</summary>
    public int Parent = -1;
    public bool InAcceptQueue;
    public int ActivePos = -1;
    /// <summary>Parked in TIME_WAIT (TcpLayer.Park): past the timed part of the active list, its one deadline (2MSL)
    /// kept by the TIME_WAIT queue's order.</summary>
    public bool Parked;
    public bool InFlowTable;
    /// <summary>Output for this connection waits for the end of the receive burst (TcpLayer.EndInputBatch).</summary>
    public bool OutputDeferred;
    /// <summary>Stamp of this connection's latest entry in the TIME_WAIT queue (TcpLayer.TimeWaitQueue);
    /// an entry with another stamp is stale.</summary>
    public uint TimeWaitStamp;

    public TcpState State = TcpState.Closed;
    public Ipv4Address LocalAddress, RemoteAddress;
    public ushort LocalPort, RemotePort;
    public bool Bound, ExplicitBind;
    /// <summary>Reached ESTABLISHED once (send() on a dead connection is EPIPE, not ENOTCONN).</summary>
    public bool EverConnected;

    // ---- send sequence variables (RFC 9293 §3.3.1) ----
    public SeqNum Iss, SndUna, SndNxt, SndWl1, SndWl2;
    /// <summary>Highest sequence number sent (SND.NXT before an RTO pulled it back).</summary>
    public SeqNum SndMax;
    public uint SndWnd;
    public uint MaxSndWnd;
    public byte SndWscale;
    // ---- receive sequence variables ----
    public SeqNum Irs, RcvNxt;
    public uint RcvWnd;
    /// <summary>Right edge of the window we advertised last (never moves left, RFC 9293 §3.8.6.2.2).</summary>
    public SeqNum RcvAdv;
    public byte RcvWscale;
    public bool WscaleOk;

    // ---- options ----
    public bool TsOk, SackOk;
    public uint TsRecent;
    public long TsRecentAgeMs;
    public uint TsOffset;
    public int SndMss = 536;       // from the peer's MSS option
    public int RcvMss = 536;       // largest segment seen / our advertised MSS
    public int AdvMss;
    public int Pmtu;

    // ---- send ring: byte at SND.UNA(+SYN) is at SndHead; empty array = no ring held ----
    public byte[] SndBuf = [];
    public int SndHead, SndCount;
    /// <summary>Payload the send ring may hold; may be below the ring's length (shrunk on a live
    /// connection) or below SndCount (then nothing more is taken until the queue drains under it).</summary>
    public int SndBufSize;
    /// <summary>SO_SNDBUF / SO_RCVBUF as Linux reports them (set value doubled for bookkeeping, clamped);
    /// 0 = never set: reported as twice the ring (the same ratio).</summary>
    public int SndBufOption, RcvBufOption;
    public bool FinQueued;   // shutdown(WR) / close: FIN follows the data
    public SeqNum FinSeq;    // valid once FinSent
    public bool FinSent;

    // ---- receive ring (empty array = no ring held) ----
    public byte[] RcvBuf = [];
    /// <summary>Readable bytes: the held frames' (<see cref="HeldBytes"/>, first in the stream) and then the ring's.</summary>
    public int RcvHead, RcvReadable;
    /// <summary>In-order payload kept in its received frames (<see cref="HeldFrames"/>), ahead of the ring's bytes.</summary>
    public int HeldBytes;
    public int HeldHead = -1, HeldTail = -1;
    /// <summary>Readable bytes in the ring (after the held ones).</summary>
    public int RcvRingBytes => RcvReadable - HeldBytes;
    /// <summary>Payload the receive ring may hold (the window's base); may be below the ring's length.</summary>
    public int RcvBufSize;
    public bool RcvShutdown;  // shutdown(RD)
    public bool FinReceived;
    public bool OooFinValid;
    public SeqNum OooFinSeq;
    public readonly SeqNum[] OooLeft = new SeqNum[MaxOooIntervals];
    public readonly SeqNum[] OooRight = new SeqNum[MaxOooIntervals];
    public int OooCount;
    /// <summary>The out-of-order interval that changed last: it goes first in SACK (RFC 2018 §4).</summary>
    public int OooLastIdx = -1;
    /// <summary>A duplicate range to report once as the first SACK block (D-SACK, RFC 2883).</summary>
    public bool DsackPending;
    public SeqNum DsackLeft, DsackRight;

    // ---- urgent data (RFC 9293 §3.8.5, RFC 6093), read the BSD way as Linux does ----
    /// <summary>SO_OOBINLINE: the urgent byte stays in the stream instead of being read with MSG_OOB.</summary>
    public bool OobInline;
    public UrgentState Urg;
    /// <summary>The urgent byte (valid in <see cref="UrgentState.Valid"/>).</summary>
    public byte UrgByte;
    /// <summary>Sequence number of the urgent byte (the urgent pointer less one).</summary>
    public SeqNum UrgSeq;
    /// <summary>Bytes between the read position and the urgent byte (0: at the mark).</summary>
    public int UrgOffset;
    /// <summary>send(MSG_OOB) set the urgent pointer <see cref="SndUp"/> (one past the last urgent byte).</summary>
    public bool SndUrgent;
    public SeqNum SndUp;

    // ---- RTT / RTO (RFC 6298), microseconds ----
    public long SrttMicros, RttvarMicros, RtoMicros, MinRttMicros;
    public bool RttTiming;
    public SeqNum RttSeq;
    public Instant RttStart;
    public int Backoff;
    public int Retransmits;       // consecutive RTOs for the current SND.UNA
    public long TotalRetrans;

    // ---- per-ACK RTT samples (RFC 9406 needs several per round; RFC 6298 timing gives one) ----
    public const int TxTimeSlots = 32;
    /// <summary>End sequence and send time of recent first transmissions, oldest at TxFirst; cleared by
    /// any retransmission (Karn). Full: later segments go untimed until the ACKs catch up.</summary>
    public readonly SeqNum[] TxEnd = new SeqNum[TxTimeSlots];
    public readonly long[] TxTime = new long[TxTimeSlots];
    public int TxFirst, TxCount;
    /// <summary>RTT sample (µs) of the ACK being processed, -1 if it gave none.</summary>
    public long AckRttMicros = -1;

    // ---- congestion ----
    public ICongestionControl Cc;
    public int Cwnd, Ssthresh;
    public int DupAcks;
    public bool InRecovery;
    public SeqNum RecoveryPoint;
    public SeqNum HighRxt;
    /// <summary>When the current recovery started.</summary>
    public Instant RecoveryStart;
    // Eifel detection (RFC 3522) state for undoing a spurious fast retransmit (RFC 4015).
    public int PriorCwnd, PriorSsthresh;
    public uint RecoveryTsVal;
    public long RecoveryStartRetrans;
    public bool UndoEligible;
    // ---- RACK-TLP loss detection (RFC 8985 §6) ----
    /// <summary>Segments in flight, in sequence order from SND.UNA (a ring from <see cref="SegHead"/>), with their
    /// latest transmit time; kept only with SACK. Grown by doubling up to <see cref="MaxSegRecords"/> (then the
    /// newest record absorbs what follows: coarser, never wrong on the side of early loss marking).</summary>
    public SentSegment[] Segs = [];
    public int SegHead, SegCount;
    public const int MaxSegRecords = 8192;
    /// <summary>Bytes of the records marked SACKed / marked lost and not retransmitted since.</summary>
    public int RecSackedBytes, RecLostBytes;
    /// <summary>RACK.xmit_ts (µs, -1 = none yet), RACK.end_seq, RACK.rtt (µs) of the most recently sent segment delivered.</summary>
    public long RackXmitUs = -1, RackRttUs;
    public SeqNum RackEndSeq;
    /// <summary>Transmissions so far (each record takes the next number) and that of the RACK segment.</summary>
    public ulong TxOrder, RackOrder;
    /// <summary>RACK.fack: the highest end sequence delivered (reordering detection, §6.2 step 3).</summary>
    public SeqNum RackFack;
    public bool RackReorderingSeen;
    /// <summary>RACK.reo_wnd_mult and reo_wnd_persist (§6.2 step 4).</summary>
    public int RackReoWndMult = 1, RackReoWndPersist;
    /// <summary>RACK.dsack_round: SND.MAX when reo_wnd last grew; one growth per round trip.</summary>
    public bool RackDsackRoundValid;
    public SeqNum RackDsackRound;
    /// <summary>The RACK reordering timer (§6.3), Instant.Never = off.</summary>
    public Instant RackDeadline = Instant.Never;
    // DSACK-based undo (RFC 3708 idea, as Linux's undo_retrans): retransmissions of the latest recovery episode
    // not yet reported duplicate; zero with the episode's range still valid = every retransmission was spurious.
    public int UndoRetrans;
    public bool UndoValid, RecoveryUndone;
    public SeqNum UndoLow, UndoHigh;
    public readonly SeqNum[] SackLeft = new SeqNum[MaxSackScoreboard];
    public readonly SeqNum[] SackRight = new SeqNum[MaxSackScoreboard];
    public int SackCount;
    public int SackedBytes;

    // ---- ACK generation ----
    public int UnackedSegments;     // full segments received since our last ACK
    public bool AckNow;
    public SeqNum LastAckSent;
    /// <summary>In-order data segments still ACKed at once at the start of the connection (Linux's
    /// quick-ACK mode): a sender's first writes are not held by Nagle for our delayed-ACK timer.</summary>
    public int QuickAcksLeft;
    /// <summary>An ACK owed that may wait a little (TcpLayer.AckSoonEnabled), so that what the program sends
    /// meanwhile (a reply, a FIN) carries it; <see cref="AckSoonSince"/> is when it became owed.</summary>
    public bool AckSoon;
    public Instant AckSoonSince;

    // ---- timers (Instant.Never = off) ----
    public Instant RtoDeadline = Instant.Never;
    /// <summary>When the rings that are empty now (send, receive, RACK records) go back to the stack's pools
    /// (<see cref="RingKeepMicros"/> after one first emptied); <see cref="Instant.Never"/> while none waits.</summary>
    public Instant RingIdleDeadline = Instant.Never;
    public Instant DelAckDeadline = Instant.Never;
    public Instant PersistDeadline = Instant.Never;
    public Instant KeepaliveDeadline = Instant.Never;
    /// <summary>TIME_WAIT 2MSL, orphan FIN_WAIT_2 timeout, or SYN-RECEIVED expiry.</summary>
    public Instant StateDeadline = Instant.Never;
    /// <summary>Tail loss probe timeout (RFC 8985 §7).</summary>
    public Instant PtoDeadline = Instant.Never;
    public bool TlpOutstanding;
    public int PersistBackoff;
    /// <summary>Window probes sent since the peer last sent an ACK.</summary>
    public int PersistUnanswered;
    public int KeepaliveProbesSent;
    public Instant LastReceived;
    public Instant LastSent;

    // ---- socket options ----
    public bool NoDelay, KeepAlive, ReuseAddr, ReusePort, LingerOn, Cork;
    /// <summary>The last send() carried MSG_MORE: hold a partial segment like TCP_CORK.</summary>
    public bool MoreHint;
    public int LingerSeconds;
    public int KeepIdleSec = 7200, KeepIntvlSec = 75, KeepCnt = 9;
    public int UserMss;
    public byte Tos;

    // ---- listener ----
    /// <summary>Next listener of the same port's SO_REUSEPORT group, -1 = last.</summary>
    public int NextListener = -1;
    public int Backlog;
    public int[] AcceptQueue = [];
    public int AcceptHead, AcceptCount;
    public int SynQueueCount;

    // ---- errors ----
    public Errno PendingError;
    public Errno SoftError;

    // ---- wake-ups (edge-triggered readiness, see SocketEvents) ----
    /// <summary>Bumped when something arrives for the reader / when send space grows after it ran out;
    /// never reset (registrations compare them). Each bump is journaled (<see cref="EventJournal"/>).</summary>
    public uint ReadEvents
    {
        get => _readEvents;
        set { _readEvents = value; _journal?.Record(Index); }
    }

    /// <inheritdoc cref="ReadEvents"/>
    public uint WriteEvents
    {
        get => _writeEvents;
        set { _writeEvents = value; _journal?.Record(Index); }
    }

    private uint _readEvents, _writeEvents;
    private readonly EventJournal? _journal;
    /// <summary>The application found the send ring too full (EAGAIN, a short send, or a readiness query
    /// that was not writable): the next ACK that makes it writable is a write event (Linux's SOCK_NOSPACE).</summary>
    public bool SendSpaceWanted;

    // ---- statistics (TCP_INFO) ----
    public long BytesAcked, BytesReceived, BytesSent, BytesRetrans;
    public uint SegsIn, SegsOut, DataSegsIn, DataSegsOut, OooPackets;
    public Instant LastDataSent, LastDataRecv, LastAckRecv;
    /// <summary>When the connection reached ESTABLISHED (the last-sent/received clocks start there, as Linux's).</summary>
    public Instant EstablishedAt;
    /// <summary>D-SACK blocks received (duplicates the peer saw) and spurious recoveries undone (reordering).</summary>
    public uint DsackDups, ReordSeen;
    /// <summary>RTO expiries, RTO recovery episodes and the time spent in them (µs; Linux's tcpi_total_rto*).</summary>
    public uint TotalRto, TotalRtoRecoveries;
    public long TotalRtoMicros;
    public Instant RtoRecoveryStart;

    /// <summary>Payload bytes per segment after the options we send on every segment (Linux's mss_cache).</summary>
    public int EffectiveMss => Math.Max(SndMss - (TsOk ? 12 : 0), 64);

    /// <summary>Bytes sent and not yet acknowledged.</summary>
    public int FlightSize => SndMax - SndUna;

    public bool IsSynchronized => State is not (TcpState.Closed or TcpState.Listen or TcpState.SynSent);

    public int SndSpace => Math.Max(0, SndBufSize - SndCount);

    /// <summary>Linux sk_stream_is_writeable: free space at least half of what is queued (and some).</summary>
    public bool SendSpaceReady => SndSpace > 0 && SndSpace >= SndCount / 2;

    /// <summary>Reached ESTABLISHED: the TCP_INFO clocks start (Linux sets lsndtime, lrcvtime and rcv_tstamp here).</summary>
    public void MarkEstablished(Instant now)
    {
        EstablishedAt = LastDataSent = LastDataRecv = LastAckRecv = now;
    }

    /// <summary>A state change or an error: every kind of waiter is woken.</summary>
    public void WakeAll()
    {
        ReadEvents++;
        WriteEvents++;
    }

    public int RcvSpace => Math.Max(0, RcvBufSize - RcvReadable);

    /// <summary>Room for data at RCV.NXT: the free space, or the window already advertised when that is
    /// larger (SO_RCVBUF shrank the ring: a window is not taken back, RFC 9293 §3.8.6.2.2).</summary>
    public int RcvRoom => Math.Max(RcvSpace, RcvAdv - RcvNxt);

    /// <summary>Resets every per-connection field and gives back any ring.</summary>
    public void Reset(int sndBuf, int rcvBuf)
    {
        UserOwned = false; Parent = -1; InAcceptQueue = false; InFlowTable = false; OutputDeferred = false;
        State = TcpState.Closed;
        LocalAddress = RemoteAddress = Ipv4Address.Any; LocalPort = RemotePort = 0; Bound = ExplicitBind = EverConnected = false;
        Iss = SndUna = SndNxt = SndWl1 = SndWl2 = SndMax = default; SndWnd = MaxSndWnd = 0; SndWscale = 0;
        Irs = RcvNxt = RcvAdv = default; RcvWnd = 0; RcvWscale = 0; WscaleOk = false;
        TsOk = SackOk = false; TsRecent = 0; TsRecentAgeMs = 0; TsOffset = 0;
        SndMss = RcvMss = 536; AdvMss = 0; Pmtu = 0;
        SndBufSize = sndBuf; RcvBufSize = rcvBuf; SndBufOption = RcvBufOption = 0;
        ReleaseRings();
        _sndRingHint = _rcvRingHint = 0;
        SndHead = SndCount = 0; FinQueued = FinSent = false; FinSeq = default;
        RcvHead = RcvReadable = 0; RcvShutdown = FinReceived = OooFinValid = false; OooCount = 0; OooLastIdx = -1; DsackPending = false;
        SrttMicros = RttvarMicros = 0; RtoMicros = 1_000_000; MinRttMicros = 0; RttTiming = false; Backoff = 0;
        Retransmits = 0; TotalRetrans = 0;
        Cc = Cubic; Cubic.Reset(); Reno.Reset(); HyStart.Reset(false); TxFirst = TxCount = 0; AckRttMicros = -1;
        Cwnd = 0; Ssthresh = int.MaxValue; DupAcks = 0; InRecovery = false; UndoEligible = false; SackCount = 0; SackedBytes = 0;
        UnackedSegments = 0; AckNow = false; QuickAcksLeft = 0; AckSoon = false;
        RtoDeadline = DelAckDeadline = PersistDeadline = KeepaliveDeadline = StateDeadline = PtoDeadline = Instant.Never;
        TlpOutstanding = false;
        ReleaseRecords(); RackXmitUs = -1; RackRttUs = 0; RackEndSeq = RackFack = default; TxOrder = RackOrder = 0;
        RackReorderingSeen = false; RackReoWndMult = 1; RackReoWndPersist = 0; RackDsackRoundValid = false; RackDeadline = Instant.Never;
        UndoRetrans = 0; UndoValid = RecoveryUndone = false;
        PersistBackoff = 0; PersistUnanswered = 0; KeepaliveProbesSent = 0;
        NoDelay = KeepAlive = ReuseAddr = ReusePort = LingerOn = Cork = MoreHint = false; LingerSeconds = 0;
        KeepIdleSec = 7200; KeepIntvlSec = 75; KeepCnt = 9; UserMss = 0; Tos = 0;
        NextListener = -1; Backlog = 0; AcceptHead = AcceptCount = 0; SynQueueCount = 0;
        PendingError = Errno.Ok; SoftError = Errno.Ok; SendSpaceWanted = false;
        OobInline = false; Urg = UrgentState.None; UrgByte = 0; UrgSeq = default; UrgOffset = 0; SndUrgent = false; SndUp = default;
        BytesAcked = BytesReceived = BytesSent = BytesRetrans = 0; SegsIn = SegsOut = DataSegsIn = DataSegsOut = OooPackets = 0;
        LastDataSent = LastDataRecv = LastAckRecv = EstablishedAt = default;
        DsackDups = ReordSeen = TotalRto = TotalRtoRecoveries = 0; TotalRtoMicros = 0;
    }

    /// <summary>Gives the RACK record ring back (nothing in flight, or the connection is freed).</summary>
    public void ReleaseRecords()
    {
        SegHead = SegCount = 0;
        RecSackedBytes = RecLostBytes = 0;
        if (Segs.Length == 0) return;
        _segPool.Return(Segs);
        Segs = [];
    }

    /// <summary>Doubles the RACK record ring (64 first, at most <see cref="MaxSegRecords"/>), from the stack's pool.</summary>
    public bool GrowRecords()
    {
        int cap = Segs.Length == 0 ? 64 : Segs.Length * 2;
        if (cap > MaxSegRecords) return false;
        var segs = _segPool.Rent(cap);
        for (int i = 0; i < SegCount; i++) segs[i] = Segs[(SegHead + i) & (Segs.Length - 1)];
        _segPool.Return(Segs);
        Segs = segs;
        SegHead = 0;
        return true;
    }

    /// <summary>Remembers when a first transmission ending at <paramref name="end"/> left.</summary>
    public void RecordTransmit(SeqNum end, Instant now)
    {
        if (TxCount == TxTimeSlots || (TxCount > 0 && end <= TxEnd[(TxFirst + TxCount - 1) % TxTimeSlots])) return;
        int i = (TxFirst + TxCount) % TxTimeSlots;
        TxEnd[i] = end;
        TxTime[i] = now.Microseconds;
        TxCount++;
    }

    /// <summary>Drops the timings an ACK of <paramref name="ack"/> covers; returns the RTT of the newest (µs) or -1.</summary>
    public long TakeRttSample(SeqNum ack, Instant now)
    {
        long sample = -1;
        while (TxCount > 0 && TxEnd[TxFirst] <= ack)
        {
            sample = now.Microseconds - TxTime[TxFirst];
            TxFirst = (TxFirst + 1) % TxTimeSlots;
            TxCount--;
        }
        return sample;
    }

    /// <summary>
    /// How long a ring that emptied stays with its connection before going back to the stack's pool. A
    /// request/response connection (sockperf, redis) empties its send ring, its receive ring and its RACK
    /// records at every message: renting and returning all three per message was ~4% of a TCP ping-pong's
    /// cycles (perf). Kept, a busy connection rents them once per period; an idle one still gives them back
    /// (memory follows the bytes queued, TcpMemoryTests). The layer's keeper polls every 10 ms.
    /// </summary>
    public const long RingKeepMicros = 10_000;

    /// <summary>A ring just emptied: it stays until <see cref="RingIdleDeadline"/>, armed now if not already.
    /// The deadline is not pushed back by later use, so a busy connection rents again once a period.</summary>
    public void KeepEmptyRings()
    {
        if (!UserOwned || State != TcpState.Established)
        {
            ReleaseIdleRings(); // a closing connection exchanges no more messages: its rings go at once
            return;
        }
        if (RingIdleDeadline != Instant.Never) return;
        var d = _rings.Now + new TimeSpanMicros(RingKeepMicros);
        RingIdleDeadline = d;
        if (d < _rings.EarliestIdleDeadline) _rings.EarliestIdleDeadline = d;
    }

    /// <summary>The idle deadline passed: every ring that is empty now goes back to its pool.</summary>
    public void ReleaseIdleRings()
    {
        RingIdleDeadline = Instant.Never;
        ReleaseSendRingIfEmpty();
        ReleaseReceiveRingIfEmpty();
        if (SegCount == 0) ReleaseRecords(); // else back in use since it emptied
    }

    /// <summary>Gives both rings back to the pool (the connection holds no bytes any more).</summary>
    public void ReleaseRings()
    {
        RingIdleDeadline = Instant.Never;
        SndCount = 0;
        ReleaseSendRingIfEmpty();
        _held.ReleaseAll(ref HeldHead, ref HeldTail);
        HeldBytes = 0;
        RcvReadable = 0; OooCount = 0;
        ReleaseReceiveRingIfEmpty();
    }

    public void ReleaseSendRingIfEmpty()
    {
        if (SndCount != 0 || SndBuf.Length == 0) return;
        _sndRingHint = SndBuf.Length;
        _rings.Return(SndBuf);
        SndBuf = [];
        SndHead = 0;
        ReleaseSendSums();
    }

    public void ReleaseReceiveRingIfEmpty()
    {
        if (RcvRingBytes != 0 || OooCount != 0 || RcvBuf.Length == 0) return;
        _rcvRingHint = RcvBuf.Length;
        _rings.Return(RcvBuf);
        RcvBuf = [];
        RcvHead = 0;
    }

    // The size of the ring each direction held when it last went back empty. A stream that empties its
    // ring between bursts (iperf3's receiver reads everything it is given) rents that size again at once
    // instead of doubling from 4 KB through every size, copying the held bytes each time: those copies
    // were 10% of the receiver's cycles at 15 Gbit/s (perf). Memory still goes back whenever a ring is empty.
    private int _sndRingHint, _rcvRingHint;

    /// <summary>A ring of at least <paramref name="needed"/> bytes holding the old ring's first
    /// <paramref name="live"/> bytes from <paramref name="head"/>, now from index 0; a first ring is at least
    /// <paramref name="hint"/> bytes, capped by <paramref name="bufSize"/> (SO_SNDBUF/SO_RCVBUF may have shrunk).</summary>
    private byte[] Regrow(byte[] old, ref int head, int live, int needed, int hint, int bufSize)
    {
        if (old.Length == 0) needed = Math.Max(needed, Math.Min(hint, bufSize));
        var ring = _rings.Rent(needed); // at least double: needed exceeds the old size
        if (old.Length != 0)
        {
            Counters.RingRegrowBytes += live;
            int first = Math.Min(live, old.Length - head);
            old.AsSpan(head, first).CopyTo(ring);
            old.AsSpan(0, live - first).CopyTo(ring.AsSpan(first));
            _rings.Return(old);
        }
        head = 0;
        return ring;
    }

    /// <summary>The rings hold a live connection's bytes (set up at connect/accept, not yet released).</summary>
    public bool RingsLive => InFlowTable || State is not (TcpState.Closed or TcpState.Listen);

    /// <summary>Resizes the send buffer of a live connection (control path: setsockopt). The ring follows on
    /// demand (it grows as bytes are queued); a smaller size only stops new bytes until the queue drains.</summary>
    public void ResizeSend(int size) => SndBufSize = size;

    /// <summary>Resizes the receive buffer of a live connection (control path: setsockopt). The ring grows as
    /// data comes; a smaller size shrinks the window as data comes (the window already advertised is still
    /// honoured, <see cref="RcvRoom"/>).</summary>
    public void ResizeReceive(int size) => RcvBufSize = size;

    public Instant NextDeadline()
    {
        Instant d = RtoDeadline;
        d = Instant.Min(d, RingIdleDeadline);
        d = Instant.Min(d, DelAckDeadline);
        d = Instant.Min(d, PersistDeadline);
        d = Instant.Min(d, KeepaliveDeadline);
        d = Instant.Min(d, PtoDeadline);
        d = Instant.Min(d, RackDeadline);
        return Instant.Min(d, StateDeadline);
    }

    /// <summary>A ring position past the end wrapped to the start. Every caller adds a head (&lt; size) and a
    /// count or offset within the ring (≤ size), so one subtraction replaces the division of <c>%</c>
    /// (rings are sized by SO_SNDBUF/SO_RCVBUF, not to powers of two).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Wrap(int position, int size) => position >= size ? position - size : position;

    // ---- send ring ----

    public int AppendSend(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, SndSpace);
        if (n <= 0) return 0;
        if (SndCount + n > SndBuf.Length)
        {
            SndBuf = Regrow(SndBuf, ref SndHead, SndCount, SndCount + n, _sndRingHint, SndBufSize);
            NewSendSums();
        }
        int tail = (SndHead + SndCount) % SndBuf.Length;
        int first = Math.Min(n, SndBuf.Length - tail);
        if (_sndSums.Length != 0)
        {
            CopyInSummed(data[..first], tail);
            if (first < n) CopyInSummed(data[first..n], 0);
        }
        else
        {
            data[..first].CopyTo(SndBuf.AsSpan(tail));
            if (first < n) data[first..n].CopyTo(SndBuf);
        }
        SndCount += n;
        return n;
    }

    // ---- send ring sums ----
    // A long send ring keeps the one's complement sum (RFC 1071) of every 512-byte block of what it holds, taken while
    // the bytes are copied in, when they are in the cache anyway: a segment's checksum is then the sum of the blocks it
    // covers and of its two partial edges, instead of a pass over the payload as it leaves (the ring's bytes are cold by
    // then: that sum was an eighth of iperf3's sender, perf). A block's sum covers the bytes written from its start in
    // the ring's current lap: the write that reaches a block's first byte starts it afresh, later writes add to it.
    // Any block a segment covers whole was written in order within one lap (a segment is shorter than half the ring).

    private const int SumBlockShift = 9;
    private const int SumBlock = 1 << SumBlockShift;
    /// <summary>Rings from this size on keep sums (bulk senders; a short ring's few segments are summed as they go).</summary>
    public const int SumMinRing = 128 * 1024;
    private byte[] _sndSums = [];

    private Span<ushort> SendSums => MemoryMarshal.Cast<byte, ushort>(_sndSums.AsSpan());

    /// <summary>After the send ring changed: sums for the new ring (if it is long enough), taken over the bytes it holds.</summary>
    private void NewSendSums()
    {
        ReleaseSendSums();
        if (SndBuf.Length < SumMinRing) return;
        _sndSums = _rings.Rent((SndBuf.Length >> SumBlockShift) * sizeof(ushort));
        var sums = SendSums;
        for (int pos = 0; pos < SndCount; pos += SumBlock) // Regrow left the bytes from index 0
            sums[pos >> SumBlockShift] = (ushort)InternetChecksum.Sum(SndBuf.AsSpan(pos, Math.Min(SumBlock, SndCount - pos)));
    }

    private void ReleaseSendSums()
    {
        if (_sndSums.Length == 0) return;
        _rings.Return(_sndSums);
        _sndSums = [];
    }

    /// <summary>Copies <paramref name="data"/> into the send ring at <paramref name="pos"/> (no wrap), summing each
    /// block's part as it goes.</summary>
    private void CopyInSummed(ReadOnlySpan<byte> data, int pos)
    {
        var sums = SendSums;
        var ring = SndBuf;
        while (!data.IsEmpty)
        {
            int inBlock = pos & (SumBlock - 1);
            int k = Math.Min(data.Length, SumBlock - inBlock);
            uint sum = InternetChecksum.CopyAndSum(data[..k], ring.AsSpan(pos, k));
            if ((inBlock & 1) != 0) sum = BinaryPrimitives.ReverseEndianness((ushort)sum); // RFC 1071 §2(B)
            ref ushort block = ref sums[pos >> SumBlockShift];
            block = (ushort)(inBlock == 0 ? sum : InternetChecksum.Add(block, sum));
            pos += k;
            data = data[k..];
        }
    }

    /// <summary>The folded sum of the send ring's bytes at [offset, offset+length) from SND.UNA's data (as
    /// <see cref="SendSlice"/> gives them), as if they started at an even offset; false when the ring keeps no sums.</summary>
    public bool TrySendSum(int offset, int length, out uint sum)
    {
        sum = 0;
        if (_sndSums.Length == 0 || length <= 0) return _sndSums.Length != 0;
        int size = SndBuf.Length;
        int start = Wrap(SndHead + offset, size);
        int first = Math.Min(length, size - start);
        sum = RangeSum(start, first);
        if (first < length)
        {
            uint second = RangeSum(0, length - first);
            if ((first & 1) != 0) second = BinaryPrimitives.ReverseEndianness((ushort)second);
            sum = InternetChecksum.Add(sum, second);
        }
        return true;
    }

    /// <summary>Sum of ring bytes [start, start+length) (no wrap) relative to start: the whole blocks' kept sums, the
    /// partial blocks at both ends summed from the bytes.</summary>
    private uint RangeSum(int start, int length)
    {
        int end = start + length;
        int firstBlock = (start + SumBlock - 1) >> SumBlockShift;
        int endBlock = end >> SumBlockShift;
        var ring = SndBuf.AsSpan();
        if (firstBlock >= endBlock) return InternetChecksum.Sum(ring[start..end]);
        int midStart = firstBlock << SumBlockShift, midEnd = endBlock << SumBlockShift;
        uint sum = InternetChecksum.Sum(ring[start..midStart]);
        var sums = SendSums;
        ulong mid = 0;
        for (int b = firstBlock; b < endBlock; b++) mid += sums[b];
        uint m = InternetChecksum.Fold(mid);
        if (((midStart - start) & 1) != 0) m = BinaryPrimitives.ReverseEndianness((ushort)m);
        sum = InternetChecksum.Add(sum, m);
        uint tail = InternetChecksum.Sum(ring[midEnd..end]);
        if (((midEnd - start) & 1) != 0) tail = BinaryPrimitives.ReverseEndianness((ushort)tail);
        return InternetChecksum.Add(sum, tail);
    }

    /// <summary>The send ring's bytes at [offset, offset+length) from SND.UNA's data, as one or two spans.</summary>
    public void SendSlice(int offset, int length, out ReadOnlySpan<byte> a, out ReadOnlySpan<byte> b)
    {
        if (length <= 0) { a = b = default; return; }
        int start = (SndHead + offset) % SndBuf.Length;
        int first = Math.Min(length, SndBuf.Length - start);
        a = SndBuf.AsSpan(start, first);
        b = SndBuf.AsSpan(0, length - first);
    }

    public void ConsumeSend(int n)
    {
        if (n <= 0) return;
        SndCount -= n;
        SndHead = SndCount == 0 ? 0 : (SndHead + n) % SndBuf.Length;
        if (SndCount == 0 && SndBuf.Length != 0) KeepEmptyRings();
    }

    // ---- receive ring ----

    /// <summary>Writes payload at <paramref name="offset"/> bytes past RCV.NXT (inside the free space).</summary>
    public void WriteReceive(int offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        int ringBytes = RcvRingBytes;
        int needed = ringBytes + offset + data.Length;
        if (needed > RcvBuf.Length)
        {
            // Out-of-order bytes may sit anywhere in the old ring: keep all of it, in order from RcvHead.
            int live = OooCount > 0 ? RcvBuf.Length : ringBytes;
            RcvBuf = Regrow(RcvBuf, ref RcvHead, live, needed, _rcvRingHint, RcvBufSize);
        }
        int pos = (RcvHead + ringBytes + offset) % RcvBuf.Length;
        int first = Math.Min(data.Length, RcvBuf.Length - pos);
        data[..first].CopyTo(RcvBuf.AsSpan(pos));
        if (first < data.Length) data[first..].CopyTo(RcvBuf);
    }

    /// <summary>The urgent byte sits at the read position and is not part of the stream (no SO_OOBINLINE).</summary>
    public bool UrgentByteFirst => Urg != UrgentState.None && UrgOffset == 0 && !OobInline;

    /// <summary>Copies readable bytes: never past the urgent mark, and skipping the urgent byte when it is at
    /// the read position and not inline (Linux tcp_recvmsg). Reading past the mark forgets the urgent byte.</summary>
    public int ReadReceive(Span<byte> dest, bool peek)
    {
        int skip = UrgentByteFirst && RcvReadable > 0 ? 1 : 0;
        int n = Math.Max(0, Math.Min(dest.Length, RcvReadable - skip));
        if (Urg != UrgentState.None && UrgOffset > 0) n = Math.Min(n, UrgOffset);
        int copied = HeldBytes > skip ? _held.CopyOut(HeldHead, skip, dest[..n]) : 0;
        if (copied < n)
        {
            int start = (RcvHead + skip + copied - HeldBytes) % RcvBuf.Length;
            int rest = n - copied;
            int first = Math.Min(rest, RcvBuf.Length - start);
            RcvBuf.AsSpan(start, first).CopyTo(dest[copied..]);
            RcvBuf.AsSpan(0, rest - first).CopyTo(dest[(copied + first)..]);
        }
        if (!peek) ConsumeReceive(skip + n);
        return n;
    }

    /// <summary>Keeps in-order payload in its frame (<paramref name="length"/> bytes at <paramref name="start"/>
    /// of its data) instead of copying it into the ring. Only at the end of the stream's readable bytes with
    /// the ring empty and nothing out of order (the held bytes come before the ring's); false when the stack's
    /// store is full. The caller accounts the bytes (<see cref="RcvReadable"/>) as for the ring.</summary>
    public bool TryHold(PacketBuffer frame, int start, int length)
    {
        if (RcvRingBytes != 0 || OooCount != 0) return false;
        if (!_held.TryAdd(ref HeldHead, ref HeldTail, frame, start, length)) return false;
        HeldBytes += length;
        return true;
    }

    /// <summary>Drops <paramref name="n"/> bytes from the read position.</summary>
    public void ConsumeReceive(int n)
    {
        if (n <= 0) return;
        int fromHeld = Math.Min(n, HeldBytes);
        if (fromHeld > 0)
        {
            _held.Consume(ref HeldHead, ref HeldTail, fromHeld);
            HeldBytes -= fromHeld;
        }
        RcvReadable -= n;
        if (RcvBuf.Length != 0)
            RcvHead = RcvRingBytes == 0 && OooCount == 0 ? 0 : (RcvHead + n - fromHeld) % RcvBuf.Length;
        if (Urg != UrgentState.None && (UrgOffset -= n) < 0) Urg = UrgentState.None;
        if (RcvRingBytes == 0 && OooCount == 0 && RcvBuf.Length != 0) KeepEmptyRings();
    }
}

/// <summary>Linux's urg_data states.</summary>
internal enum UrgentState : byte
{
    None,
    /// <summary>An urgent pointer arrived; the byte it names has not.</summary>
    NotYet,
    /// <summary>The urgent byte is held for recv(MSG_OOB).</summary>
    Valid,
    /// <summary>recv(MSG_OOB) took it; the mark stays until the reader passes it.</summary>
    Read,
}

/// <summary>One segment in flight for RACK (RFC 8985 §6.1): its range and its latest transmission.</summary>
internal struct SentSegment
{
    public SeqNum Start, End;
    /// <summary>When it was last (re)transmitted, µs, and that transmission's place in the send order.</summary>
    public long XmitUs;
    public ulong Order;
    public SegFlags Flags;
}

[Flags]
internal enum SegFlags : byte
{
    None = 0,
    Sacked = 1,
    /// <summary>Marked lost and not retransmitted since.</summary>
    Lost = 2,
    Retransmitted = 4,
}

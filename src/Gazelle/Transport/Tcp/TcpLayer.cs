using Gazelle.Buffers;
using System.Buffers.Binary;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// The TCP of one stack (RFC 9293): connection table, listeners, state machine, timers. Single-threaded:
/// the stack's poll loop owns it. Socket handles are indices into a preallocated pool of TCBs.
/// <list type="bullet">
/// <item>Tables: 4-tuple flow hash (open addressing, keyed), listeners by port (an SO_REUSEPORT group spreads
/// new connections by a keyed 4-tuple hash), SYN queue + accept queue, SYN cookies (MSS in the ISN, window
/// scale and SACK in the TSval) when the SYN queue is full.</item>
/// <item>Timers: a poll past the earliest deadline walks the connections with timers; a TIME_WAIT the program
/// closed is parked out of that walk, its 2MSL read off the TIME_WAIT queue's head (<see cref="Park"/>).</item>
/// <item>Memory: send/receive rings from a per-stack <see cref="RingPool"/>, held while bytes are queued and for <see cref="Tcb.RingKeepMicros"/> after.</item>
/// <item>Urgent data (RFC 9293 §3.8.5, RFC 6093) with Linux's semantics: one byte out of band (MSG_OOB),
/// SO_OOBINLINE, SIOCATMARK; send(MSG_OOB) sets the urgent pointer.</item>
/// <item>Input (TcpLayer.Input.cs): RFC 9293 §3.10.7 with RFC 5961 RST/SYN/ACK checks and challenge ACKs,
/// PAWS (RFC 7323), TIME-WAIT takeover (RFC 6191), out-of-order data written into the receive ring at its
/// offset with a bounded interval list, SACK and D-SACK generation (RFC 2018, RFC 2883).</item>
/// <item>Output and timers (TcpLayer.Output.cs): Nagle/cork, sender and receiver SWS avoidance, RTO
/// (RFC 6298, Karn, 200 ms floor, backoff), delayed ACK (40 ms / every second segment), persist, keepalive,
/// linger; with SACK, loss detection by RACK-TLP (RFC 8985, TcpLayer.Rack.cs: per-segment send times, an
/// adaptive reordering window, the reordering timer, tail loss probes) feeding RFC 6675 recovery, limited
/// transmit (RFC 3042), undo of spurious recoveries by timestamps (RFC 3522/4015) or D-SACKs (RFC 3708); or
/// NewReno (RFC 6582) without SACK; congestion control CUBIC (RFC 9438) or Reno per socket, the initial
/// slow start with HyStart++ (RFC 9406).</item>
/// </list>
/// Nothing on the per-segment path allocates: TCBs, rings and lists are reused.
/// </summary>
public sealed partial class TcpLayer
{
    // Linux defaults (net.ipv4.*): rto_min 200 ms, rto_max 120 s, tcp_retries2 15, tcp_syn_retries 6,
    // tcp_synack_retries 5, tcp_fin_timeout 60 s, delayed ACK up to 40 ms.
    internal const long MinRtoMicros = 200_000;
    internal const long MaxRtoMicros = 120_000_000;
    internal const long InitialRtoMicros = 1_000_000;
    internal const int MaxRetries = 15;
    internal const int SynRetries = 6;
    internal const int SynAckRetries = 5;
    internal const int OrphanRetries = 8;
    internal const long FinWait2Micros = 60_000_000;
    internal const long DelayedAckMicros = 40_000;
    /// <summary>In-order data segments ACKed at once at the start of each connection before delayed ACKs
    /// begin (Linux's quick-ACK mode, TCP_MAX_QUICKACKS = 16); 0 delays from the first segment.</summary>
    public int QuickAcks { get; set; } = 16;
    internal const int EphemeralLow = 32768;
    internal const int EphemeralHigh = 60999;
    internal const int MaxBacklog = 4096;
    internal const int InitialWindowSegments = 10; // RFC 6928
    /// <summary>Smallest MSS TCP uses whatever the path MTU says (Linux's TCP_MIN_MSS).</summary>
    public const int MinimumMss = 88;

    // Linux socket option numbers.
    public const int SOL_SOCKET = 1, IPPROTO_IP = 0, IPPROTO_TCP = 6;
    public const int SO_REUSEADDR = 2, SO_TYPE = 3, SO_ERROR = 4, SO_SNDBUF = 7, SO_RCVBUF = 8, SO_KEEPALIVE = 9,
        SO_OOBINLINE = 10, SO_LINGER = 13, SO_REUSEPORT = 15;
    public const int TCP_NODELAY = 1, TCP_MAXSEG = 2, TCP_CORK = 3, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5,
        TCP_KEEPCNT = 6, TCP_INFO = 11, TCP_CONGESTION = 13;
    public const int IP_TOS = 1;
    public const int SOCK_STREAM = 1;
    /// <summary>Size of Linux's struct tcp_info up to tcpi_total_rto_time (6.7; later kernels append AccECN counters).</summary>
    public const int TcpInfoSize = 248;

    private readonly StackConfig _config;
    private readonly ITcpOutput _output;
    private readonly Tcb[] _tcbs;
    private readonly RingPool _rings;
    private readonly HeldFrames _held;
    private readonly SegmentRecordPool _segPool;
    private PacketBuffer? _inputFrame;
    private bool _inputFrameHeld;
    private readonly int[] _free;
    private int _freeCount;
    /// <summary>Connections in use by index: the first <see cref="_timedCount"/> have timers the poll looks at
    /// (<see cref="RunDueTimers"/>), the rest are parked in TIME_WAIT (<see cref="Park"/>).</summary>
    private readonly int[] _active;
    private int _activeCount;
    private int _timedCount;
    private readonly FlowTable _flows;
    private readonly TimeWaitQueue _timeWait;
    /// <summary>First listener on each port (-1 none); an SO_REUSEPORT group continues in <see cref="Tcb.NextListener"/>.</summary>
    private readonly int[] _listenerByPort = new int[65536];
    private readonly int[] _explicitBinds = new int[65536];
    private readonly TcpHash _isnHash, _portHash, _cookieHash, _tsHash, _reusePortHash;
    private uint _portCounter;
    private Instant _now;
    private Instant _earliest = Instant.Never;
    private bool _batching;
    private readonly int[] _deferred;
    private int _deferredCount;
    /// <summary>Connections (by index) with an <see cref="Tcb.AckSoon"/> owed, oldest first.</summary>
    private readonly int[] _ackSoon;
    private int _ackSoonCount;

    public TcpCounters Counters { get; } = new();

    /// <summary>HyStart++ (RFC 9406) in the initial slow start of new connections (CUBIC and Reno).</summary>
    public bool HyStartEnabled { get; set; } = true;

    /// <summary>Offer/accept SACK (RFC 2018) on new connections; off forces NewReno recovery (RFC 6582).</summary>
    public bool SackEnabled { get; set; } = true;

    /// <summary>Header prediction: in-order data and pure ACKs of an established connection skip the checks
    /// they would pass anyway (TcpLayer.Input.cs, FastPath). Off sends every segment through the full
    /// RFC 9293 §3.10.7.4 path; tests compare the two, which must behave identically.</summary>
    public bool HeaderPrediction { get; set; } = true;

    /// <summary>
    /// ACKs that need no haste — quick ACKs of the first data segments, the ACK of a FIN that leaves the
    /// connection in CLOSE-WAIT, with <see cref="DeferHandshakeAck"/> the ACK that completes an active open — wait up to <see cref="AckSoonMicros"/>
    /// instead of going out in the poll that received the segment: a segment the program sends meanwhile carries
    /// them. A short HTTP exchange with Connection: close then takes three segments from a preloaded client (SYN,
    /// request, FIN) and four from the server instead of five or six each way (the handshake's ACK rides on the
    /// request, the request's ACK on the response, the ACK of the response and of the FIN on the client's FIN).
    /// RFC 9293 §3.8.6.3 lets an ACK wait up to 0.5 s
    /// (Linux's delayed ACK: 40 ms). When the program starts waiting for input instead of replying, the POSIX layer
    /// sends them at once (<see cref="SendOwedAcks"/>): a Nagle sender whose second write waits for this ACK loses
    /// nothing. Off: sent in the same poll.
    /// </summary>
    public bool AckSoonEnabled { get; set; } = true;

    /// <summary>
    /// The ACK that completes an active open waits, as an <see cref="AckSoonEnabled"/> ACK, for the program's first
    /// segment to carry it, as Linux's tcp_rcv_synsent_state_process delays it while a write is pending: a client
    /// that sends at once (HTTP, redis) saves a segment, and its server takes one segment fewer in and finds the
    /// request queued with the connection. RFC 9293 §3.10.7.3 lets queued data ride on that ACK; §3.8.6.3 bounds
    /// its delay. A server that speaks first (SMTP, FTP) accepts only once the ACK arrives, so this is only for a
    /// stack whose every waiting call sends the ACKs owed first (the POSIX layer's, PosixLayer.SendAcksBeforeWaiting:
    /// a client waiting for the greeting sends it as it starts to wait); else the poll after
    /// <see cref="AckSoonMicros"/> sends it. Off (the default): the ACK goes in the poll that took the SYN-ACK in.
    /// </summary>
    public bool DeferHandshakeAck { get; set; }

    /// <summary>How long an ACK owed under <see cref="AckSoonEnabled"/> waits for a segment to carry it: longer
    /// than a busy server's turn from a request to its reply (nginx answers the requests of one epoll_wait one
    /// after the other, ~15 us each: at 200 us most of a batch of 32 went out as separate ACKs), far shorter than
    /// the peer's timers (RTO >= 200 ms, tail-loss probe >= 10 ms) and Linux's delayed ACK (40 ms).</summary>
    internal const long AckSoonMicros = 1000;

    /// <summary>Connections (by index) whose event numbers moved since the stack's reader last cleared it.</summary>
    public EventJournal Events { get; } = new();

    public TcpLayer(StackConfig config, ITcpOutput output)
    {
        _config = config;
        _output = output;
        int n = Math.Max(1, config.MaxTcpConnections);
        _tcbs = new Tcb[n];
        _free = new int[n];
        _active = new int[n];
        _deferred = new int[n];
        _ackSoon = new int[n];
        _rings = new RingPool(config.TcpRingPoolBytes);
        _held = new HeldFrames(config.TcpHeldFrames);
        _segPool = new SegmentRecordPool(n);
        for (int i = 0; i < n; i++)
        {
            _tcbs[i] = new Tcb(i, _rings, Counters, Events, _held, _segPool);
            _free[i] = n - 1 - i; // hand out low indices first
        }
        _freeCount = n;
        _flows = new FlowTable(n, config.Secret);
        _timeWait = new TimeWaitQueue(n);
        Array.Fill(_listenerByPort, -1);
        _isnHash = new TcpHash(config.Secret, 1);
        _portHash = new TcpHash(config.Secret, 2);
        _cookieHash = new TcpHash(config.Secret, 3);
        _tsHash = new TcpHash(config.Secret, 4);
        _reusePortHash = new TcpHash(config.Secret, 6);
        _portCounter = (uint)new TcpHash(config.Secret, 5).Hash(0, 0);
    }

    /// <summary>The received frame whose segment the next <see cref="Input"/> carries (its payload may be kept in
    /// the frame until read: <see cref="HeldFrames"/>), or null (a reassembled or locally delivered datagram).
    /// The caller releases the frame after the input unless <see cref="TakeInputFrame"/> says it is held.</summary>
    public void SetInputFrame(PacketBuffer? frame)
    {
        _inputFrame = frame;
        _inputFrameHeld = false;
    }

    /// <summary>True when the frame given to <see cref="SetInputFrame"/> is now held by a connection (the
    /// caller must not release it); forgets the frame either way.</summary>
    public bool TakeInputFrame()
    {
        bool held = _inputFrameHeld;
        _inputFrame = null;
        _inputFrameHeld = false;
        return held;
    }

    /// <summary>Most received frames held at once (<see cref="StackConfig.TcpHeldFrames"/> capped by the stack
    /// to a share of its NIC's pool).</summary>
    public int HeldFramesLimit { get => _held.Limit; set => _held.Limit = Math.Clamp(value, 0, _held.Capacity); }
    /// <summary>Received frames held by connections now.</summary>
    public int HeldFramesInUse => _held.Count;

    /// <summary>Connection objects in use (sockets, connections in the SYN/accept queues, TIME_WAIT).</summary>
    public int LiveConnections => _tcbs.Length - _freeCount;
    /// <summary>Size of the preallocated connection pool.</summary>
    public int PoolCapacity => _tcbs.Length;
    /// <summary>Entries of the 4-tuple table (must be 0 when every connection is gone).</summary>
    public int FlowTableCount => _flows.Count;
    /// <summary>Bytes of send/receive rings held by connections (only those with bytes queued hold one).</summary>
    public long RingBytesInUse => _rings.InUseBytes;
    /// <summary>The stack's send and receive rings (the stack hooks <see cref="RingPool.BeforeReturn"/>).</summary>
    internal RingPool Rings => _rings;
    /// <summary>Bytes of empty rings kept for reuse (at most <see cref="StackConfig.TcpRingPoolBytes"/>).</summary>
    public long RingBytesPooled => _rings.PooledBytes;
    /// <summary>Rings allocated from the GC heap so far (0 growth in steady state: rings are reused).</summary>
    public long RingAllocations => _rings.Allocations;

    /// <summary>Connection objects in use by state: <paramref name="counts"/>[(int)state] (diagnostics; walks the table).</summary>
    public void CountByState(Span<int> counts)
    {
        counts.Clear();
        for (int i = 0; i < _activeCount; i++)
        {
            int s = (int)_tcbs[_active[i]].State;
            if ((uint)s < (uint)counts.Length) counts[s]++;
        }
    }

    /// <summary>Connections whose FIN the peer has not yet acknowledged (FIN-WAIT-1, CLOSING, LAST-ACK): after
    /// a close they still owe the peer data or a FIN, so a process that holds the stack must keep polling
    /// before it exits, where the kernel would deliver them after the owner is gone.</summary>
    public int UnacknowledgedCloses
    {
        get
        {
            int n = 0;
            for (int i = 0; i < _timedCount; i++) // parked ones are in TIME_WAIT
                if (_tcbs[_active[i]].State is TcpState.FinWait1 or TcpState.Closing or TcpState.LastAck) n++;
            return n;
        }
    }

    /// <summary>The state of a connection (for tests and diagnostics).</summary>
    public TcpState GetState(SocketHandle socket) =>
        socket.Value >= 0 && socket.Value < _tcbs.Length && _tcbs[socket.Value].InUse ? _tcbs[socket.Value].State : TcpState.Closed;

    internal Tcb? Peek(SocketHandle socket) =>
        socket.Value >= 0 && socket.Value < _tcbs.Length && _tcbs[socket.Value].InUse ? _tcbs[socket.Value] : null;

    // ------------------------------------------------------------------ pool

    private Tcb? AllocTcb()
    {
        if (_freeCount == 0)
        {
            // Linux caps TIME_WAIT buckets and kills the excess; we recycle the oldest-deadline one.
            var victim = _timeWait.Oldest(_tcbs);
            if (victim is null) { Counters.PoolExhausted++; return null; }
            _timeWait.RemoveOldest();
            Counters.TimeWaitRecycled++;
            Free(victim);
        }
        var t = _tcbs[_free[--_freeCount]];
        t.Reset(_config.TcpSendBufferBytes, _config.TcpReceiveBufferBytes);
        t.QuickAcksLeft = QuickAcks;
        t.InUse = true;
        // Appended, then into the timed part (the first parked connection, if any, takes the end).
        _active[_activeCount] = t.Index;
        t.ActivePos = _activeCount++;
        Unpark(t);
        return t;
    }

    /// <summary>A connection can be allocated now: a free one, or a TIME_WAIT one to recycle.</summary>
    private bool CanAlloc => _freeCount > 0 || _timeWait.Oldest(_tcbs) is not null;

    /// <summary>Connections whose timers the poll walks (tests: TIME_WAITs the program closed are parked).</summary>
    internal int TimedConnections => _timedCount;

    /// <summary>TIME_WAIT entries queued, stale ones included (tests: the queue stays bounded).</summary>
    internal int TimeWaitQueueCount => _timeWait.Count;

    private void Free(Tcb t)
    {
        if (!t.InUse) return;
        if (t.InFlowTable) { _flows.Remove(t.LocalAddress, t.LocalPort, t.RemoteAddress, t.RemotePort); t.InFlowTable = false; }
        if (t.ExplicitBind) { _explicitBinds[t.LocalPort]--; t.ExplicitBind = false; }
        if (t.State == TcpState.Listen) UnlinkListener(t);
        if (t.Parent >= 0 && !t.InAcceptQueue) _tcbs[t.Parent].SynQueueCount--;
        t.Parent = -1;
        t.State = TcpState.Closed;
        t.ReleaseRings();
        t.InUse = false;
        t.UserOwned = false;
        // Out of the timed part (the last timed connection fills its slot), then out of the list (the last fills it).
        if (!t.Parked) Park(t);
        MoveInActive(t, --_activeCount);
        t.Parked = false;
        t.ActivePos = -1;
        _free[_freeCount++] = t.Index;
    }

    /// <summary>
    /// A connection the program closed that waits out TIME_WAIT with no other timer leaves the timed part of the
    /// active list: its only deadline (2MSL) is the TIME_WAIT queue's order, which the poll reads at the head
    /// (<see cref="ExpireTimeWait"/>). A full pool is mostly such connections (nginx with Connection: close holds
    /// ~1,500), and each poll whose earliest deadline had passed walked them all (~2% of nginx's time, perf).
    /// </summary>
    private static bool Parkable(Tcb t, Instant next) =>
        t.State == TcpState.TimeWait && !t.UserOwned && next == t.StateDeadline;

    private void Park(Tcb t)
    {
        MoveInActive(t, --_timedCount);
        t.Parked = true;
    }

    private void Unpark(Tcb t)
    {
        MoveInActive(t, _timedCount++);
        t.Parked = false;
    }

    /// <summary>Swaps <paramref name="t"/> with whichever connection holds <paramref name="slot"/> of the active list
    /// (the boundary between its timed and parked parts).</summary>
    private void MoveInActive(Tcb t, int slot)
    {
        int pos = t.ActivePos, other = _active[slot];
        _active[pos] = other;
        _tcbs[other].ActivePos = pos;
        _active[slot] = t.Index;
        t.ActivePos = slot;
    }

    /// <summary>Runs the 2MSL timer of the parked connections whose wait is over (the queue is in deadline order:
    /// the wait is one constant); returns the next one's deadline.</summary>
    private Instant ExpireTimeWait(Instant now)
    {
        while (_timeWait.Oldest(_tcbs) is { } t)
        {
            if (t.StateDeadline > now) return t.StateDeadline;
            _timeWait.RemoveOldest();
            RunTimers(t, now);
        }
        return Instant.Never;
    }

    private Errno GetUser(SocketHandle h, out Tcb t)
    {
        t = null!;
        if (h.Value < 0 || h.Value >= _tcbs.Length) return Errno.EBADF;
        t = _tcbs[h.Value];
        return t.InUse && t.UserOwned ? Errno.Ok : Errno.EBADF;
    }

    private void Touch(Tcb t)
    {
        if (!t.InUse) return;
        var d = t.NextDeadline();
        if (d < _earliest) _earliest = d;
        if (Parkable(t, d) != t.Parked)
        {
            if (t.Parked) Unpark(t);
            else Park(t);
        }
    }

    // ------------------------------------------------------------------ socket API

    public Errno Open(SocketKind kind, out SocketHandle socket)
    {
        socket = SocketHandle.Invalid;
        if (kind != SocketKind.Tcp) return Errno.EPROTONOSUPPORT;
        var t = AllocTcb();
        if (t is null) return Errno.ENFILE;
        t.UserOwned = true;
        socket = new SocketHandle(t.Index);
        return Errno.Ok;
    }

    public Errno Bind(SocketHandle socket, Ipv4Endpoint local)
    {
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        if (t.Bound || t.State != TcpState.Closed) return Errno.EINVAL;
        if (!local.Address.IsUnspecified && local.Address != _config.Address) return Errno.EADDRNOTAVAIL;
        ushort port = local.Port;
        if (port == 0)
        {
            if (!PickBindPort(out port)) return Errno.EADDRINUSE;
        }
        else if (BindConflict(t, port)) return Errno.EADDRINUSE;
        t.LocalAddress = local.Address;
        t.LocalPort = port;
        t.Bound = true;
        t.ExplicitBind = true;
        _explicitBinds[port]++;
        return Errno.Ok;
    }

    private bool BindConflict(Tcb me, ushort port)
    {
        for (int i = 0; i < _activeCount; i++)
        {
            var o = _tcbs[_active[i]];
            if (o == me || !o.Bound || o.LocalPort != port) continue;
            if (o.ReusePort && me.ReusePort) continue; // SO_REUSEPORT on both: a group (one user: one process)
            if (o.State == TcpState.TimeWait) { if (!me.ReuseAddr) return true; continue; }
            if (o.State == TcpState.Listen) return true;
            if (!(me.ReuseAddr && o.ReuseAddr)) return true;
        }
        return false;
    }

    private bool PickBindPort(out ushort port)
    {
        int range = EphemeralHigh - EphemeralLow + 1;
        uint start = _portCounter++;
        for (int i = 0; i < range; i++)
        {
            int p = EphemeralLow + (int)((start + (uint)i) % (uint)range);
            if (_explicitBinds[p] == 0 && _listenerByPort[p] < 0 && !PortUsedByConnection((ushort)p))
            {
                port = (ushort)p;
                return true;
            }
        }
        port = 0;
        return false;
    }

    private bool PortUsedByConnection(ushort port)
    {
        for (int i = 0; i < _activeCount; i++)
        {
            var o = _tcbs[_active[i]];
            if (o.Bound && o.LocalPort == port) return true;
        }
        return false;
    }

    /// <summary>RFC 6056 §3.3.3 (algorithm 3): offset = F(addresses, remote port, secret), then probe
    /// sequentially from offset + a global counter until a free 4-tuple is found.</summary>
    private bool PickEphemeral(Ipv4Address local, Ipv4Address remote, ushort remotePort, out ushort port)
    {
        const int range = EphemeralHigh - EphemeralLow + 1;
        uint offset = (uint)_portHash.Hash(local.Value, remote.Value, 0, remotePort);
        for (int i = 0; i < range; i++)
        {
            int p = EphemeralLow + (int)((offset + _portCounter + (uint)i) % range);
            if (_explicitBinds[p] != 0 || _listenerByPort[p] >= 0) continue;
            if (_flows.Find(local, (ushort)p, remote, remotePort) >= 0) continue;
            _portCounter += (uint)i + 1;
            port = (ushort)p;
            return true;
        }
        port = 0;
        return false;
    }

    public Errno Listen(SocketHandle socket, int backlog)
    {
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        backlog = Math.Clamp(backlog, 1, MaxBacklog);
        if (t.State == TcpState.Listen)
        {
            if (backlog > t.AcceptQueue.Length) return Errno.Ok; // keep the queue; Linux would grow it
            t.Backlog = backlog;
            return Errno.Ok;
        }
        if (t.State != TcpState.Closed || t.InFlowTable) return Errno.EINVAL;
        if (!t.Bound)
        {
            if (!PickBindPort(out ushort p)) return Errno.EADDRINUSE;
            t.LocalPort = p; t.Bound = true; t.ExplicitBind = true; _explicitBinds[p]++;
        }
        // Listeners share a port only as an SO_REUSEPORT group: every member set the option.
        int last = -1;
        for (int i = _listenerByPort[t.LocalPort]; i >= 0; i = _tcbs[i].NextListener)
        {
            if (!t.ReusePort || !_tcbs[i].ReusePort) return Errno.EADDRINUSE;
            last = i;
        }
        if (t.AcceptQueue.Length < backlog) t.AcceptQueue = new int[backlog];
        t.Backlog = backlog;
        t.AcceptHead = t.AcceptCount = 0;
        t.State = TcpState.Listen;
        t.NextListener = -1;
        if (last < 0) _listenerByPort[t.LocalPort] = t.Index;
        else _tcbs[last].NextListener = t.Index;
        return Errno.Ok;
    }

    private void UnlinkListener(Tcb t)
    {
        int prev = -1;
        for (int i = _listenerByPort[t.LocalPort]; i >= 0; prev = i, i = _tcbs[i].NextListener)
        {
            if (i != t.Index) continue;
            if (prev < 0) _listenerByPort[t.LocalPort] = t.NextListener;
            else _tcbs[prev].NextListener = t.NextListener;
            break;
        }
        t.NextListener = -1;
    }

    /// <summary>The listener for a new connection to <paramref name="port"/>: alone, or chosen in its
    /// SO_REUSEPORT group by a keyed hash of the 4-tuple, as Linux spreads a group (every segment of one
    /// connection, SYN cookie ACKs included, meets the same member while the group is unchanged). -1 if none.</summary>
    private int SelectListener(Ipv4Address local, ushort port, Ipv4Address remote, ushort remotePort)
    {
        int first = _listenerByPort[port];
        if (first < 0 || _tcbs[first].NextListener < 0) return first;
        int n = 0;
        for (int i = first; i >= 0; i = _tcbs[i].NextListener) n++;
        uint h = (uint)_reusePortHash.Hash(local.Value, remote.Value, port, remotePort);
        int pick = (int)(((ulong)h * (uint)n) >> 32);
        int j = first;
        while (pick-- > 0) j = _tcbs[j].NextListener;
        return j;
    }

    public Errno Accept(SocketHandle listener, out SocketHandle connection, out Ipv4Endpoint remote)
    {
        connection = SocketHandle.Invalid;
        remote = default;
        if (GetUser(listener, out var l) != Errno.Ok) return Errno.EBADF;
        if (l.State != TcpState.Listen) return Errno.EINVAL;
        if (l.AcceptCount == 0) return Errno.EAGAIN;
        int idx = l.AcceptQueue[l.AcceptHead];
        l.AcceptHead = (l.AcceptHead + 1) % l.AcceptQueue.Length;
        l.AcceptCount--;
        var c = _tcbs[idx];
        c.InAcceptQueue = false;
        c.Parent = -1;
        c.UserOwned = true;
        connection = new SocketHandle(idx);
        remote = new Ipv4Endpoint(c.RemoteAddress, c.RemotePort);
        return Errno.Ok;
    }

    public Errno Connect(SocketHandle socket, Ipv4Endpoint remote)
    {
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        switch (t.State)
        {
            case TcpState.SynSent: case TcpState.SynReceived: return Errno.EALREADY;
            case TcpState.Listen: return Errno.EISCONN;
            case TcpState.Closed:
                if (t.InFlowTable) return t.PendingError != Errno.Ok ? TakeErrorOf(t) : Errno.EISCONN;
                break;
            default: return Errno.EISCONN;
        }
        if (remote.Port == 0 || remote.Address.IsUnspecified || remote.Address.IsBroadcast || remote.Address.IsMulticast)
            return Errno.ECONNREFUSED;
        var local = _config.Address;
        ushort lport;
        if (t.Bound)
        {
            lport = t.LocalPort;
            if (_flows.Find(local, lport, remote.Address, remote.Port) >= 0) return Errno.EADDRNOTAVAIL;
        }
        else if (!PickEphemeral(local, remote.Address, remote.Port, out lport)) return Errno.EADDRNOTAVAIL;
        t.LocalAddress = local;
        t.LocalPort = lport;
        t.Bound = true;
        t.RemoteAddress = remote.Address;
        t.RemotePort = remote.Port;
        if (!_flows.Add(local, lport, remote.Address, remote.Port, t.Index)) return Errno.EADDRNOTAVAIL;
        t.InFlowTable = true;
        InitConnection(t);
        t.Iss = NewIsn(t);
        t.SndUna = t.Iss;
        t.SndNxt = t.Iss;
        t.SndMax = t.Iss;
        t.RecoveryPoint = t.HighRxt = t.Iss;
        t.State = TcpState.SynSent;
        t.PendingError = Errno.Ok;
        Counters.ActiveOpens++;
        SendSyn(t);
        Touch(t);
        return Errno.EINPROGRESS;
    }

    public Errno Send(SocketHandle socket, ReadOnlySpan<byte> data, MessageFlags flags, out int sent)
    {
        sent = 0;
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        if (t.PendingError != Errno.Ok) return TakeErrorOf(t);
        switch (t.State)
        {
            case TcpState.Established: case TcpState.CloseWait: break;
            case TcpState.SynSent: case TcpState.SynReceived: return Errno.EAGAIN;
            case TcpState.Closed: case TcpState.Listen: return t.EverConnected ? Errno.EPIPE : Errno.ENOTCONN;
            default: return Errno.EPIPE;
        }
        if (t.FinQueued) return Errno.EPIPE;
        if (data.IsEmpty)
        {
            // As Linux: an empty send without MSG_MORE pushes what an earlier MSG_MORE held.
            if (t.MoreHint && (flags & MessageFlags.More) == 0)
            {
                t.MoreHint = false;
                Output(t);
                Touch(t);
            }
            return Errno.Ok;
        }
        if (t.SndSpace == 0)
        {
            t.SendSpaceWanted = true;
            return Errno.EAGAIN;
        }
        sent = t.AppendSend(data);
        if (sent < data.Length) t.SendSpaceWanted = true;
        t.MoreHint = (flags & MessageFlags.More) != 0;
        if ((flags & MessageFlags.Oob) != 0)
        {
            // RFC 9293 §3.8.5, RFC 6093: the urgent pointer goes one past the last byte of this send (the
            // BSD reading every stack uses); the last byte is the one a Linux peer reads with MSG_OOB.
            t.SndUrgent = true;
            t.SndUp = t.SndUna + t.SndCount;
            Counters.UrgentSent++;
        }
        Output(t);
        Touch(t);
        return Errno.Ok;
    }

    public Errno Receive(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received)
    {
        received = 0;
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        if (t.State == TcpState.Listen) return Errno.ENOTCONN;
        bool peek = (flags & MessageFlags.Peek) != 0;
        if ((flags & MessageFlags.Oob) != 0) return ReceiveUrgent(t, buffer, peek, out received);
        if (t.RcvReadable > 0)
        {
            if (buffer.IsEmpty) return Errno.Ok;
            int before = t.RcvReadable;
            received = t.ReadReceive(buffer, peek);
            if (!peek && t.RcvReadable != before) MaybeWindowUpdate(t);
            if (received > 0) return Errno.Ok;
            // Only the urgent byte was there, and it was skipped (not inline): nothing to read (Linux).
        }
        if (t.PendingError != Errno.Ok) return TakeErrorOf(t);
        if (t.FinReceived || t.RcvShutdown) return Errno.Ok;
        if (t.State == TcpState.Closed) return t.InFlowTable ? Errno.Ok : Errno.ENOTCONN;
        return Errno.EAGAIN;
    }

    /// <summary>recv(MSG_OOB) as Linux's tcp_recv_urg: the one urgent byte, EINVAL when there is none (or it
    /// is inline or already read), EAGAIN while it is announced but not arrived; never blocks.</summary>
    private static Errno ReceiveUrgent(Tcb t, Span<byte> buffer, bool peek, out int received)
    {
        received = 0;
        if (t.OobInline || t.Urg is UrgentState.None or UrgentState.Read) return Errno.EINVAL;
        if (t.Urg == UrgentState.Valid)
        {
            if (!buffer.IsEmpty) { buffer[0] = t.UrgByte; received = 1; }
            if (!peek) t.Urg = UrgentState.Read;
            return Errno.Ok;
        }
        if (t.State == TcpState.Closed || t.FinReceived || t.RcvShutdown) return Errno.Ok;
        return Errno.EAGAIN;
    }

    /// <summary>SIOCATMARK: the read position is at the urgent byte.</summary>
    public Errno AtUrgentMark(SocketHandle socket, out bool atMark)
    {
        atMark = false;
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        atMark = t.Urg != UrgentState.None && t.UrgOffset == 0;
        return Errno.Ok;
    }

    public Errno Shutdown(SocketHandle socket, ShutdownHow how)
    {
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        if (t.State is TcpState.Closed or TcpState.Listen or TcpState.SynSent) return Errno.ENOTCONN;
        if (how != ShutdownHow.Write) t.RcvShutdown = true;
        if (how != ShutdownHow.Read) QueueFin(t);
        t.WakeAll(); // Linux's shutdown() wakes the socket's waiters (sk_state_change)
        Output(t);
        Touch(t);
        return Errno.Ok;
    }

    private void QueueFin(Tcb t)
    {
        if (t.FinQueued) return;
        switch (t.State)
        {
            case TcpState.Established: case TcpState.SynReceived: t.State = TcpState.FinWait1; break;
            case TcpState.CloseWait: t.State = TcpState.LastAck; break;
            default: return;
        }
        t.FinQueued = true;
        // The FIN follows the queued data; before our SYN is acknowledged the data starts at ISS + 1.
        t.FinSeq = (t.SndUna == t.Iss ? t.Iss + 1 : t.SndUna) + t.SndCount;
    }

    public Errno Close(SocketHandle socket)
    {
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        t.UserOwned = false;
        t.ReleaseIdleRings(); // kept only for the program's next message (Tcb.RingKeepMicros)
        switch (t.State)
        {
            case TcpState.Listen:
                for (int i = _activeCount - 1; i >= 0; i--)
                {
                    if (i >= _activeCount) continue;
                    var c = _tcbs[_active[i]];
                    if (c.Parent == t.Index)
                    {
                        c.InAcceptQueue = false;
                        Abort(c, Errno.ECONNABORTED, sendRst: true);
                    }
                }
                Free(t);
                return Errno.Ok;
            case TcpState.Closed:
            case TcpState.SynSent:
                Free(t);
                return Errno.Ok;
        }
        // RFC 2525 §2.17 / Linux: unread data, or SO_LINGER with a zero timeout, aborts with RST.
        if (t.RcvReadable > 0 || (t.LingerOn && t.LingerSeconds == 0))
        {
            Counters.UserAborts++;
            Abort(t, Errno.ECONNRESET, sendRst: t.State != TcpState.TimeWait);
            return Errno.Ok;
        }
        QueueFin(t);
        if (t.State == TcpState.TimeWait) _timeWait.Add(t, _tcbs); // recyclable from now on
        if (t.State == TcpState.FinWait2) t.StateDeadline = _now + new TimeSpanMicros(FinWait2Micros);
        else if (t.LingerOn && t.State is TcpState.FinWait1 or TcpState.Closing or TcpState.LastAck)
        {
            // SO_LINGER with a timeout: close() cannot block here, so the connection keeps flushing in the
            // background and is reset if its data and FIN are not acknowledged in time (BSD semantics).
            t.StateDeadline = _now + TimeSpanMicros.FromSeconds(t.LingerSeconds);
        }
        Output(t);
        Touch(t);
        return Errno.Ok;
    }

    public Errno GetLocalEndpoint(SocketHandle socket, out Ipv4Endpoint local)
    {
        local = default;
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        local = new Ipv4Endpoint(t.LocalAddress, t.LocalPort);
        return Errno.Ok;
    }

    public Errno GetRemoteEndpoint(SocketHandle socket, out Ipv4Endpoint remote)
    {
        remote = default;
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        if (!t.InFlowTable || t.State is TcpState.Listen or TcpState.SynSent) return Errno.ENOTCONN;
        remote = new Ipv4Endpoint(t.RemoteAddress, t.RemotePort);
        return Errno.Ok;
    }

    public Errno Available(SocketHandle socket, out int bytes)
    {
        bytes = 0;
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        if (t.State == TcpState.Listen) return Errno.EINVAL;
        bytes = t.RcvReadable;
        // Linux tcp_inq: up to the urgent byte when it is out of band and not yet passed.
        if (!t.OobInline && t.Urg != UrgentState.None && t.UrgOffset < t.RcvReadable) bytes = t.UrgOffset;
        return Errno.Ok;
    }

    public Readiness GetReadiness(SocketHandle socket)
    {
        if (GetUser(socket, out var t) != Errno.Ok) return Readiness.Error | Readiness.HangUp;
        Readiness r = Readiness.None;
        if (t.State == TcpState.Listen) return t.AcceptCount > 0 ? Readiness.Readable : Readiness.None;
        if (t.PendingError != Errno.Ok) r |= Readiness.Error;
        if (t.RcvReadable > (t.UrgentByteFirst ? 1 : 0)) r |= Readiness.Readable;
        if (t.Urg == UrgentState.Valid) r |= Readiness.Priority; // EPOLLPRI: urgent byte to read
        if (t.FinReceived || t.RcvShutdown) r |= Readiness.Readable | Readiness.ReadHangUp;
        if (t.State is TcpState.Established or TcpState.CloseWait && !t.FinQueued)
        {
            if (t.SendSpaceReady) r |= Readiness.Writable;
            else t.SendSpaceWanted = true; // as Linux's tcp_poll sets SOCK_NOSPACE
        }
        if (t.State == TcpState.Closed)
        {
            r |= Readiness.HangUp | Readiness.Writable;
            if (t.InFlowTable) r |= Readiness.Readable | Readiness.ReadHangUp;
        }
        else if (t.FinReceived && t.FinQueued) r |= Readiness.HangUp;
        return r;
    }


    public SocketEvents GetEvents(SocketHandle socket) =>
        GetUser(socket, out var t) == Errno.Ok ? new SocketEvents(t.ReadEvents, t.WriteEvents) : default;

    public Errno TakeError(SocketHandle socket)
    {
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        return TakeErrorOf(t);
    }

    private static Errno TakeErrorOf(Tcb t)
    {
        var e = t.PendingError;
        t.PendingError = Errno.Ok;
        return e;
    }

    // ------------------------------------------------------------------ options

    public Errno SetOption(SocketHandle socket, int level, int name, ReadOnlySpan<byte> value)
    {
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        if (level == IPPROTO_TCP && name == TCP_CONGESTION)
        {
            int len = value.IndexOf((byte)0);
            var s = len >= 0 ? value[..len] : value;
            if (s.SequenceEqual("cubic"u8)) { if (t.Cc != t.Cubic) { t.Cc = t.Cubic; t.Cubic.Reset(); } }
            else if (s.SequenceEqual("reno"u8)) { if (t.Cc != t.Reno) { t.Cc = t.Reno; t.Reno.Reset(); } }
            else return Errno.ENOENT;
            return Errno.Ok;
        }
        if (level == SOL_SOCKET && name == SO_LINGER)
        {
            if (value.Length < 8) return Errno.EINVAL;
            t.LingerOn = BinaryPrimitives.ReadInt32LittleEndian(value) != 0;
            t.LingerSeconds = Math.Max(0, BinaryPrimitives.ReadInt32LittleEndian(value[4..]));
            return Errno.Ok;
        }
        if (value.Length < 4) return Errno.EINVAL;
        int v = BinaryPrimitives.ReadInt32LittleEndian(value);
        switch (level, name)
        {
            case (SOL_SOCKET, SO_REUSEADDR): t.ReuseAddr = v != 0; return Errno.Ok;
            case (SOL_SOCKET, SO_REUSEPORT): t.ReusePort = v != 0; return Errno.Ok;
            case (SOL_SOCKET, SO_OOBINLINE): t.OobInline = v != 0; return Errno.Ok;
            case (SOL_SOCKET, SO_KEEPALIVE):
                t.KeepAlive = v != 0;
                ArmKeepalive(t);
                Touch(t);
                return Errno.Ok;
            case (SOL_SOCKET, SO_SNDBUF):
            {
                // The rings hold payload: half of what Linux counts (it doubles the request for overhead).
                t.SndBufOption = SocketBufferSize.FromRequest(v, _config.SendBufferMax, SocketBufferSize.MinSend);
                int ring = Math.Max(t.SndBufOption / 2, MinRingBytes);
                bool wasReady = t.SendSpaceReady;
                if (t.RingsLive)
                {
                    t.ResizeSend(ring);
                    if (t.SendSpaceReady) Output(t); // more may be queued now
                    Touch(t);
                }
                else t.SndBufSize = ring;
                if (!wasReady && t.SendSpaceReady) t.WriteEvents++; // writable now: a write event (Linux sk_write_space)
                return Errno.Ok;
            }
            case (SOL_SOCKET, SO_RCVBUF):
            {
                t.RcvBufOption = SocketBufferSize.FromRequest(v, _config.ReceiveBufferMax, SocketBufferSize.MinReceive);
                int ring = Math.Max(t.RcvBufOption / 2, MinRingBytes);
                if (t.RingsLive)
                {
                    t.ResizeReceive(ring);
                    MaybeWindowUpdate(t); // a larger ring opens the window now
                }
                else t.RcvBufSize = ring; // the window scale is chosen from it at the SYN
                return Errno.Ok;
            }
            case (SOL_SOCKET, SO_TYPE): case (SOL_SOCKET, SO_ERROR): return Errno.ENOPROTOOPT;
            case (IPPROTO_TCP, TCP_NODELAY):
                t.NoDelay = v != 0;
                if (t.NoDelay) { Output(t); Touch(t); }
                return Errno.Ok;
            case (IPPROTO_TCP, TCP_CORK):
                t.Cork = v != 0;
                if (!t.Cork) { Output(t); Touch(t); }
                return Errno.Ok;
            case (IPPROTO_TCP, TCP_MAXSEG):
                if (v != 0 && (v < 88 || v > 32767)) return Errno.EINVAL;
                t.UserMss = v;
                return Errno.Ok;
            case (IPPROTO_TCP, TCP_KEEPIDLE):
                if (v < 1 || v > 32767) return Errno.EINVAL;
                t.KeepIdleSec = v; ArmKeepalive(t); Touch(t); return Errno.Ok;
            case (IPPROTO_TCP, TCP_KEEPINTVL):
                if (v < 1 || v > 32767) return Errno.EINVAL;
                t.KeepIntvlSec = v; return Errno.Ok;
            case (IPPROTO_TCP, TCP_KEEPCNT):
                if (v < 1 || v > 127) return Errno.EINVAL;
                t.KeepCnt = v; return Errno.Ok;
            case (IPPROTO_IP, IP_TOS): t.Tos = (byte)v; return Errno.Ok;
        }
        return Errno.ENOPROTOOPT;
    }

    public Errno GetOption(SocketHandle socket, int level, int name, Span<byte> value, out int length)
    {
        length = 0;
        if (GetUser(socket, out var t) != Errno.Ok) return Errno.EBADF;
        if (level == IPPROTO_TCP && name == TCP_INFO)
        {
            Span<byte> info = stackalloc byte[TcpInfoSize];
            FillTcpInfo(t, info);
            length = Math.Min(value.Length, TcpInfoSize);
            info[..length].CopyTo(value);
            return Errno.Ok;
        }
        if (level == IPPROTO_TCP && name == TCP_CONGESTION)
        {
            var nm = t.Cc == t.Reno ? "reno"u8 : "cubic"u8;
            length = Math.Min(value.Length, 16);
            value[..length].Clear();
            nm[..Math.Min(nm.Length, length)].CopyTo(value);
            return Errno.Ok;
        }
        if (level == SOL_SOCKET && name == SO_LINGER)
        {
            if (value.Length < 8) return Errno.EINVAL;
            BinaryPrimitives.WriteInt32LittleEndian(value, t.LingerOn ? 1 : 0);
            BinaryPrimitives.WriteInt32LittleEndian(value[4..], t.LingerSeconds);
            length = 8;
            return Errno.Ok;
        }
        int v;
        switch (level, name)
        {
            case (SOL_SOCKET, SO_REUSEADDR): v = t.ReuseAddr ? 1 : 0; break;
            case (SOL_SOCKET, SO_REUSEPORT): v = t.ReusePort ? 1 : 0; break;
            case (SOL_SOCKET, SO_OOBINLINE): v = t.OobInline ? 1 : 0; break;
            case (SOL_SOCKET, SO_KEEPALIVE): v = t.KeepAlive ? 1 : 0; break;
            case (SOL_SOCKET, SO_SNDBUF): v = t.SndBufOption != 0 ? t.SndBufOption : 2 * t.SndBufSize; break;
            case (SOL_SOCKET, SO_RCVBUF): v = t.RcvBufOption != 0 ? t.RcvBufOption : 2 * t.RcvBufSize; break;
            case (SOL_SOCKET, SO_TYPE): v = SOCK_STREAM; break;
            case (SOL_SOCKET, SO_ERROR): v = (int)TakeErrorOf(t); break;
            case (IPPROTO_TCP, TCP_NODELAY): v = t.NoDelay ? 1 : 0; break;
            case (IPPROTO_TCP, TCP_CORK): v = t.Cork ? 1 : 0; break;
            case (IPPROTO_TCP, TCP_MAXSEG): v = t.IsSynchronized ? t.EffectiveMss : (t.UserMss != 0 ? t.UserMss : 536); break;
            case (IPPROTO_TCP, TCP_KEEPIDLE): v = t.KeepIdleSec; break;
            case (IPPROTO_TCP, TCP_KEEPINTVL): v = t.KeepIntvlSec; break;
            case (IPPROTO_TCP, TCP_KEEPCNT): v = t.KeepCnt; break;
            case (IPPROTO_IP, IP_TOS): v = t.Tos; break;
            default: return Errno.ENOPROTOOPT;
        }
        if (value.Length < 4) return Errno.EINVAL;
        BinaryPrimitives.WriteInt32LittleEndian(value, v);
        length = 4;
        return Errno.Ok;
    }

    /// <summary>Smallest ring we run a connection with (a few hundred bytes of window would stall on SWS rules).</summary>
    private const int MinRingBytes = 2048;

    /// <summary>Linux's struct tcp_info (include/uapi/linux/tcp.h, up to tcpi_total_rto_time), little-endian,
    /// filled from the TCB in Linux's units: times in µs unless named _ms ("last_*": ms ago), windows and
    /// byte counts in bytes, packet counts in segments of the current MSS (ours counts bytes).</summary>
    private void FillTcpInfo(Tcb t, Span<byte> b)
    {
        b.Clear();
        int mss = t.EffectiveMss;
        int Segs(long bytes) => (int)Math.Min((bytes + mss - 1) / mss, int.MaxValue);
        bool established = t.IsSynchronized;
        b[0] = (byte)t.State;
        // ca_state: Open 0, Disorder 1 (duplicate ACKs or SACKs, no recovery yet), Recovery 3, Loss 4 (after an RTO).
        b[1] = (byte)(t.Retransmits > 0 && established ? 4 : t.InRecovery ? 3 : t.DupAcks > 0 || t.SackCount > 0 ? 1 : 0);
        b[2] = (byte)Math.Min(t.Retransmits, 255);
        b[3] = (byte)Math.Min(t.KeepaliveProbesSent + t.PersistUnanswered, 255);  // probes out unanswered
        b[4] = (byte)Math.Min(t.Backoff, 255);
        b[5] = (byte)((t.TsOk ? 1 : 0) | (t.SackOk ? 2 : 0) | (t.WscaleOk ? 4 : 0)); // TCPI_OPT_*
        b[6] = (byte)((t.SndWscale & 0xF) | ((t.RcvWscale & 0xF) << 4));
        static void U16(Span<byte> s, int off, long val) => BinaryPrimitives.WriteUInt16LittleEndian(s[off..], (ushort)Math.Clamp(val, 0, ushort.MaxValue));
        static void U32(Span<byte> s, int off, long val) => BinaryPrimitives.WriteUInt32LittleEndian(s[off..], (uint)Math.Clamp(val, 0, uint.MaxValue));
        static void U64(Span<byte> s, int off, long val) => BinaryPrimitives.WriteUInt64LittleEndian(s[off..], (ulong)Math.Max(val, 0));
        long now = _now.Microseconds;
        long Ago(Instant then) => established ? (now - then.Microseconds) / 1000 : 0;
        U32(b, 8, t.RtoMicros);
        U32(b, 12, DelayedAckMicros);                                  // ato
        U32(b, 16, mss);                                               // snd_mss (Linux's mss_cache)
        U32(b, 20, t.RcvMss);
        U32(b, 24, Segs(t.FlightSize));                                // unacked (packets_out)
        U32(b, 28, Segs(t.SackedBytes));                               // sacked
        // lost: after an RTO everything outstanding is presumed lost; in SACK recovery, the holes below
        // the highest SACKed byte (RFC 6675 IsLost, roughly).
        long lost = 0;
        if (t.Retransmits > 0 && established) lost = t.FlightSize;
        else if (t.InRecovery && t.SackCount > 0) lost = Math.Max(0, (t.SackRight[t.SackCount - 1] - t.SndUna) - t.SackedBytes);
        U32(b, 32, Segs(lost));
        // retrans: retransmitted and not yet acknowledged (retrans_out).
        long retrans = t.InRecovery ? Math.Max(0, t.HighRxt - t.SndUna) : t.Retransmits > 0 ? Math.Max(0, t.SndNxt - t.SndUna) : 0;
        U32(b, 36, Segs(retrans));
        U32(b, 44, Ago(t.LastDataSent));
        U32(b, 52, Ago(t.LastDataRecv));
        U32(b, 56, Ago(t.LastAckRecv));
        U32(b, 60, t.Pmtu);
        U32(b, 64, Math.Min(t.RcvBufSize, 65535L << t.RcvWscale));    // rcv_ssthresh: the most we would advertise
        U32(b, 68, t.SrttMicros);
        U32(b, 72, t.RttvarMicros);
        U32(b, 76, t.Ssthresh == int.MaxValue ? 0x7FFFFFFF : t.Ssthresh / mss); // TCP_INFINITE_SSTHRESH
        U32(b, 80, Math.Max(t.Cwnd / mss, established ? 1 : 0));
        U32(b, 84, t.AdvMss);
        U32(b, 88, 3);                                                 // reordering (Linux's default; we keep 3)
        U32(b, 92, 0);                                                 // rcv_rtt: the receiver does not measure
        U32(b, 96, t.RcvBufSize);                                      // rcv_space: the ring (no autotuning)
        U32(b, 100, t.TotalRetrans);
        // pacing_rate as Linux's tcp_update_pacing_rate: cwnd (or what is in flight) per srtt, at 200% in
        // slow start and 120% after; no SO_MAX_PACING_RATE cap (~0).
        if (t.SrttMicros > 0)
        {
            long segs = Math.Max(t.Cwnd / mss, Segs(t.FlightSize));
            int ratio = t.Cwnd < t.Ssthresh / 2 ? 200 : 120;
            U64(b, 104, (long)((double)mss * segs * 1_000_000 / t.SrttMicros * ratio / 100));
        }
        BinaryPrimitives.WriteUInt64LittleEndian(b[112..], ulong.MaxValue);
        U64(b, 120, t.BytesAcked);
        U64(b, 128, t.BytesReceived);
        U32(b, 136, t.SegsOut);
        U32(b, 140, t.SegsIn);
        U32(b, 144, t.SndCount - Math.Max(0, t.SndNxt - t.SndUna));  // notsent_bytes
        U32(b, 148, t.MinRttMicros > 0 ? t.MinRttMicros : uint.MaxValue); // ~0 until a sample, as Linux
        U32(b, 152, t.DataSegsIn);
        U32(b, 156, t.DataSegsOut);
        // delivery_rate: bytes acknowledged per second since the connection started (Linux samples it per ACK).
        long lifetime = established ? now - t.EstablishedAt.Microseconds : 0;
        if (lifetime > 0) U64(b, 160, (long)((double)t.BytesAcked * 1_000_000 / lifetime));
        U32(b, 192, Segs(t.BytesAcked) + (established ? 1 : 0));      // delivered (the SYN counts, as Linux's)
        U64(b, 200, t.BytesSent + t.BytesRetrans);                   // bytes_sent counts retransmissions, as Linux's
        U64(b, 208, t.BytesRetrans);
        U32(b, 216, t.DsackDups);
        U32(b, 220, t.ReordSeen);
        U32(b, 224, t.OooPackets);
        U32(b, 228, t.SndWnd);
        U32(b, 232, t.RcvWnd);
        U16(b, 240, t.TotalRto);
        U16(b, 242, t.TotalRtoRecoveries);
        long rtoTime = t.TotalRtoMicros + (t.Retransmits > 0 && t.TotalRtoRecoveries > 0 ? now - t.RtoRecoveryStart.Microseconds : 0);
        U32(b, 244, rtoTime / 1000);                                   // total_rto_time (ms)
    }
}

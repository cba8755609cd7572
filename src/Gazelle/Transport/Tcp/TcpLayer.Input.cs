using Gazelle.Buffers;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

public sealed partial class TcpLayer
{
    /// <summary>
    /// Starts a receive burst: until <see cref="EndInputBatch"/>, segments taken by header prediction
    /// (in-order data, pure ACKs) do not call Output each; the end of the burst does, once per connection.
    /// So a burst of in-order segments is acknowledged by one ACK (a stretch ACK, as Linux sends for a
    /// GRO-merged burst) sent in the same poll round, never later than the every-second-segment rule
    /// would have (RFC 9293 §3.8.6.3 bounds the delay of an ACK, not its coverage), and several ACKs
    /// arriving together release new data in one pass. Segments that need an immediate answer (out of
    /// order, duplicate, SYN/FIN/RST, anything off the fast path) are answered at once as before.
    /// </summary>
    public void BeginInputBatch() => _batching = true;

    /// <summary>Ends a receive burst: runs the output deferred by <see cref="BeginInputBatch"/>.</summary>
    public void EndInputBatch()
    {
        _batching = false;
        for (int i = 0; i < _deferredCount; i++)
        {
            var t = _tcbs[_deferred[i]];
            if (!t.OutputDeferred) continue; // freed (and maybe reused) during the burst
            t.OutputDeferred = false;
            if (t.InUse) { Output(t); Touch(t); }
        }
        _deferredCount = 0;
    }

    /// <summary>A segment from the IP layer (checksum already verified), RFC 9293 §3.10.7.</summary>
    public void Input(Ipv4Address src, Ipv4Address dst, in TcpRepr header, ReadOnlySpan<byte> payload, Instant now)
    {
        _now = _rings.Now = now;
        Counters.SegmentsIn++;
        var f = header.Flags;
        if (header.SrcPort == 0 || header.DstPort == 0
            || (f & (TcpFlags.Syn | TcpFlags.Fin)) == (TcpFlags.Syn | TcpFlags.Fin)
            || (f & (TcpFlags.Syn | TcpFlags.Rst)) == (TcpFlags.Syn | TcpFlags.Rst)
            || src.IsUnspecified || src.IsBroadcast || src.IsMulticast || dst.IsBroadcast || dst.IsMulticast)
        {
            Counters.BadSegments++; // RFC 1122 §4.2.3.10: no connections with broadcast/multicast
            return;
        }
        int idx = _flows.Find(dst, header.DstPort, src, header.SrcPort);
        SeqNum isnFloor = default;
        bool haveFloor = false;
        if (idx >= 0)
        {
            var t = _tcbs[idx];
            t.SegsIn++;
            if (t.State == TcpState.TimeWait && (f & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) == TcpFlags.Syn
                && TimeWaitAcceptsSyn(t, header) && _listenerByPort[header.DstPort] >= 0)
            {
                // RFC 9293 §3.6.1 / RFC 6191: a new incarnation may take over TIME-WAIT.
                isnFloor = t.SndNxt + 65536 * 2;
                haveFloor = true;
                Counters.TimeWaitReused++;
                Free(t);
            }
            else
            {
                if (HeaderPrediction && FastPath(t, header, payload, now))
                {
                    Counters.HeaderPredicted++;
                    if (_batching && (t.OutputDeferred || _deferredCount < _deferred.Length))
                    {
                        // In-order data or a pure ACK inside a receive burst: one Output per connection at
                        // the end of the burst (EndInputBatch) sends one ACK for all of it.
                        if (!t.OutputDeferred) { t.OutputDeferred = true; _deferred[_deferredCount++] = t.Index; }
                        Touch(t);
                        return;
                    }
                }
                else Segment(t, header, payload, now);
                if (t.InUse) { Output(t); Touch(t); }
                return;
            }
        }
        int l = SelectListener(dst, header.DstPort, src, header.SrcPort);
        if (l >= 0)
        {
            var lt = _tcbs[l];
            if (lt.LocalAddress.IsUnspecified || lt.LocalAddress == dst)
            {
                ListenInput(lt, src, dst, header, payload, now, haveFloor, isnFloor);
                return;
            }
        }
        Counters.NoSocket++;
        ReplyReset(dst, src, header, payload.Length);
    }

    private static bool TimeWaitAcceptsSyn(Tcb t, in TcpRepr h)
    {
        if (t.TsOk && h.Options.HasTimestamp) return unchecked((int)(h.Options.TsVal - t.TsRecent)) > 0;
        return h.Seq > t.RcvNxt;
    }

    /// <summary>RFC 9293 §3.10.7.1: the reply to a segment for no connection.</summary>
    private void ReplyReset(Ipv4Address local, Ipv4Address remote, in TcpRepr h, int payloadLength)
    {
        if (h.Has(TcpFlags.Rst)) return;
        var r = new TcpRepr { SrcPort = h.DstPort, DstPort = h.SrcPort, Options = TcpOptions.None };
        if (h.Has(TcpFlags.Ack))
        {
            r.Seq = h.Ack;
            r.Flags = TcpFlags.Rst;
        }
        else
        {
            r.Seq = default;
            r.Ack = h.Seq + h.SegmentLength(payloadLength);
            r.Flags = TcpFlags.Rst | TcpFlags.Ack;
        }
        Counters.ResetsSent++;
        Emit(local, remote, r, default, default, 0);
    }

    // ------------------------------------------------------------------ LISTEN (RFC 9293 §3.10.7.2)

    private void ListenInput(Tcb l, Ipv4Address src, Ipv4Address dst, in TcpRepr h, ReadOnlySpan<byte> payload, Instant now,
        bool haveFloor, SeqNum isnFloor)
    {
        if (h.Has(TcpFlags.Rst)) return;
        if (h.Has(TcpFlags.Ack))
        {
            if (!h.Has(TcpFlags.Syn) && TryCookie(l, src, dst, h, payload, now)) return;
            ReplyReset(dst, src, h, payload.Length);
            return;
        }
        if (!h.Has(TcpFlags.Syn)) { Counters.BadSegments++; return; }
        if (l.AcceptCount >= l.Backlog) { Counters.ListenOverflows++; return; }
        if (l.SynQueueCount >= l.Backlog || !CanAlloc)
        {
            SendCookieSynAck(l, src, dst, h, now);
            return;
        }
        var c = AllocTcb();
        if (c is null) { SendCookieSynAck(l, src, dst, h, now); return; }
        InheritOptions(l, c);
        c.LocalAddress = dst; c.LocalPort = h.DstPort; c.RemoteAddress = src; c.RemotePort = h.SrcPort; c.Bound = true;
        if (!_flows.Add(dst, h.DstPort, src, h.SrcPort, c.Index)) { Free(c); return; }
        c.InFlowTable = true;
        c.Parent = l.Index;
        l.SynQueueCount++;
        InitConnection(c);
        c.Irs = h.Seq;
        c.RcvNxt = h.Seq + 1;
        c.RcvAdv = c.RcvNxt;
        NegotiateSynOptions(c, h);
        c.Iss = NewIsn(c);
        if (haveFloor && c.Iss - isnFloor < 0) c.Iss = isnFloor;
        c.SndUna = c.SndNxt = c.SndMax = c.Iss;
        c.RecoveryPoint = c.HighRxt = c.Iss;
        c.SndWnd = h.Window; // never scaled in a SYN (RFC 7323 §2.2)
        c.SndWl1 = h.Seq;
        c.SndWl2 = c.Iss;
        c.LastReceived = now;
        c.State = TcpState.SynReceived;
        Counters.PassiveOpens++;
        SendSyn(c);
        Touch(c);
    }

    private static void InheritOptions(Tcb l, Tcb c)
    {
        c.SndBufSize = l.SndBufSize; c.RcvBufSize = l.RcvBufSize; c.SndBufOption = l.SndBufOption; c.RcvBufOption = l.RcvBufOption;
        c.NoDelay = l.NoDelay; c.KeepAlive = l.KeepAlive; c.KeepIdleSec = l.KeepIdleSec; c.KeepIntvlSec = l.KeepIntvlSec;
        c.KeepCnt = l.KeepCnt; c.LingerOn = l.LingerOn; c.LingerSeconds = l.LingerSeconds; c.UserMss = l.UserMss; c.Tos = l.Tos;
        c.ReuseAddr = l.ReuseAddr; c.ReusePort = l.ReusePort; c.OobInline = l.OobInline;
        c.Cc = l.Cc == l.Reno ? c.Reno : c.Cubic;
    }

    /// <summary>Fresh per-connection state: RTO, congestion window, window scale, timestamp offset.</summary>
    private void InitConnection(Tcb t)
    {
        t.RtoMicros = InitialRtoMicros;
        t.Pmtu = _output.PathMtu(t.RemoteAddress);
        int mtuMss = Math.Max(t.Pmtu - 40, MinimumMss);
        t.AdvMss = t.UserMss != 0 ? Math.Min(t.UserMss, mtuMss) : mtuMss;
        t.RcvMss = Math.Min(536, t.AdvMss);
        t.RcvWscale = WindowScaleFor(t.RcvBufSize);
        t.TsOffset = (uint)_tsHash.Hash(t.LocalAddress.Value, t.RemoteAddress.Value, t.LocalPort, t.RemotePort);
        t.Ssthresh = int.MaxValue;
        t.Cc.Reset();
        t.HyStart.Reset(HyStartEnabled);
        t.LastReceived = _now;
        t.LastSent = _now;
    }

    private static byte WindowScaleFor(int bufferBytes)
    {
        byte s = 0;
        while (s < 14 && (bufferBytes >> s) > 65535) s++;
        return s;
    }

    /// <summary>RFC 6528: ISN = M + F(4-tuple, secret), M a 4 µs clock.</summary>
    private SeqNum NewIsn(Tcb t) =>
        new((uint)(_now.Microseconds / 4) + (uint)_isnHash.Hash(t.LocalAddress.Value, t.RemoteAddress.Value, t.LocalPort, t.RemotePort));

    private void NegotiateSynOptions(Tcb t, in TcpRepr h)
    {
        ref readonly var o = ref h.Options;
        int peerMss = o.Mss != 0 ? o.Mss : 536; // RFC 9293 §3.7.1 default
        t.SndMss = Math.Max(Math.Min(peerMss, t.AdvMss), 64);
        if (t.UserMss != 0) t.SndMss = Math.Min(t.SndMss, t.UserMss);
        if (o.HasWindowScale)
        {
            t.WscaleOk = true;
            t.SndWscale = Math.Min(o.WindowScale, (byte)14); // RFC 7323 §2.3
        }
        else
        {
            t.WscaleOk = false;
            t.SndWscale = 0;
            t.RcvWscale = 0;
        }
        t.SackOk = o.SackPermitted && SackEnabled;
        if (o.HasTimestamp)
        {
            t.TsOk = true;
            t.TsRecent = o.TsVal;
            t.TsRecentAgeMs = _now.Milliseconds;
        }
        else t.TsOk = false;
        t.Cwnd = InitialWindowSegments * t.EffectiveMss;
    }

    // ------------------------------------------------------------------ SYN cookies

    private static ReadOnlySpan<ushort> CookieMss => [536, 1200, 1300, 1400, 1440, 1460, 4312, 8960];

    private uint CookieHash(Ipv4Address local, Ipv4Address remote, ushort lport, ushort rport, SeqNum irs, uint epoch, uint mssIdx) =>
        (uint)_cookieHash.Hash(local.Value, remote.Value, lport, rport, ((ulong)irs.Value << 32) | (epoch << 3) | mssIdx) & 0xFFFFFF;

    private static uint CookieEpoch(Instant now) => (uint)(now.Microseconds / 64_000_000) & 31;

    private void SendCookieSynAck(Tcb l, Ipv4Address src, Ipv4Address dst, in TcpRepr h, Instant now)
    {
        int peerMss = h.Options.Mss != 0 ? h.Options.Mss : 536;
        uint idx = 0;
        for (uint i = 0; i < CookieMss.Length; i++) if (CookieMss[(int)i] <= peerMss) idx = i;
        uint epoch = CookieEpoch(now);
        SeqNum irs = h.Seq;
        uint cookie = (epoch << 27) | (idx << 24) | CookieHash(dst, src, h.DstPort, h.SrcPort, irs, epoch, idx);
        var r = new TcpRepr
        {
            SrcPort = h.DstPort, DstPort = h.SrcPort, Seq = new SeqNum(cookie), Ack = irs + 1,
            Flags = TcpFlags.Syn | TcpFlags.Ack, Window = (ushort)Math.Min(l.RcvBufSize, 65535), Options = TcpOptions.None,
        };
        int mtuMss = Math.Max(_output.PathMtu(src) - 40, MinimumMss);
        r.Options.Mss = (ushort)(l.UserMss != 0 ? Math.Min(l.UserMss, mtuMss) : mtuMss);
        if (h.Options.HasTimestamp)
        {
            // Without state, the peer's window scale and SACK permission ride in our TSval's low bits.
            uint ws = h.Options.HasWindowScale ? Math.Min(h.Options.WindowScale, (byte)14) : 15u;
            uint tsOffset = (uint)_tsHash.Hash(dst.Value, src.Value, h.DstPort, h.SrcPort);
            uint tsNow = (uint)now.Milliseconds + tsOffset - 64;
            r.Options.HasTimestamp = true;
            r.Options.TsVal = (tsNow & ~0x3Fu) | (h.Options.SackPermitted ? 0x10u : 0) | ws;
            r.Options.TsEcr = h.Options.TsVal;
            if (h.Options.HasWindowScale) r.Options.WindowScale = WindowScaleFor(l.RcvBufSize);
            r.Options.SackPermitted = h.Options.SackPermitted && SackEnabled;
        }
        Counters.SynCookiesSent++;
        Emit(dst, src, r, default, default, l.Tos);
    }

    private bool TryCookie(Tcb l, Ipv4Address src, Ipv4Address dst, in TcpRepr h, ReadOnlySpan<byte> payload, Instant now)
    {
        if (Counters.SynCookiesSent == 0) return false;
        uint cookie = (h.Ack - 1).Value;
        uint epoch = cookie >> 27, idx = (cookie >> 24) & 7;
        uint cur = CookieEpoch(now);
        if (((cur - epoch) & 31) > 1) { Counters.SynCookiesFailed++; return false; }
        SeqNum irs = h.Seq - 1;
        if ((cookie & 0xFFFFFF) != CookieHash(dst, src, h.DstPort, h.SrcPort, irs, epoch, idx)) { Counters.SynCookiesFailed++; return false; }
        if (l.AcceptCount >= l.Backlog) { Counters.ListenOverflows++; return true; }
        var c = AllocTcb();
        if (c is null) return true;
        InheritOptions(l, c);
        c.LocalAddress = dst; c.LocalPort = h.DstPort; c.RemoteAddress = src; c.RemotePort = h.SrcPort; c.Bound = true;
        if (!_flows.Add(dst, h.DstPort, src, h.SrcPort, c.Index)) { Free(c); return true; }
        c.InFlowTable = true;
        InitConnection(c);
        var syn = new TcpRepr { Options = TcpOptions.None };
        syn.Options.Mss = CookieMss[(int)idx];
        if (h.Options.HasTimestamp)
        {
            uint bits = h.Options.TsEcr & 0x3F;
            uint ws = bits & 0xF;
            if (ws != 15) syn.Options.WindowScale = (byte)ws;
            syn.Options.SackPermitted = (bits & 0x10) != 0;
            syn.Options.HasTimestamp = true;
            syn.Options.TsVal = h.Options.TsVal;
        }
        else c.RcvWscale = 0;
        NegotiateSynOptions(c, syn);
        if (!c.WscaleOk) c.RcvWscale = 0;
        c.Irs = irs;
        c.RcvNxt = h.Seq;
        c.RcvAdv = c.RcvNxt + (uint)Math.Min(c.RcvBufSize, 65535);
        c.Iss = h.Ack - 1;
        c.SndUna = c.SndNxt = c.SndMax = h.Ack;
        c.RecoveryPoint = c.HighRxt = h.Ack;
        c.SndWnd = (uint)h.Window << c.SndWscale;
        c.MaxSndWnd = c.SndWnd;
        c.SndWl1 = h.Seq; c.SndWl2 = h.Ack;
        c.State = TcpState.Established;
        c.MarkEstablished(now);
        c.Parent = l.Index;
        c.InAcceptQueue = true;
        l.AcceptQueue[(l.AcceptHead + l.AcceptCount) % l.AcceptQueue.Length] = c.Index;
        l.AcceptCount++;
        l.ReadEvents++;
        Counters.SynCookiesAccepted++;
        Counters.PassiveOpens++;
        Counters.Established++;
        c.EverConnected = true;
        ArmKeepalive(c);
        if (!payload.IsEmpty || h.Has(TcpFlags.Fin)) Segment(c, h, payload, now);
        if (c.InUse) { Output(c); Touch(c); }
        return true;
    }

    // ------------------------------------------------------------------ connection segments

    /// <summary>
    /// Header prediction (Van Jacobson's fast path, as BSD's tcp_input and Linux's tcp_rcv_established
    /// do it): in ESTABLISHED with nothing unusual going on (no recovery, no SACK scoreboard, no
    /// out-of-order queue, no FIN queued), a segment with only ACK (and PSH) set, exactly at RCV.NXT, that
    /// passes PAWS, carries no SACK blocks and acknowledges within [SND.UNA, SND.MAX] is either a pure ACK
    /// of new data or in-order data. Such a segment passes every check of RFC 9293 §3.10.7.4 and every
    /// branch of <see cref="ProcessAck"/> and <see cref="CongestionOnAck"/> but the ones taken below, so
    /// they are skipped; what it does to the TCB is what <see cref="Segment"/> would do.
    /// False (nothing changed): the segment takes the full path.
    /// </summary>
    private bool FastPath(Tcb t, in TcpRepr h, ReadOnlySpan<byte> payload, Instant now)
    {
        ref readonly var opt = ref h.Options;
        SeqNum ack = h.Ack;
        int acked = ack - t.SndUna;
        if (t.State != TcpState.Established
            || (h.Flags & ~TcpFlags.Psh) != TcpFlags.Ack // no SYN, FIN, RST, URG, ECE, CWR
            || h.Seq != t.RcvNxt
            || opt.SackCount != 0
            || acked < 0 || ack > t.SndMax
            || t.InRecovery || t.DupAcks != 0 || t.SackCount != 0 || t.SackedBytes != 0 || t.OooCount != 0 || t.FinQueued)
            return false;
        if (t.TsOk && (!opt.HasTimestamp || unchecked((int)(opt.TsVal - t.TsRecent)) < 0)) return false; // PAWS: full path
        if (payload.IsEmpty)
        {
            if (acked == 0) return false; // a duplicate ACK or a window update: full path
        }
        else if (t.RcvAdv - t.RcvNxt <= 0 || (!t.UserOwned && !t.InAcceptQueue && t.Parent < 0))
            return false; // zero window, or data for an orphan: full path

        t.PersistUnanswered = 0;
        if (t.TsOk)
        {
            t.TsRecent = opt.TsVal; // RFC 7323 §4.3: SEG.SEQ = RCV.NXT
            t.TsRecentAgeMs = now.Milliseconds;
        }
        t.LastReceived = now;
        if (t.KeepAlive) { t.KeepaliveProbesSent = 0; ArmKeepalive(t); }
        // RFC 9293 §3.10.7.4: window update only from newer segments (SND.WL1/SND.WL2).
        if (t.SndWl1 < h.Seq || (t.SndWl1 == h.Seq && t.SndWl2 <= ack))
        {
            uint window = (uint)h.Window << t.SndWscale;
            t.SndWnd = window;
            t.SndWl1 = h.Seq;
            t.SndWl2 = ack;
            if (window > t.MaxSndWnd) t.MaxSndWnd = window;
        }
        if (acked > 0)
        {
            AcceptAck(t, ack, acked, now);
            t.DupAcks = 0;
            GrowWindow(t, acked, now);
            t.AckRttMicros = -1; // consumed by HyStart++ in GrowWindow, as after CongestionOnAck
        }
        if (!payload.IsEmpty) ReceiveData(t, h.Seq, payload, now);
        return true;
    }

    /// <summary>
    /// A duplicate ACK that a reordering path delivered after a later one, so its TSval is older than
    /// TS.Recent. PAWS guards against old duplicate data (RFC 7323 §5); such an ACK carries none and only
    /// repeats SND.UNA (with SACK blocks the sender needs), so it is accepted as Linux accepts it
    /// (tcp_disordered_ack): pure ACK, at RCV.NXT, acknowledging exactly SND.UNA, not changing the window,
    /// and at most one RTO older than TS.Recent (timestamp ticks taken as 1 ms, RFC 7323 §5.4).
    /// Without this, 25% reordering had a tenth of the peer's ACKs dropped (and each answered).
    /// </summary>
    private static bool IsDisorderedAck(Tcb t, in TcpRepr h, int payloadLength)
    {
        if ((h.Flags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst | TcpFlags.Ack)) != TcpFlags.Ack || payloadLength != 0) return false;
        if (h.Seq != t.RcvNxt || h.Ack != t.SndUna) return false;
        if (((uint)h.Window << t.SndWscale) != t.SndWnd) return false;
        return unchecked((int)(t.TsRecent - h.Options.TsVal)) <= Math.Max(t.RtoMicros / 1000, 1);
    }

    private void Segment(Tcb t, in TcpRepr h, ReadOnlySpan<byte> payload, Instant now)
    {
        if (t.State == TcpState.SynSent) { SynSentInput(t, h, payload, now); return; }
        if (t.State is TcpState.Closed or TcpState.Listen)
        {
            // A closed connection still in the table (reset, waiting for close()): answer as if absent.
            Counters.NoSocket++;
            ReplyReset(t.LocalAddress, t.RemoteAddress, h, payload.Length);
            return;
        }
        var f = h.Flags;
        int segLen = h.SegmentLength(payload.Length);
        ref readonly var opt = ref h.Options;
        if (t.State == TcpState.SynReceived && (f & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) == (TcpFlags.Syn | TcpFlags.Ack)
            && h.Seq == t.Irs && h.Ack == t.Iss + 1)
        {
            // Simultaneous open (RFC 9293 figure 8): the peer's SYN-ACK acknowledges our SYN.
            if (CompleteHandshake(t, h, now)) t.AckNow = true;
            return;
        }

        // RFC 7323 §5.3: PAWS.
        if (t.TsOk && opt.HasTimestamp && (f & TcpFlags.Rst) == 0 && unchecked((int)(opt.TsVal - t.TsRecent)) < 0
            && now.Milliseconds - t.TsRecentAgeMs < 24L * 24 * 3600 * 1000 && !IsDisorderedAck(t, h, payload.Length))
        {
            Counters.PawsRejected++;
            t.AckNow = true;
            return;
        }

        // RFC 9293 §3.10.7.4 first check: sequence number acceptability.
        int wnd = Math.Max(0, t.RcvAdv - t.RcvNxt);
        SeqNum seq = h.Seq;
        bool acceptable;
        if (segLen == 0)
            acceptable = wnd == 0 ? seq == t.RcvNxt : seq.InRange(t.RcvNxt, t.RcvNxt + wnd) || seq == t.RcvNxt + wnd;
        else if (wnd == 0)
            acceptable = false;
        else
            acceptable = seq.InRange(t.RcvNxt, t.RcvNxt + wnd) || (seq + (segLen - 1)).InRange(t.RcvNxt, t.RcvNxt + wnd);
        bool zeroWindowProbe = false;
        if (!acceptable)
        {
            if (wnd == 0 && seq == t.RcvNxt && (f & TcpFlags.Ack) != 0 && (f & TcpFlags.Syn) == 0)
            {
                // Zero window: still take its ACK, window and RST (RFC 9293 §3.10.7.4 note), drop the text.
                zeroWindowProbe = true;
            }
            else
            {
                if ((f & TcpFlags.Rst) != 0) { Counters.RstOutOfWindow++; return; }
                if ((f & TcpFlags.Syn) != 0 && t.State != TcpState.SynReceived) { ChallengeAck(t); Counters.SynChallenged++; return; }
                Counters.OutOfWindow++;
                if (t.State == TcpState.TimeWait && (f & TcpFlags.Fin) != 0)
                    RestartTimeWait(t, now); // §3.10.7.4: restart 2MSL
                if (payload.Length > 0 && seq < t.RcvNxt)
                {
                    Counters.DuplicateSegments++;
                    SeqNum end = seq + payload.Length;
                    SetDsack(t, seq, end < t.RcvNxt ? end : t.RcvNxt);
                }
                t.AckNow = true;
                return;
            }
        }

        // Second check: RST (RFC 5961 §3.2).
        if ((f & TcpFlags.Rst) != 0)
        {
            if (seq == t.RcvNxt)
            {
                Counters.ResetsReceived++;
                if (t.State == TcpState.TimeWait) Counters.ResetsInTimeWait++;
                if (t.State == TcpState.SynReceived && t.Parent >= 0) { Abort(t, Errno.ECONNREFUSED, sendRst: false); return; }
                Errno e = t.State switch
                {
                    TcpState.SynReceived => Errno.ECONNREFUSED,
                    TcpState.CloseWait => Errno.EPIPE,
                    TcpState.TimeWait or TcpState.Closing or TcpState.LastAck => Errno.Ok,
                    _ => Errno.ECONNRESET,
                };
                Abort(t, e, sendRst: false);
                return;
            }
            Counters.RstChallenged++;
            ChallengeAck(t);
            return;
        }

        // Fourth check: SYN in a synchronized state (RFC 5961 §4.2).
        if ((f & TcpFlags.Syn) != 0)
        {
            if (t.State == TcpState.SynReceived && seq == t.Irs)
            {
                t.AckNow = true; // retransmitted SYN: repeat the SYN-ACK
                return;
            }
            Counters.SynChallenged++;
            ChallengeAck(t);
            return;
        }

        // Fifth check: ACK.
        if ((f & TcpFlags.Ack) == 0) { Counters.NoAckFlag++; return; }
        SeqNum ack = h.Ack;
        if (t.State == TcpState.SynReceived)
        {
            if (!(ack > t.SndUna && ack <= t.SndMax))
            {
                Counters.BadSynAck++;
                ReplyReset(t.LocalAddress, t.RemoteAddress, h, payload.Length);
                return;
            }
            if (!CompleteHandshake(t, h, now)) return;
        }
        if (ack > t.SndMax) { Counters.AckTooNew++; t.AckNow = true; return; }
        if (ack < t.SndUna - (int)Math.Max(t.MaxSndWnd, 1)) { Counters.AckTooOld++; ChallengeAck(t); return; }

        // RFC 7323 §4.3: TS.Recent from segments covering RCV.NXT.
        if (t.TsOk && opt.HasTimestamp && seq <= t.RcvNxt && unchecked((int)(opt.TsVal - t.TsRecent)) >= 0)
        {
            t.TsRecent = opt.TsVal;
            t.TsRecentAgeMs = now.Milliseconds;
        }
        t.LastReceived = now;
        if (t.KeepAlive) { t.KeepaliveProbesSent = 0; ArmKeepalive(t); }

        ProcessAck(t, h, payload.Length, now);
        if (!t.InUse) return;

        // Sixth/seventh: text.
        if (!payload.IsEmpty && !zeroWindowProbe)
        {
            if (t.State is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)
            {
                if (!t.UserOwned && !t.InAcceptQueue && t.Parent < 0)
                {
                    // Linux: data for an orphaned socket that can no longer be read aborts it with RST.
                    Counters.DataAfterClose++;
                    Abort(t, Errno.ECONNRESET, sendRst: true);
                    return;
                }
                if ((f & TcpFlags.Urg) != 0) UrgentInput(t, h);
                if (t.Urg == UrgentState.NotYet) CaptureUrgentByte(t, seq, payload);
                ReceiveData(t, seq, payload, now);
            }
            else if (seq + payload.Length > t.RcvNxt) Counters.DataAfterClose++;
        }
        else if (zeroWindowProbe && !payload.IsEmpty) t.AckNow = true;
        else if ((f & TcpFlags.Urg) != 0 && t.State is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)
            UrgentInput(t, h); // an urgent pointer may run ahead of its data (on an ACK or a window probe)

        // Eighth: FIN.
        if ((f & TcpFlags.Fin) != 0 && !zeroWindowProbe)
        {
            SeqNum finSeq = seq + payload.Length;
            if (finSeq == t.RcvNxt) ProcessFin(t, now);
            else if (finSeq > t.RcvNxt) { t.OooFinValid = true; t.OooFinSeq = finSeq; t.AckNow = true; }
            else t.AckNow = true;
        }
    }

    /// <summary>
    /// A segment with URG (RFC 9293 §3.8.5): Linux's default reading (RFC 6093 §2: every stack uses the BSD
    /// one) takes the pointer as one past the last urgent byte, and keeps that one byte out of band. A pointer
    /// at or behind what was read or received, or not beyond the current mark, changes nothing; a newer one
    /// discards an unread urgent byte waiting at the read position (tcp_check_urg).
    /// </summary>
    private void UrgentInput(Tcb t, in TcpRepr h)
    {
        SeqNum urgSeq = h.Seq + (h.UrgentPointer != 0 ? h.UrgentPointer - 1 : 0);
        int offset = (urgSeq - t.RcvNxt) + t.RcvReadable; // from the read position
        if (offset < 0 || urgSeq < t.RcvNxt) { Counters.UrgentIgnored++; return; }
        if (t.Urg != UrgentState.None && urgSeq <= t.UrgSeq) return; // the same mark again
        if (t.UrgentByteFirst && t.RcvReadable > 0)
        {
            t.ConsumeReceive(1);
            offset--;
        }
        Counters.UrgentReceived++;
        t.Urg = UrgentState.NotYet;
        t.UrgSeq = urgSeq;
        t.UrgOffset = offset;
    }

    /// <summary>Keeps a copy of the urgent byte from the segment that carries it (Linux tcp_urg).</summary>
    private static void CaptureUrgentByte(Tcb t, SeqNum seq, ReadOnlySpan<byte> payload)
    {
        int at = t.UrgSeq - seq;
        if (at < 0 || at >= payload.Length) return;
        t.UrgByte = payload[at];
        t.Urg = UrgentState.Valid;
        t.ReadEvents++; // EPOLLPRI is an arrival too (Linux tcp_urg wakes the reader)
    }

    /// <summary>SYN-RECEIVED → ESTABLISHED on an acceptable ACK (RFC 9293 §3.10.7.4 fifth check).</summary>
    private bool CompleteHandshake(Tcb t, in TcpRepr h, Instant now)
    {
        if (t.Parent >= 0)
        {
            var l = _tcbs[t.Parent];
            if (l.AcceptCount >= l.Backlog) { Counters.ListenOverflows++; return false; } // retried on SYN-ACK rexmit
            l.SynQueueCount--;
            t.InAcceptQueue = true;
            l.AcceptQueue[(l.AcceptHead + l.AcceptCount) % l.AcceptQueue.Length] = t.Index;
            l.AcceptCount++;
            l.ReadEvents++;
        }
        t.State = TcpState.Established;
        Counters.Established++;
        t.EverConnected = true;
        t.WakeAll(); // a simultaneous open's connect() completed
        t.MarkEstablished(now);
        t.SndUna = t.Iss + 1;
        t.Retransmits = 0;
        t.Backoff = 0;
        t.SndWnd = (uint)h.Window << t.SndWscale;
        t.MaxSndWnd = t.SndWnd;
        t.SndWl1 = h.Seq; t.SndWl2 = h.Ack;
        if (t.TotalRetrans == 0) SampleRtt(t, now - t.RttStart, now);
        t.RttTiming = false;
        t.RtoDeadline = Instant.Never;
        ArmKeepalive(t);
        return true;
    }

    /// <summary>RFC 2883: report a duplicate range as the first SACK block of the next ACK.</summary>
    private static void SetDsack(Tcb t, SeqNum left, SeqNum right)
    {
        if (!t.SackOk || !(left < right)) return;
        t.DsackPending = true;
        t.DsackLeft = left;
        t.DsackRight = right;
    }

    private void ChallengeAck(Tcb t)
    {
        Counters.ChallengeAcks++;
        t.AckNow = true;
    }

    private void SynSentInput(Tcb t, in TcpRepr h, ReadOnlySpan<byte> payload, Instant now)
    {
        var f = h.Flags;
        bool ackOk = false;
        if ((f & TcpFlags.Ack) != 0)
        {
            if (h.Ack <= t.Iss || h.Ack > t.SndMax)
            {
                Counters.BadSynAck++;
                ReplyReset(t.LocalAddress, t.RemoteAddress, h, payload.Length);
                return;
            }
            ackOk = true;
        }
        if ((f & TcpFlags.Rst) != 0)
        {
            // RFC 5961 §3.2 / RFC 9293 §3.10.7.3: a RST is valid only if it acknowledges our SYN.
            if (ackOk)
            {
                Counters.ResetsReceived++;
                Abort(t, Errno.ECONNREFUSED, sendRst: false);
            }
            else Counters.RstOutOfWindow++;
            return;
        }
        if ((f & TcpFlags.Syn) == 0) { Counters.BadSegments++; return; }
        t.Irs = h.Seq;
        t.RcvNxt = h.Seq + 1;
        t.RcvAdv = t.RcvNxt;
        t.LastAckSent = t.Irs; // nothing of the peer's acknowledged yet (an owed ACK is judged by it)
        NegotiateSynOptions(t, h);
        t.LastReceived = now;
        if (ackOk)
        {
            t.SndUna = h.Ack;
            if (t.SndNxt < t.SndUna) t.SndNxt = t.SndUna;
            t.SndWnd = (uint)h.Window << t.SndWscale;
            t.MaxSndWnd = t.SndWnd;
            t.SndWl1 = h.Seq; t.SndWl2 = h.Ack;
            if (t.Retransmits == 0) SampleRtt(t, now - t.RttStart, now);
            t.RttTiming = false;
            t.Retransmits = 0;
            t.Backoff = 0;
            t.RtoDeadline = Instant.Never;
            t.State = TcpState.Established;
            Counters.Established++;
            t.EverConnected = true;
            t.WakeAll(); // connect() completed
            t.MarkEstablished(now);
            ArmKeepalive(t);
            // With DeferHandshakeAck the handshake's last ACK waits for the program's first segment (AckSoon);
            // otherwise, and when data or a FIN came with the SYN-ACK, it goes at once.
            if (DeferHandshakeAck && payload.IsEmpty && (f & TcpFlags.Fin) == 0) AckSoon(t);
            else t.AckNow = true;
            if (!payload.IsEmpty) ReceiveData(t, h.Seq + 1, payload, now);
            if ((f & TcpFlags.Fin) != 0 && h.Seq + 1 + payload.Length == t.RcvNxt) ProcessFin(t, now);
        }
        else
        {
            // Simultaneous open (RFC 9293 §3.5 figure 8): SYN-RECEIVED, SYN-ACK with our ISS.
            t.State = TcpState.SynReceived;
            t.SndWnd = h.Window;
            t.SndWl1 = h.Seq;
            t.SndNxt = t.Iss;
            t.Retransmits = 0;
            SendSyn(t);
        }
    }

    private void ProcessFin(Tcb t, Instant now)
    {
        t.RcvNxt += 1;
        t.FinReceived = true;
        t.WakeAll();
        t.OooFinValid = false;
        switch (t.State)
        {
            case TcpState.SynReceived:
            case TcpState.Established:
                t.State = TcpState.CloseWait;
                AckSoon(t); // the program's close (its FIN) usually follows and carries it
                return;
            case TcpState.FinWait1:
                if (t.FinSent && t.SndUna > t.FinSeq) EnterTimeWait(t, now);
                else t.State = TcpState.Closing;
                break;
            case TcpState.FinWait2:
                EnterTimeWait(t, now);
                break;
            case TcpState.TimeWait:
                RestartTimeWait(t, now);
                break;
        }
        t.AckNow = true;
    }

    private void EnterTimeWait(Tcb t, Instant now)
    {
        t.State = TcpState.TimeWait;
        t.RtoDeadline = t.PersistDeadline = t.KeepaliveDeadline = t.DelAckDeadline = t.PtoDeadline = Instant.Never;
        RestartTimeWait(t, now);
    }

    /// <summary>The 2MSL wait starts (again): the connection goes to the tail of the recycling order.</summary>
    private void RestartTimeWait(Tcb t, Instant now)
    {
        t.StateDeadline = now + new TimeSpanMicros(_config.TimeWaitMicros);
        _timeWait.Add(t, _tcbs);
    }

    private void ProcessAck(Tcb t, in TcpRepr h, int payloadLength, Instant now)
    {
        SeqNum ack = h.Ack;
        t.PersistUnanswered = 0;
        uint window = (uint)h.Window << t.SndWscale;
        bool windowChanged = false;
        // RFC 9293 §3.10.7.4: window update only from newer segments (SND.WL1/SND.WL2).
        if (t.SndWl1 < h.Seq || (t.SndWl1 == h.Seq && t.SndWl2 <= ack))
        {
            windowChanged = window != t.SndWnd;
            t.SndWnd = window;
            t.SndWl1 = h.Seq;
            t.SndWl2 = ack;
            if (window > t.MaxSndWnd) t.MaxSndWnd = window;
        }
        int acked = ack - t.SndUna;
        bool dupAck = false;
        if (acked > 0) AcceptAck(t, ack, acked, now);
        else if (acked == 0 && payloadLength == 0 && (h.Flags & (TcpFlags.Syn | TcpFlags.Fin)) == 0
                 && !windowChanged && t.SndUna != t.SndMax)
        {
            dupAck = true; // RFC 5681 §2 "duplicate acknowledgment"
            Counters.DuplicateAcks++;
        }
        bool sackAdvanced = false, dsack = false;
        if (t.SackOk && h.Options.SackCount > 0) sackAdvanced = UpdateScoreboard(t, h, now, out dsack);
        if (t.SackOk) RackAfterAck(t, dsack, now);
        if (t.State is not (TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.Closing or TcpState.LastAck))
        {
            if (t.State == TcpState.FinWait2 || t.State == TcpState.TimeWait) return;
        }
        CongestionOnAck(t, acked, dupAck || (sackAdvanced && acked <= 0 && t.SndUna != t.SndMax), h, now);
        t.AckRttMicros = -1;

        // Our FIN acknowledged?
        if (t.FinQueued && t.FinSent && t.SndUna > t.FinSeq)
        {
            switch (t.State)
            {
                case TcpState.FinWait1:
                    t.State = TcpState.FinWait2;
                    t.WakeAll();
                    t.RtoDeadline = Instant.Never;
                    if (!t.UserOwned) t.StateDeadline = now + new TimeSpanMicros(FinWait2Micros);
                    break;
                case TcpState.Closing:
                    EnterTimeWait(t, now);
                    t.WakeAll();
                    break;
                case TcpState.LastAck:
                    t.State = TcpState.Closed;
                    t.WakeAll();
                    t.RtoDeadline = Instant.Never;
                    if (!t.UserOwned && !t.InAcceptQueue) Free(t);
                    else if (t.InFlowTable) { _flows.Remove(t.LocalAddress, t.LocalPort, t.RemoteAddress, t.RemotePort); t.InFlowTable = false; }
                    break;
            }
        }
    }

    /// <summary>An ACK of new data (SND.UNA &lt; ack ≤ SND.MAX): frees the acknowledged bytes, takes an RTT
    /// sample, restarts the retransmission timer (RFC 6298 §5.3) and the tail loss probe.</summary>
    private void AcceptAck(Tcb t, SeqNum ack, int acked, Instant now)
    {
        t.LastAckRecv = now;
        if (t.SndUrgent && ack >= t.SndUp) t.SndUrgent = false; // urgent data acknowledged: urgent mode ends
        int dataAcked = Math.Min(acked, t.SndCount);
        t.ConsumeSend(dataAcked);
        if (t.SendSpaceWanted && t.SendSpaceReady)
        {
            t.SendSpaceWanted = false;
            t.WriteEvents++; // Linux tcp_check_space → sk_stream_write_space
        }
        t.BytesAcked += dataAcked;
        if (t.SegCount > 0) RackOnCumulativeAck(t, ack, now);
        t.SndUna = ack;
        if (t.SndNxt < ack) t.SndNxt = ack;
        if (t.HighRxt < ack) t.HighRxt = ack;
        // RTT (RFC 6298 §3, Karn): only from a segment timed and not retransmitted.
        if (t.RttTiming && ack > t.RttSeq)
        {
            SampleRtt(t, now - t.RttStart, now);
            t.RttTiming = false;
        }
        if (t.Retransmits > 0 && t.TotalRtoRecoveries > 0) t.TotalRtoMicros += (now - t.RtoRecoveryStart).Value; // RTO recovery over
        t.Retransmits = 0;
        t.Backoff = 0;
        t.PersistBackoff = 0;
        t.AckRttMicros = t.TakeRttSample(ack, now);
        t.RtoDeadline = t.SndUna == t.SndMax ? Instant.Never : now + new TimeSpanMicros(t.RtoMicros); // §5.3
        t.TlpOutstanding = false;
        ArmTlp(t);
        if (t.SackCount > 0) t.SackedBytes -= IntervalList.TrimBelow(t.SackLeft, t.SackRight, ref t.SackCount, ack);
        if (t.SackCount == 0 && !t.InRecovery && t.RecLostBytes == 0) t.RackDeadline = Instant.Never; // nothing left to wait for
    }

    private bool UpdateScoreboard(Tcb t, in TcpRepr h, Instant now, out bool dsack)
    {
        bool advanced = false;
        dsack = false;
        int n = Math.Min((int)h.Options.SackCount, SackBlockArray.MaxBlocks);
        for (int i = 0; i < n; i++)
        {
            var b = h.Options.Sack[i];
            // RFC 2883 §4: a first block below this segment's ACK, or inside its second block, reports a
            // duplicate (below SND.UNA only is not enough: a reordered older ACK carries stale blocks).
            if (i == 0 && b.Left < b.Right && (b.Right <= h.Ack
                || (n > 1 && h.Options.Sack[1].Left <= b.Left && b.Right <= h.Options.Sack[1].Right)))
            {
                t.DsackDups++;
                dsack = true;
                DsackUndo(t, b.Left, b.Right);
                if (b.Right <= t.SndUna) continue;
            }
            else if (b.Right <= t.SndUna) continue; // a stale block of a reordered ACK
            if (!(b.Left < b.Right) || b.Right > t.SndMax || b.Right <= t.SndUna)
            {
                if (!(b.Right <= t.SndUna)) Counters.SackBlocksInvalid++; // below SND.UNA is a D-SACK: harmless
                continue;
            }
            SeqNum l = SeqNum.Max(b.Left, t.SndUna);
            int before = t.SackedBytes;
            IntervalList.Add(t.SackLeft, t.SackRight, ref t.SackCount, l, b.Right);
            t.SackedBytes = IntervalList.TotalBytes(t.SackLeft, t.SackRight, t.SackCount);
            if (t.SackedBytes != before) advanced = true;
            if (t.SegCount > 0 && RackOnSack(t, l, b.Right, now)) advanced = true;
        }
        return advanced;
    }

    /// <summary>Keeps in-order payload in the frame it came in (recv copies it from there: one copy instead of
    /// two, <see cref="HeldFrames"/>) when the payload fills at least half its buffer (a small one is cheaper
    /// to copy than to hold a whole buffer for) and lies inside the frame being input.</summary>
    private unsafe bool TryHoldPayload(Tcb t, ReadOnlySpan<byte> payload)
    {
        var frame = _inputFrame;
        if (frame is null || _inputFrameHeld || 2 * payload.Length < frame.Capacity) return false;
        fixed (byte* p = payload)
        {
            long start = p - frame.DataPointer;
            if (start < 0 || start + payload.Length > frame.Length) return false;
            if (!t.TryHold(frame, (int)start, payload.Length))
            {
                Counters.HoldRefused++;
                return false;
            }
        }
        _inputFrameHeld = true;
        Counters.FramesHeld++;
        return true;
    }

    private void ReceiveData(Tcb t, SeqNum seq, ReadOnlySpan<byte> payload, Instant now)
    {
        t.DataSegsIn++;
        t.LastDataRecv = now;
        if (payload.Length > t.RcvMss) t.RcvMss = Math.Min(payload.Length, Math.Max(t.AdvMss, 536));
        // Trim what we already have (RFC 9293 §3.10.7.4: "trim to the window").
        int skip = t.RcvNxt - seq;
        if (skip > 0)
        {
            if (skip >= payload.Length)
            {
                Counters.DuplicateSegments++;
                SetDsack(t, seq, seq + payload.Length);
                t.AckNow = true;
                return;
            }
            SetDsack(t, seq, t.RcvNxt);
            payload = payload[skip..];
            seq = t.RcvNxt;
        }
        int offset = seq - t.RcvNxt;
        int room = t.RcvRoom - offset;
        if (room <= 0) { Counters.BytesTrimmed += payload.Length; t.AckNow = true; return; }
        if (payload.Length > room) { Counters.BytesTrimmed += payload.Length - room; payload = payload[..room]; }

        if (offset == 0)
        {
            if (!TryHoldPayload(t, payload)) t.WriteReceive(0, payload);
            int advance = payload.Length;
            SeqNum newNxt = t.RcvNxt + advance;
            bool hadOoo = t.OooCount > 0;
            if (hadOoo)
            {
                // Merge queued intervals that are now contiguous.
                IntervalList.TrimBelow(t.OooLeft, t.OooRight, ref t.OooCount, newNxt);
                while (t.OooCount > 0 && t.OooLeft[0] <= newNxt)
                {
                    newNxt = SeqNum.Max(newNxt, t.OooRight[0]);
                    IntervalList.TrimBelow(t.OooLeft, t.OooRight, ref t.OooCount, t.OooRight[0]);
                }
                t.OooLastIdx = -1;
                advance = newNxt - t.RcvNxt;
            }
            t.RcvReadable += advance;
            t.ReadEvents++; // in-order data arrived (out-of-order data wakes nobody, as in Linux)
            t.RcvNxt = newNxt;
            t.BytesReceived += advance;
            Counters.BytesReceived += advance;
            if (hadOoo) t.AckNow = true; // RFC 5681 §4.2: ACK at once when a gap fills
            else if (t.RcvNxt - t.LastAckSent >= 2 * t.RcvMss) t.AckNow = true; // every second full segment
            else if (t.QuickAcksLeft > 0)
            {
                // RFC 1122 §4.2.3.2 lets a receiver ACK sooner than the delay; like Linux, the first data
                // segments are ACKed at once, so a Nagle-held second write is not stalled 40 ms.
                t.QuickAcksLeft--;
                AckSoon(t); // at the end of the next poll at the latest: a reply sent meanwhile carries it
            }
            else if (t.DelAckDeadline == Instant.Never) t.DelAckDeadline = now + new TimeSpanMicros(DelayedAckMicros);
            if (t.OooFinValid && t.OooFinSeq == t.RcvNxt) ProcessFin(t, now);
        }
        else
        {
            // Out of order: store at its offset in the ring, remember the interval (RFC 5681 §4.2: ACK at once).
            SeqNum end = seq + payload.Length;
            for (int k = 0; k < t.OooCount; k++)
                if (seq >= t.OooLeft[k] && end <= t.OooRight[k]) { SetDsack(t, seq, end); break; } // already queued
            int saved = t.OooCount;
            int i = IntervalList.Add(t.OooLeft, t.OooRight, ref t.OooCount, seq, end);
            if (i < 0) { Counters.OutOfOrderDropped++; t.AckNow = true; return; }
            t.WriteReceive(offset, payload);
            t.OooLastIdx = i;
            Counters.OutOfOrderQueued++;
            t.OooPackets++;
            t.AckNow = true;
            _ = saved;
        }
    }
}

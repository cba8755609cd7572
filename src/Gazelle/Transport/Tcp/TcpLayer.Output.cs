using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

public sealed partial class TcpLayer
{
    // ------------------------------------------------------------------ RTT / congestion

    /// <summary>RFC 6298 §2: SRTT/RTTVAR update; RTO = SRTT + max(4·RTTVAR, 200 ms) as Linux does.</summary>
    private static void SampleRtt(Tcb t, TimeSpanMicros sample, Instant now)
    {
        long r = Math.Max(sample.Value, 1);
        if (t.SrttMicros == 0)
        {
            t.SrttMicros = r;
            t.RttvarMicros = r / 2;
        }
        else
        {
            t.RttvarMicros = (3 * t.RttvarMicros + Math.Abs(t.SrttMicros - r)) / 4;
            t.SrttMicros = (7 * t.SrttMicros + r) / 8;
        }
        if (t.MinRttMicros == 0 || r < t.MinRttMicros) t.MinRttMicros = r;
        t.RtoMicros = Math.Clamp(t.SrttMicros + Math.Max(4 * t.RttvarMicros, MinRtoMicros), MinRtoMicros, MaxRtoMicros);
    }

    /// <summary>Grow cwnd only while it limits the sender (RFC 7661 §4.2 / Linux tcp_is_cwnd_limited),
    /// so an application- or rwnd-limited flow does not inflate it without bound.</summary>
    private static void GrowWindow(Tcb t, int acked, Instant now)
    {
        if (t.Cwnd >= MaxCwndBytes || t.FlightSize + acked < t.Cwnd / 2) return;
        t.Cc.OnAck(t, acked, now);
        if (t.Cwnd > MaxCwndBytes) t.Cwnd = MaxCwndBytes;
    }

    private const int MaxCwndBytes = 1 << 30;

    private void BeginUndoWindow(Tcb t)
    {
        t.PriorCwnd = t.Cwnd;
        t.PriorSsthresh = t.Ssthresh;
        t.RecoveryTsVal = TsNow(t);
        t.RecoveryStartRetrans = t.TotalRetrans;
        t.UndoEligible = t.TsOk;
    }

    private void CongestionOnAck(Tcb t, int acked, bool dupAck, in TcpRepr h, Instant now)
    {
        int mss = t.EffectiveMss;
        if (t.InRecovery && acked > 0 && t.UndoEligible)
        {
            // RFC 3522: the first ACK after the retransmission echoes a timestamp older than it, so the
            // original arrived; with a single retransmission nothing was lost: restore the window (RFC 4015).
            t.UndoEligible = false;
            if (h.Options.HasTimestamp && unchecked((int)(h.Options.TsEcr - t.RecoveryTsVal)) < 0
                && t.TotalRetrans - t.RecoveryStartRetrans == 1 && t.RecLostBytes == 0)
            {
                Counters.SpuriousRecoveriesUndone++;
                t.ReordSeen++;
                t.Cwnd = Math.Max(t.Cwnd, t.PriorCwnd);
                t.Ssthresh = t.PriorSsthresh;
                t.InRecovery = false;
                t.DupAcks = 0;
                t.RecoveryPoint = t.SndUna;
                t.UndoValid = false;
                RackRecoveryEnded(t);
                return;
            }
        }
        if (t.SackOk)
        {
            if (t.InRecovery)
            {
                if (t.SndUna >= t.RecoveryPoint)
                {
                    t.InRecovery = false; // RFC 6675 §5: recovery ends when RecoveryPoint is acknowledged
                    if (!t.RecoveryUndone && t.TsOk && h.Options.HasTimestamp && h.Options.TsEcr != 0
                        && unchecked((int)(h.Options.TsEcr - t.RecoveryTsVal)) < 0)
                    {
                        // The ACK that ends the recovery echoes a segment sent before it began (RFC 3522 at the
                        // recovery's end, as Linux's tcp_try_undo_recovery): the last hole was filled by an
                        // original, so the episode was reordering: undo its reduction.
                        Counters.SpuriousRecoveriesUndone++;
                        t.ReordSeen++;
                        t.RecoveryUndone = true;
                        t.UndoValid = false;
                        t.Cwnd = Math.Max(t.Cwnd, t.PriorCwnd);
                        if (t.PriorSsthresh > t.Ssthresh) t.Ssthresh = t.PriorSsthresh;
                    }
                    if (!t.RecoveryUndone) t.Cwnd = Math.Max(t.Ssthresh, 2 * mss);
                    t.DupAcks = 0;
                    RackRecoveryEnded(t);
                }
                return;
            }
            if (acked > 0) { t.DupAcks = 0; GrowWindow(t, acked, now); }
            if (dupAck) t.DupAcks++;
            // RFC 8985 §6.2: RACK (run on this ACK before, RackAfterAck) marked a segment lost; its reordering
            // window replaces the DupThresh rule (RFC 6675 §5 (4)) and early retransmit (RFC 5827).
            if (t.RecLostBytes > 0 && CanStartRecovery(t)) EnterSackRecovery(t, now);
            return;
        }

        // NewReno (RFC 6582).
        if (t.InRecovery)
        {
            if (acked > 0)
            {
                if (t.SndUna >= t.RecoveryPoint)
                {
                    // Full acknowledgment (§3.2 step 3).
                    t.Cwnd = Math.Min(t.Ssthresh, Math.Max(t.FlightSize, mss) + mss);
                    t.InRecovery = false;
                    t.DupAcks = 0;
                }
                else
                {
                    // Partial acknowledgment: retransmit the next hole, deflate (§3.2 step 4).
                    SendData(t, t.SndUna, Math.Min(mss, t.SndMax - t.SndUna), retransmit: true);
                    t.Cwnd = Math.Max(t.Cwnd - acked + (acked >= mss ? mss : 0), mss);
                }
            }
            else if (dupAck) t.Cwnd += mss; // inflate
            return;
        }
        if (acked > 0) { t.DupAcks = 0; GrowWindow(t, acked, now); }
        if (dupAck)
        {
            t.DupAcks++;
            // §3.2 step 2: only when the ACK covers more than "recover" (avoid multiple reductions).
            if (t.DupAcks == 3 && t.SndUna - 1 >= t.RecoveryPoint)
            {
                BeginUndoWindow(t);
                t.Ssthresh = t.Cc.OnCongestionEvent(t, now);
                t.HyStart.Stop();
                t.RecoveryPoint = t.SndMax;
                t.InRecovery = true;
                Counters.FastRetransmits++;
                t.RttTiming = false;
                SendData(t, t.SndUna, Math.Min(mss, t.SndMax - t.SndUna), retransmit: true);
                t.Cwnd = t.Ssthresh + 3 * mss;
            }
        }
    }

    /// <summary>One window reduction per episode (RFC 6675 §5): not before RecoveryPoint is acknowledged, and
    /// not while the go-back-N after an RTO is still resending (it resends what RACK marks anyway).</summary>
    private static bool CanStartRecovery(Tcb t) => t.SndUna != t.SndMax && t.SndUna >= t.RecoveryPoint && t.SndNxt == t.SndMax;

    /// <summary>Enters SACK loss recovery (RFC 6675 §5 (4)): reduce the window once, then retransmit the first
    /// segment RACK marked lost at once, whatever pipe says (§5 (4.3)).</summary>
    private void EnterSackRecovery(Tcb t, Instant now)
    {
        BeginUndoWindow(t);
        t.Ssthresh = t.Cc.OnCongestionEvent(t, now);
        t.HyStart.Stop();
        t.Cwnd = t.Ssthresh;
        t.RecoveryPoint = t.SndMax;
        t.HighRxt = t.SndUna;
        t.InRecovery = true;
        t.RecoveryStart = now;
        t.PtoDeadline = Instant.Never;
        Counters.FastRetransmits++;
        t.RttTiming = false;
        t.UndoValid = true;
        t.RecoveryUndone = false;
        t.UndoRetrans = 0;
        t.UndoLow = t.SndMax;
        t.UndoHigh = t.SndUna;
        if (NextLostRecord(t, out var seq, out int len))
        {
            int sent = SendData(t, seq, len, retransmit: true);
            if (seq + sent > t.HighRxt) t.HighRxt = seq + Math.Max(sent, 1);
        }
    }

    // ------------------------------------------------------------------ output

    /// <summary>Sends what the windows, Nagle and recovery allow, then a pure ACK if one is still owed.</summary>
    private void Output(Tcb t)
    {
        if (!t.InUse) return;
        switch (t.State)
        {
            case TcpState.SynSent:
            case TcpState.Listen:
            case TcpState.Closed:
                return;
            case TcpState.SynReceived:
                if (t.AckNow) SendSyn(t);
                return;
            case TcpState.TimeWait:
            case TcpState.FinWait2:
            case TcpState.CloseWait when t.SndCount == 0 && !t.FinQueued:
                if (t.AckNow) SendAck(t);
                return;
        }
        int mss = t.EffectiveMss;
        if (t.InRecovery && t.SackOk)
        {
            while (t.Cwnd - Pipe(t) >= mss)
            {
                if (NextLostRecord(t, out var s, out int len))
                {
                    int lostBefore = t.RecLostBytes;
                    len = SendData(t, s, len, retransmit: true);
                    if (s + Math.Max(len, 1) > t.HighRxt) t.HighRxt = s + Math.Max(len, 1);
                    if (t.RecLostBytes == lostBefore) break; // nothing went: never spin
                    continue;
                }
                if (!SendNewSegment(t, t.Cwnd - Pipe(t), ignoreNagle: true)) break;
            }
        }
        else
        {
            while (true)
            {
                int inFlight = t.SndNxt - t.SndUna;
                int budget = t.Cwnd - inFlight;
                if (t.DupAcks > 0 && !t.InRecovery) budget += Math.Min(t.DupAcks, 2) * mss; // RFC 3042 limited transmit
                if (!SendNewSegment(t, budget, ignoreNagle: false)) break;
            }
        }
        if (t.AckNow) SendAck(t);
        ArmPersist(t);
    }

    /// <summary>Sends one segment of new (or, after an RTO, go-back-N) data from SND.NXT. False if nothing went.</summary>
    private bool SendNewSegment(Tcb t, int cwndBudget, bool ignoreNagle)
    {
        int mss = SegmentLimit(t);
        int offset = t.SndNxt - t.SndUna;
        int avail = t.SndCount - offset;
        bool finDue = t.FinQueued && t.SndNxt == t.FinSeq;
        if (avail <= 0)
        {
            if (finDue)
            {
                SendData(t, t.SndNxt, 0, retransmit: t.FinSent);
                return false;
            }
            return false;
        }
        long wndRight = (long)t.SndWnd - offset; // usable send window
        int usable = (int)Math.Min(wndRight, cwndBudget);
        int len = Math.Min(mss, avail);
        if (usable < len)
        {
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): only a full segment, or half the peer's max window.
            if (usable <= 0) return false;
            if (usable >= mss || (usable >= (int)(t.MaxSndWnd / 2) && t.SndNxt == t.SndUna && wndRight <= cwndBudget)) len = usable;
            else return false;
        }
        bool retransmit = t.SndNxt < t.SndMax;
        if (retransmit && t.SackCount > 0)
        {
            // After an RTO, do not resend what the peer has SACKed since.
            for (int i = 0; i < t.SackCount; i++)
            {
                if (t.SndNxt >= t.SackLeft[i] && t.SndNxt < t.SackRight[i]) { t.SndNxt = t.SackRight[i]; return true; }
                if (t.SackLeft[i] > t.SndNxt) { len = Math.Min(len, t.SackLeft[i] - t.SndNxt); break; }
            }
        }
        if (len < mss && !retransmit && !ignoreNagle && !(t.SndUrgent && t.SndUna < t.SndUp))
        {
            // (Urgent data goes at once: no Nagle or cork in urgent mode, as Linux tcp_nagle_test.)
            // Nagle (RFC 9293 §3.7.4): hold a small segment while data is unacknowledged; TCP_CORK / MSG_MORE hold it always.
            if (t.Cork || t.MoreHint) return false;
            if (!t.NoDelay && t.SndNxt != t.SndUna && !(t.FinQueued && len == avail)) return false;
        }
        SendData(t, t.SndNxt, len, retransmit);
        return true;
    }

    /// <summary>SACK option bytes the next segment will carry (RFC 2018 §3: 2 + 8 per block, NOP-padded).</summary>
    private static int SackOptionBytes(Tcb t)
    {
        if (!t.SackOk) return 0;
        int blocks = Math.Min(t.OooCount + (t.DsackPending ? 1 : 0), t.TsOk ? 3 : 4);
        return blocks > 0 ? 4 + 8 * blocks : 0;
    }

    /// <summary>Payload that fits one segment now: the MSS less every option on it (Linux tcp_current_mss),
    /// so a data segment carrying SACK blocks still fits the path MTU.</summary>
    private static int SegmentLimit(Tcb t) => Math.Max(t.EffectiveMss - SackOptionBytes(t), 32);

    /// <summary>Emits data [seq, seq+len) from the send ring (with FIN when it ends at the FIN), clamped to
    /// <see cref="SegmentLimit"/>; returns the payload length sent.</summary>
    private int SendData(Tcb t, SeqNum seq, int len, bool retransmit)
    {
        SyncPathMtu(t);
        int offset = seq - t.SndUna;
        len = Math.Min(len, SegmentLimit(t));
        if (offset < 0 || offset + len > t.SndCount) { len = Math.Max(0, Math.Min(len, t.SndCount - offset)); if (offset < 0) return 0; }
        var r = NewRepr(t, seq, TcpFlags.Ack);
        bool fin = t.FinQueued && seq + len == t.FinSeq;
        if (fin) r.Flags |= TcpFlags.Fin;
        if (len > 0 && offset + len == t.SndCount) r.Flags |= TcpFlags.Psh;
        if (len == 0 && !fin) return 0;
        t.SendSlice(offset, len, out var a, out var b);
        bool summed = t.TrySendSum(offset, len, out uint payloadSum);
        Transmit(t, ref r, a, b, summed, payloadSum);
        SeqNum end = seq + len + (fin ? 1 : 0);
        if (fin) t.FinSent = true;
        if (t.SackOk) RackRecordSent(t, seq, end, retransmit);
        if (retransmit)
        {
            NoteRetransmission(t, seq, end);
            t.TxCount = 0; // Karn: no RTT sample from anything sent before a retransmission
            Counters.RetransmittedSegments++;
            t.TotalRetrans++;
            t.BytesRetrans += len;
            if (t.RttTiming && seq <= t.RttSeq) t.RttTiming = false; // Karn
        }
        else
        {
            Counters.BytesSent += len;
            t.BytesSent += len;
            if (end > t.SndMax) t.RecordTransmit(end, _now);
            if (!t.RttTiming && end > t.SndMax)
            {
                t.RttTiming = true;
                t.RttSeq = seq;
                t.RttStart = _now;
            }
        }
        if (len > 0) { t.DataSegsOut++; t.LastDataSent = _now; }
        if (end > t.SndNxt && seq <= t.SndNxt) t.SndNxt = end;
        if (end > t.SndMax) t.SndMax = end;
        if (t.RtoDeadline == Instant.Never) t.RtoDeadline = _now + new TimeSpanMicros(Math.Min(t.RtoMicros << t.Backoff, MaxRtoMicros));
        t.PersistDeadline = Instant.Never;
        if (!retransmit) ArmTlp(t);
        return len;
    }

    /// <summary>RFC 8985 §7.2: PTO = 2·SRTT (+ the delayed-ACK time when one segment is in flight), not past the RTO.</summary>
    private void ArmTlp(Tcb t)
    {
        if (!t.SackOk || t.SrttMicros == 0 || t.InRecovery || t.TlpOutstanding || t.SndUna == t.SndMax || t.Backoff > 0)
        {
            t.PtoDeadline = Instant.Never;
            return;
        }
        long pto = Math.Max(2 * t.SrttMicros, 10_000);
        if (t.FlightSize <= t.EffectiveMss) pto += DelayedAckMicros;
        var d = _now + new TimeSpanMicros(pto);
        t.PtoDeadline = d < t.RtoDeadline ? d : Instant.Never;
    }

    private void TailLossProbe(Tcb t, Instant now)
    {
        if (t.SndUna == t.SndMax || t.InRecovery || !t.IsSynchronized) return;
        Counters.TailLossProbes++;
        t.TlpOutstanding = true;
        int mss = t.EffectiveMss;
        int offset = t.SndNxt - t.SndUna;
        // §7.3: new data if the window allows, else the last segment again.
        if (t.SndCount > offset && t.SndWnd >= (uint)(offset + Math.Min(mss, t.SndCount - offset)))
            SendData(t, t.SndNxt, Math.Min(mss, t.SndCount - offset), retransmit: false);
        else
        {
            // The most recently sent segment: it ends at SND.MAX, not at the end of the send buffer, whose
            // unsent tail (held back by the window) would go out ahead of the bytes before it.
            int sent = Math.Min(t.SndMax - t.SndUna, t.SndCount);
            int len = Math.Min(mss, sent);
            if (len > 0) SendData(t, t.SndUna + (sent - len), len, retransmit: true);
            else if (t.FinSent) SendData(t, t.SndUna, 0, retransmit: true);
        }
        t.RtoDeadline = now + new TimeSpanMicros(Math.Min(t.RtoMicros << t.Backoff, MaxRtoMicros));
    }

    private void SendAck(Tcb t)
    {
        var r = NewRepr(t, t.SndNxt, TcpFlags.Ack);
        Transmit(t, ref r, default, default);
    }

    /// <summary>SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED) with our options (RFC 9293 §3.2, RFC 7323, RFC 2018).</summary>
    private void SendSyn(Tcb t)
    {
        var r = new TcpRepr
        {
            SrcPort = t.LocalPort, DstPort = t.RemotePort, Seq = t.Iss, Flags = TcpFlags.Syn,
            Window = (ushort)Math.Min(t.RcvBufSize, 65535), Options = TcpOptions.None,
        };
        r.Options.Mss = (ushort)t.AdvMss;
        bool active = t.State == TcpState.SynSent || (t.State == TcpState.SynReceived && t.Parent < 0 && t.UserOwned);
        if (t.State == TcpState.SynSent || t.WscaleOk || (active && t.State == TcpState.SynReceived)) r.Options.WindowScale = t.RcvWscale;
        if ((t.State == TcpState.SynSent && SackEnabled) || t.SackOk) r.Options.SackPermitted = true;
        if (t.State == TcpState.SynSent || t.TsOk)
        {
            r.Options.HasTimestamp = true;
            r.Options.TsVal = TsNow(t);
            r.Options.TsEcr = t.TsRecent;
        }
        if (t.State == TcpState.SynReceived)
        {
            r.Flags |= TcpFlags.Ack;
            r.Ack = t.RcvNxt;
            t.RcvAdv = t.RcvNxt + (uint)r.Window;
            t.LastAckSent = t.RcvNxt;
        }
        t.AckNow = false;
        Counters.SegmentsOut++;
        t.SegsOut++;
        if (!_output.Send(t.LocalAddress, t.RemoteAddress, r, default, default, t.Tos)) Counters.OutputFailed++;
        if (t.SndMax == t.Iss) t.SndMax = t.Iss + 1;
        t.SndNxt = t.Iss + 1;
        if (t.Retransmits == 0) t.RttStart = _now;
        t.RtoDeadline = _now + new TimeSpanMicros(Math.Min(t.RtoMicros << t.Backoff, MaxRtoMicros));
    }

    private uint TsNow(Tcb t) => (uint)_now.Milliseconds + t.TsOffset;

    private TcpRepr NewRepr(Tcb t, SeqNum seq, TcpFlags flags) => new()
    {
        SrcPort = t.LocalPort, DstPort = t.RemotePort, Seq = seq, Flags = flags, Options = TcpOptions.None,
    };

    /// <summary>Fills ACK, window, timestamps and SACK, then hands the segment to the IP layer.</summary>
    private void Transmit(Tcb t, ref TcpRepr r, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, bool summed = false, uint payloadSum = 0)
    {
        if ((r.Flags & TcpFlags.Ack) != 0)
        {
            r.Ack = t.RcvNxt;
            r.Window = AdvertiseWindow(t);
            t.LastAckSent = t.RcvNxt;
            t.AckNow = false;
            t.AckSoon = false;
            t.DelAckDeadline = Instant.Never;
        }
        if (t.TsOk)
        {
            r.Options.HasTimestamp = true;
            r.Options.TsVal = TsNow(t);
            r.Options.TsEcr = t.TsRecent;
        }
        if (t.SndUrgent && r.Seq < t.SndUp && (r.Flags & TcpFlags.Rst) == 0)
        {
            // Urgent mode: every segment below the urgent pointer carries it, offset from its own sequence
            // number; one beyond 16 bits is announced as far as the field reaches (RFC 6093 §4).
            int up = t.SndUp - r.Seq;
            r.Flags |= TcpFlags.Urg;
            r.UrgentPointer = (ushort)Math.Min(up, 0xFFFF);
        }
        if (t.SackOk && (t.OooCount > 0 || t.DsackPending) && (r.Flags & TcpFlags.Rst) == 0)
        {
            // RFC 2883: a D-SACK block first; RFC 2018 §4: then the block with the most recent segment,
            // then the others.
            int max = t.TsOk ? 3 : 4;
            int n = 0;
            if (t.DsackPending)
            {
                r.Options.Sack[n++] = new SackBlock(t.DsackLeft, t.DsackRight);
                t.DsackPending = false;
                Counters.DsacksSent++;
            }
            if (t.OooCount > 0)
            {
                int first = t.OooLastIdx >= 0 && t.OooLastIdx < t.OooCount ? t.OooLastIdx : 0;
                r.Options.Sack[n++] = new SackBlock(t.OooLeft[first], t.OooRight[first]);
                for (int i = 0; i < t.OooCount && n < max; i++)
                    if (i != first) r.Options.Sack[n++] = new SackBlock(t.OooLeft[i], t.OooRight[i]);
            }
            r.Options.SackCount = (byte)n;
        }
        Counters.SegmentsOut++;
        t.SegsOut++;
        t.LastSent = _now;
        bool sent = summed ? _output.SendSummed(t.LocalAddress, t.RemoteAddress, r, a, b, payloadSum, t.Tos)
            : _output.Send(t.LocalAddress, t.RemoteAddress, r, a, b, t.Tos);
        if (!sent) Counters.OutputFailed++;
    }

    /// <summary>The window field: free ring space, never moving the right edge left (RFC 9293 §3.8.6.2.2 receiver SWS).</summary>
    private static ushort AdvertiseWindow(Tcb t)
    {
        int free = t.RcvShutdown && !t.UserOwned ? 0 : t.RcvSpace;
        SeqNum right = t.RcvNxt + free;
        int gain = right - t.RcvAdv;
        if (gain < Math.Min(t.RcvBufSize / 2, t.AdvMss) && t.RcvAdv >= t.RcvNxt) right = t.RcvAdv;
        if (right < t.RcvAdv) right = t.RcvAdv;
        long wnd = Math.Max(0, right - t.RcvNxt);
        long field = Math.Min(wnd >> t.RcvWscale, 65535);
        t.RcvWnd = (uint)(field << t.RcvWscale);
        SeqNum adv = t.RcvNxt + t.RcvWnd;
        if (adv > t.RcvAdv) t.RcvAdv = adv;
        return (ushort)field;
    }

    /// <summary>After the application read: send a window update if the window opened a lot (Linux tcp_cleanup_rbuf).</summary>
    private void MaybeWindowUpdate(Tcb t)
    {
        if (t.State is not (TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)) return;
        SeqNum right = t.RcvNxt + t.RcvSpace;
        int gain = right - t.RcvAdv;
        int adv = t.RcvAdv - t.RcvNxt;
        // An ACK owed soon (AckSoonEnabled) carries the new window with it, while the peer still has room for two
        // segments: the first read of a connection opened the window past the SYN's 64 KiB and sent an update of
        // its own, one segment more for every short connection.
        if (t.AckSoon && adv >= 2 * t.AdvMss) return;
        if (gain >= Math.Min(t.RcvBufSize / 2, 2 * t.AdvMss) && (adv < t.RcvBufSize / 2 || gain >= t.RcvBufSize / 2))
        {
            t.AckNow = true;
            Output(t);
            Touch(t);
        }
    }

    private void Emit(Ipv4Address local, Ipv4Address remote, in TcpRepr r, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, byte tos)
    {
        Counters.SegmentsOut++;
        if (!_output.Send(local, remote, r, a, b, tos)) Counters.OutputFailed++;
    }

    /// <summary>Ends a connection: optional RST, error for the application, release when nobody holds it.</summary>
    private void Abort(Tcb t, Errno error, bool sendRst)
    {
        if (sendRst && t.InFlowTable && t.State is not (TcpState.SynSent or TcpState.Closed or TcpState.Listen))
        {
            var r = NewRepr(t, t.SndNxt, TcpFlags.Rst | TcpFlags.Ack);
            r.Ack = t.RcvNxt;
            Counters.ResetsSent++;
            Emit(t.LocalAddress, t.RemoteAddress, r, default, default, t.Tos);
        }
        if (error != Errno.Ok) t.PendingError = error;
        t.State = TcpState.Closed;
        t.WakeAll();
        t.RtoDeadline = t.DelAckDeadline = t.PersistDeadline = t.KeepaliveDeadline = t.StateDeadline = t.PtoDeadline = Instant.Never;
        t.SndCount = 0;
        t.ReleaseSendRingIfEmpty();
        t.FinQueued = false;
        t.OooCount = 0;
        t.ReleaseReceiveRingIfEmpty(); // unread in-order bytes stay readable
        if (t.Parent >= 0 && !t.InAcceptQueue) { Free(t); return; }
        if (!t.UserOwned && !t.InAcceptQueue) { Free(t); return; }
        if (t.InFlowTable) { _flows.Remove(t.LocalAddress, t.LocalPort, t.RemoteAddress, t.RemotePort); t.InFlowTable = false; }
        // Keep the socket readable as "connected once" for recv() = 0 / error reporting.
        t.FinReceived = true;
    }

    // ------------------------------------------------------------------ timers

    /// <summary>The time without running timers: segments sent next are stamped with it (ISocketApi.Tick).</summary>
    public void Tick(Instant now) => _now = _rings.Now = now;

    /// <summary>Runs due timers; returns the next deadline (<see cref="Instant.Never"/> if none).</summary>
    public Instant Poll(Instant now)
    {
        _now = _rings.Now = now;
        if (_rings.EarliestIdleDeadline < _earliest) _earliest = _rings.EarliestIdleDeadline;
        _rings.EarliestIdleDeadline = Instant.Never;
        if (_ackSoonCount > 0) SendAcksOwedBefore(now + new TimeSpanMicros(-AckSoonMicros), ref Counters.AcksSentLate);
        var next = now < _earliest ? _earliest : RunDueTimers(now);
        // An ACK still owed: the poll after its wait sends it.
        return _ackSoonCount > 0 ? Instant.Min(next, _tcbs[_ackSoon[0]].AckSoonSince + new TimeSpanMicros(AckSoonMicros)) : next;
    }

    private Instant RunDueTimers(Instant now)
    {
        Instant next = ExpireTimeWait(now);
        for (int i = 0; i < _timedCount; i++)
        {
            var t = _tcbs[_active[i]];
            if (t.NextDeadline() <= now) RunTimers(t, now);
            if (!t.InUse || t.ActivePos != i)
            {
                // The slot now holds another connection (swap-remove): look at index i again.
                if (i < _timedCount && _tcbs[_active[i]] != t) i--;
                continue;
            }
            var d = t.NextDeadline();
            if (d < next) next = d;
        }
        _earliest = next;
        return next;
    }

    /// <summary>Owes <paramref name="t"/> an ACK that may wait <see cref="AckSoonMicros"/> (<see cref="AckSoonEnabled"/>);
    /// any segment sent meanwhile carries it.</summary>
    private void AckSoon(Tcb t)
    {
        if (t.AckSoon) return;
        // A connection to our own address is loopback to the program: its ACKs go at once, as Linux's loopback
        // delivers them (a Nagle-held second write would otherwise wait for the first one's ACK).
        if (!AckSoonEnabled || _ackSoonCount == _ackSoon.Length || t.RemoteAddress == t.LocalAddress)
        {
            t.AckNow = true;
            return;
        }
        t.AckSoon = true;
        t.AckSoonSince = _now;
        _ackSoon[_ackSoonCount++] = t.Index;
    }

    /// <summary>Some connection may owe an ACK that waits for a segment to carry it (<see cref="AckSoonEnabled"/>).</summary>
    public bool AcksOwed => _ackSoonCount > 0;

    /// <summary>
    /// Sends every ACK that waits for a segment to carry it, now. For when the program is about to wait for
    /// input: a reply it has not sent yet will not come before something arrives, and a peer may be waiting for
    /// the ACK itself — a Nagle sender holds its second small write until the first is acknowledged (RFC 9293
    /// §3.7.4), which Linux's quick ACKs release at once.
    /// </summary>
    public void SendOwedAcks()
    {
        if (_ackSoonCount > 0) SendAcksOwedBefore(Instant.Never, ref Counters.AcksSentBeforeWait);
    }

    /// <summary>Sends the ACKs owed since <paramref name="cutoff"/> or earlier that nothing carried since (the
    /// list is oldest first: it stops at the first younger one), counting them in <paramref name="sent"/>.</summary>
    private void SendAcksOwedBefore(Instant cutoff, ref long sent)
    {
        int i = 0;
        for (; i < _ackSoonCount; i++)
        {
            var t = _tcbs[_ackSoon[i]];
            if (!t.AckSoon) continue; // carried by a segment, or the connection was freed (and maybe reused)
            if (t.AckSoonSince > cutoff) break;
            t.AckSoon = false;
            if (!t.InUse || t.LastAckSent == t.RcvNxt) continue;
            sent++;
            t.AckNow = true;
            Output(t);
            Touch(t);
        }
        if (i == 0) return;
        Array.Copy(_ackSoon, i, _ackSoon, 0, _ackSoonCount - i);
        _ackSoonCount -= i;
    }

    private void RunTimers(Tcb t, Instant now)
    {
        if (t.RingIdleDeadline <= now) t.ReleaseIdleRings();
        if (t.StateDeadline <= now)
        {
            t.StateDeadline = Instant.Never;
            if (!t.UserOwned && t.State is TcpState.FinWait1 or TcpState.Closing or TcpState.LastAck)
            {
                Counters.LingerTimeouts++;
                Abort(t, Errno.ETIMEDOUT, sendRst: true);
                return;
            }
            if (t.State is TcpState.TimeWait or TcpState.FinWait2)
            {
                if (t.State == TcpState.FinWait2) Counters.TimeoutAborts++;
                t.State = TcpState.Closed;
                t.WakeAll();
                if (!t.UserOwned) { Free(t); return; }
                if (t.InFlowTable) { _flows.Remove(t.LocalAddress, t.LocalPort, t.RemoteAddress, t.RemotePort); t.InFlowTable = false; }
            }
        }
        if (t.RtoDeadline <= now) { t.RtoDeadline = Instant.Never; RetransmitTimeout(t, now); if (!t.InUse) return; }
        if (t.PtoDeadline <= now) { t.PtoDeadline = Instant.Never; TailLossProbe(t, now); }
        if (t.RackDeadline <= now) { t.RackDeadline = Instant.Never; RackTimeout(t, now); }
        if (t.PersistDeadline <= now) { t.PersistDeadline = Instant.Never; PersistTimeout(t, now); }
        if (t.KeepaliveDeadline <= now) { t.KeepaliveDeadline = Instant.Never; KeepaliveTimeout(t, now); if (!t.InUse) return; }
        if (t.DelAckDeadline <= now)
        {
            t.DelAckDeadline = Instant.Never;
            if (t.LastAckSent != t.RcvNxt || t.AckNow)
            {
                Counters.DelayedAcks++;
                t.AckNow = true;
                Output(t);
            }
        }
    }

    private void RetransmitTimeout(Tcb t, Instant now)
    {
        if (t.State is TcpState.SynSent or TcpState.SynReceived)
        {
            int limit = t.State == TcpState.SynSent ? SynRetries : SynAckRetries;
            if (t.Retransmits >= limit)
            {
                Counters.TimeoutAborts++;
                Abort(t, t.SoftError != Errno.Ok ? t.SoftError : Errno.ETIMEDOUT, sendRst: false);
                return;
            }
            t.Retransmits++;
            t.Backoff++;
            t.TotalRetrans++;
            Counters.RtoTimeouts++;
            if (t.State == TcpState.SynReceived) Counters.SynAckRetransmits++;
            SendSyn(t);
            return;
        }
        if (t.SndUna == t.SndMax) return;
        if (t.Retransmits >= MaxRetries)
        {
            Counters.TimeoutAborts++;
            Abort(t, t.SoftError != Errno.Ok ? t.SoftError : Errno.ETIMEDOUT, sendRst: false);
            return;
        }
        Counters.RtoTimeouts++;
        t.Retransmits++;
        t.TotalRto++;
        if (t.Retransmits == 1)
        {
            t.TotalRtoRecoveries++;
            t.RtoRecoveryStart = now;
        }
        if (t.Retransmits == 1 || !t.InRecovery)
        {
            // RFC 5681 §3.1 eq. 4 (once per loss episode), cwnd = 1 segment.
            t.Ssthresh = t.Cc.OnRetransmitTimeout(t, now);
            t.HyStart.Stop();
        }
        t.Cwnd = t.EffectiveMss;
        t.InRecovery = false;
        t.UndoEligible = false;
        t.UndoValid = false; // an RTO is not undone by D-SACKs
        if (t.SackOk) RackOnRto(t);
        t.DupAcks = 0;
        // RFC 6582 §3.2 step 1 sets "recover" after a timeout (no SACK). With SACK the scoreboard tells new
        // losses apart, so a loss during the go-back-N may start fast recovery instead of another RTO.
        t.RecoveryPoint = t.SackOk ? t.SndUna : t.SndMax;
        // RFC 2018 §8: SACK information may be reneged; start over from SND.UNA.
        t.SackCount = 0;
        t.SackedBytes = 0;
        t.HighRxt = t.SndUna;
        t.SndNxt = t.SndUna;
        t.RttTiming = false;
        t.PtoDeadline = Instant.Never;
        t.Backoff = Math.Min(t.Backoff + 1, 16); // §5.5 exponential backoff
        t.RtoDeadline = Instant.Never;
        if (t.SndCount == 0 && t.FinQueued) SendData(t, t.SndUna, 0, retransmit: true);
        else SendData(t, t.SndUna, Math.Min(t.EffectiveMss, t.SndCount), retransmit: true);
        if (t.RtoDeadline == Instant.Never) t.RtoDeadline = now + new TimeSpanMicros(Math.Min(t.RtoMicros << t.Backoff, MaxRtoMicros));
    }

    private void ArmPersist(Tcb t)
    {
        // RFC 9293 §3.8.6.1: a zero window with data waiting and nothing in flight needs probes.
        if (t.SndWnd == 0 && t.SndUna == t.SndMax && t.SndCount > (t.SndNxt - t.SndUna) && t.RtoDeadline == Instant.Never)
        {
            if (t.PersistDeadline == Instant.Never)
                t.PersistDeadline = _now + new TimeSpanMicros(Math.Clamp(t.RtoMicros << Math.Min(t.PersistBackoff, 16), MinRtoMicros, MaxRtoMicros));
        }
        else t.PersistDeadline = Instant.Never;
    }

    private void PersistTimeout(Tcb t, Instant now)
    {
        if (t.SndWnd != 0 || t.SndCount == 0) { Output(t); return; }
        // Linux tcp_probe_timer: give up after tcp_retries2 unanswered probes, or, for an orphan
        // (closed by the application), after tcp_orphan_retries (8) backoffs even if the peer answers.
        if (t.PersistUnanswered >= MaxRetries || (!t.UserOwned && t.PersistBackoff >= OrphanRetries))
        {
            Counters.TimeoutAborts++;
            Abort(t, Errno.ETIMEDOUT, sendRst: true);
            return;
        }
        t.PersistUnanswered++;
        // Linux-style probe: an old sequence number (SND.UNA - 1), no data; the peer answers with its window.
        var r = NewRepr(t, t.SndUna - 1, TcpFlags.Ack);
        Transmit(t, ref r, default, default);
        Counters.WindowProbes++;
        t.PersistBackoff++;
        ArmPersist(t);
    }

    private void ArmKeepalive(Tcb t)
    {
        if (!t.KeepAlive || t.State is not (TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.FinWait2))
        {
            t.KeepaliveDeadline = Instant.Never;
            return;
        }
        t.KeepaliveDeadline = t.KeepaliveProbesSent == 0
            ? t.LastReceived + TimeSpanMicros.FromSeconds(t.KeepIdleSec)
            : _now + TimeSpanMicros.FromSeconds(t.KeepIntvlSec);
    }

    private void KeepaliveTimeout(Tcb t, Instant now)
    {
        if (!t.KeepAlive) return;
        if ((now - t.LastReceived).Value < TimeSpanMicros.FromSeconds(t.KeepIdleSec).Value && t.KeepaliveProbesSent == 0) { ArmKeepalive(t); return; }
        if (t.KeepaliveProbesSent >= t.KeepCnt)
        {
            Counters.TimeoutAborts++;
            Abort(t, t.SoftError != Errno.Ok ? t.SoftError : Errno.ETIMEDOUT, sendRst: true);
            return;
        }
        // Keepalive probe (RFC 9293 §3.8.4): SEG.SEQ = SND.NXT - 1 and no data.
        var r = NewRepr(t, t.SndNxt - 1, TcpFlags.Ack);
        Transmit(t, ref r, default, default);
        Counters.KeepaliveProbes++;
        t.KeepaliveProbesSent++;
        t.KeepaliveDeadline = now + TimeSpanMicros.FromSeconds(t.KeepIntvlSec);
    }

    // ------------------------------------------------------------------ ICMP

    /// <summary>The path MTU belongs to the destination, not the connection (RFC 1191 §6.3): a drop learned through
    /// another connection to the same host lowers this one's MSS before it sends, as Linux's tcp_current_mss
    /// does; otherwise its full segments would be refused for DF (found by the fuzz test).</summary>
    private void SyncPathMtu(Tcb t)
    {
        int pmtu = _output.PathMtu(t.RemoteAddress);
        if (t.Pmtu == 0 || pmtu >= t.Pmtu) return;
        t.Pmtu = pmtu;
        int mss = Math.Max(pmtu - 40, MinimumMss);
        if (mss < t.SndMss)
        {
            t.SndMss = mss;
            Counters.PmtuUpdates++;
        }
    }

    /// <summary>Whether an ICMP error quoting <paramref name="seq"/> concerns a connection with that sequence
    /// number in flight (RFC 5927 §4.1), the check <see cref="OnDestinationUnreachable"/> applies.</summary>
    public bool QuotesDataInFlight(Ipv4Address local, Ipv4Address remote, ushort localPort, ushort remotePort, SeqNum seq)
    {
        int idx = _flows.Find(local, localPort, remote, remotePort);
        if (idx < 0) return false;
        var t = _tcbs[idx];
        return seq >= t.SndUna && seq <= t.SndMax && t.State is not (TcpState.Listen or TcpState.Closed or TcpState.TimeWait);
    }

    /// <summary>ICMP destination unreachable for one of our segments (RFC 1122 §4.2.3.9, RFC 5927, RFC 1191).</summary>
    public void OnDestinationUnreachable(Ipv4Address local, Ipv4Address remote, ushort localPort, ushort remotePort,
        SeqNum seq, byte icmpCode, int nextHopMtu, Instant now)
    {
        _now = now;
        int idx = _flows.Find(local, localPort, remote, remotePort);
        if (idx < 0) { Counters.IcmpIgnored++; return; }
        var t = _tcbs[idx];
        // RFC 5927 §4.1: the quoted sequence number must be in flight.
        if (!(seq >= t.SndUna && seq <= t.SndMax) || t.State is TcpState.Listen or TcpState.Closed or TcpState.TimeWait)
        {
            Counters.IcmpIgnored++;
            return;
        }
        if (icmpCode == 4)
        {
            // Fragmentation needed (RFC 1191): lower the MSS and resend what no longer fits.
            int mtu = nextHopMtu >= 68 ? nextHopMtu : Math.Max(68, t.Pmtu - 1);
            if (mtu >= t.Pmtu && t.Pmtu != 0) { Counters.IcmpIgnored++; return; }
            t.Pmtu = mtu;
            int mss = Math.Max(mtu - 40, MinimumMss);
            if (mss < t.SndMss)
            {
                t.SndMss = mss;
                if (t.Cwnd > 0) t.Cwnd = Math.Max(t.Cwnd, t.EffectiveMss);
                Counters.PmtuUpdates++;
                if (t.SndUna != t.SndMax && t.State != TcpState.SynSent)
                {
                    t.SndNxt = t.SndUna; // Linux tcp_simple_retransmit: resend in smaller segments
                    Output(t);
                }
            }
            Touch(t);
            return;
        }
        // Hard errors: protocol/port unreachable and administratively prohibited (RFC 1122 §4.2.3.9, RFC 1812).
        Errno err = icmpCode switch
        {
            2 or 3 => Errno.ECONNREFUSED,
            9 or 10 or 13 => Errno.EHOSTUNREACH,
            0 or 6 or 11 => Errno.ENETUNREACH,
            _ => Errno.EHOSTUNREACH,
        };
        bool hard = icmpCode is 2 or 3 or 9 or 10 or 13;
        if (hard && t.State is TcpState.SynSent or TcpState.SynReceived)
        {
            Counters.IcmpHardErrors++;
            Abort(t, err, sendRst: false);
            return;
        }
        Counters.IcmpSoftErrors++;
        t.SoftError = err;
    }
}

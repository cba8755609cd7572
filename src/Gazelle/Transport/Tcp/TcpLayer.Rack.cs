using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// RACK-TLP loss detection (RFC 8985 §6): a segment is lost when a segment sent after it has been delivered
/// and it has been outstanding longer than RACK.rtt plus a reordering window. Time replaces the duplicate-ACK
/// count, so reordering shorter than the window costs no retransmission, and a lost retransmission is found
/// like any other loss. Records live in a ring per connection (<see cref="Tcb.Segs"/>), kept only with SACK.
/// </summary>
public sealed partial class TcpLayer
{
    /// <summary>RACK.reo_wnd_persist (RFC 8985 §6.2 step 4): recoveries a grown reordering window lasts.</summary>
    private const int ReoWndPersistRecoveries = 16;
    private const int MaxReoWndMult = 255;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static int SegIndex(Tcb t, int i) => (t.SegHead + i) & (t.Segs.Length - 1);

    /// <summary>RFC 8985 §6.2 RACK_sent_after, by transmission order: the RFC compares send times and breaks
    /// ties by sequence number, which misorders a retransmission and new data sent in the same microsecond.</summary>
    private static bool SentAfter(ulong order1, ulong order2) => order1 > order2;

    /// <summary>Records a transmission of [seq, end): new bytes get a record, resent ones their new send time.</summary>
    private void RackRecordSent(Tcb t, SeqNum seq, SeqNum end, bool retransmit)
    {
        long now = _now.Microseconds;
        if (seq < t.SndMax && t.SegCount > 0)
        {
            SeqNum upTo = SeqNum.Min(end, t.SndMax);
            int i = FindRecord(t, seq);
            if (i >= 0)
            {
                if (t.Segs[SegIndex(t, i)].Start < seq) { SplitRecord(t, i, seq); i++; }
                for (; i < t.SegCount; i++)
                {
                    ref var s = ref t.Segs[SegIndex(t, i)];
                    if (s.Start >= upTo) break;
                    if (s.End > upTo) SplitRecord(t, i, upTo);
                    s = ref t.Segs[SegIndex(t, i)];
                    s.XmitUs = now;
                    s.Order = ++t.TxOrder;
                    if (retransmit) s.Flags |= SegFlags.Retransmitted;
                    if ((s.Flags & SegFlags.Lost) != 0)
                    {
                        s.Flags &= ~SegFlags.Lost;
                        t.RecLostBytes -= s.End - s.Start;
                    }
                }
            }
        }
        if (end <= t.SndMax) return;
        SeqNum start = SeqNum.Max(seq, t.SndMax);
        if (t.SegCount == t.Segs.Length && !t.GrowRecords())
        {
            // At the cap: the newest record takes the new bytes (and their later send time).
            ref var tail = ref t.Segs[SegIndex(t, t.SegCount - 1)];
            if ((tail.Flags & SegFlags.Sacked) != 0) t.RecSackedBytes -= tail.End - tail.Start;
            if ((tail.Flags & SegFlags.Lost) != 0) t.RecLostBytes -= tail.End - tail.Start;
            tail.Flags = retransmit ? SegFlags.Retransmitted : SegFlags.None;
            tail.End = end;
            tail.XmitUs = now;
            tail.Order = ++t.TxOrder;
            return;
        }
        ref var r = ref t.Segs[SegIndex(t, t.SegCount)];
        r.Start = start;
        r.End = end;
        r.XmitUs = now;
        r.Order = ++t.TxOrder;
        r.Flags = retransmit ? SegFlags.Retransmitted : SegFlags.None;
        t.SegCount++;
    }

    /// <summary>The record holding <paramref name="seq"/> (binary search, records are in sequence order), or -1.</summary>
    private static int FindRecord(Tcb t, SeqNum seq)
    {
        int lo = 0, hi = t.SegCount - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            ref var s = ref t.Segs[SegIndex(t, mid)];
            if (seq < s.Start) hi = mid - 1;
            else if (seq >= s.End) lo = mid + 1;
            else return mid;
        }
        return -1;
    }

    /// <summary>The first record ending after <paramref name="seq"/> (its index, or SegCount).</summary>
    private static int FirstRecordEndingAfter(Tcb t, SeqNum seq)
    {
        int lo = 0, hi = t.SegCount;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (t.Segs[SegIndex(t, mid)].End <= seq) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>Splits record <paramref name="i"/> at <paramref name="at"/> (inside it): both halves keep its state.</summary>
    private static void SplitRecord(Tcb t, int i, SeqNum at)
    {
        if (t.SegCount == t.Segs.Length && !t.GrowRecords()) return; // at the cap: stays whole (coarser)
        for (int k = t.SegCount; k > i + 1; k--) t.Segs[SegIndex(t, k)] = t.Segs[SegIndex(t, k - 1)];
        ref var a = ref t.Segs[SegIndex(t, i)];
        ref var b = ref t.Segs[SegIndex(t, i + 1)];
        b = a;
        b.Start = at;
        a.End = at;
        t.SegCount++;
    }

    /// <summary>A cumulative ACK up to <paramref name="ack"/>: records below it are delivered (RFC 8985 §6.2 steps 2-3).</summary>
    private void RackOnCumulativeAck(Tcb t, SeqNum ack, Instant now)
    {
        while (t.SegCount > 0)
        {
            ref var s = ref t.Segs[t.SegHead];
            if (s.End <= ack)
            {
                int len = s.End - s.Start;
                if ((s.Flags & SegFlags.Sacked) != 0) t.RecSackedBytes -= len;
                else RackAdvance(t, ref s, now);
                if ((s.Flags & SegFlags.Lost) != 0) t.RecLostBytes -= len;
                t.SegHead = (t.SegHead + 1) & (t.Segs.Length - 1);
                t.SegCount--;
                continue;
            }
            if (s.Start < ack)
            {
                int cut = ack - s.Start; // acknowledged in part: the rest stays outstanding
                if ((s.Flags & SegFlags.Sacked) != 0) t.RecSackedBytes -= cut;
                if ((s.Flags & SegFlags.Lost) != 0) t.RecLostBytes -= cut;
                s.Start = ack;
            }
            break;
        }
        if (t.SegCount == 0 && t.Segs.Length != 0) t.KeepEmptyRings(); // all acknowledged: the ring goes back when idle
    }

    /// <summary>A SACK block [l, r): the records inside it are delivered. True if any was newly SACKed.</summary>
    private bool RackOnSack(Tcb t, SeqNum l, SeqNum r, Instant now)
    {
        bool any = false;
        for (int i = FirstRecordEndingAfter(t, l); i < t.SegCount; i++)
        {
            ref var s = ref t.Segs[SegIndex(t, i)];
            if (s.Start >= r) break;
            if (s.Start < l || s.End > r || (s.Flags & SegFlags.Sacked) != 0) continue;
            int len = s.End - s.Start;
            s.Flags |= SegFlags.Sacked;
            t.RecSackedBytes += len;
            if ((s.Flags & SegFlags.Lost) != 0) { s.Flags &= ~SegFlags.Lost; t.RecLostBytes -= len; }
            RackAdvance(t, ref s, now);
            any = true;
        }
        return any;
    }

    /// <summary>RFC 8985 §6.2 steps 2 and 3 for one newly delivered segment.</summary>
    private void RackAdvance(Tcb t, ref SentSegment s, Instant now)
    {
        bool retransmitted = (s.Flags & SegFlags.Retransmitted) != 0;
        // Step 3: delivered below the highest delivered sequence without a retransmission: reordering.
        if (s.End > t.RackFack) t.RackFack = s.End;
        else if (s.End < t.RackFack && !retransmitted && !t.RackReorderingSeen)
        {
            t.RackReorderingSeen = true;
            Counters.RackReorderingSeen++;
        }
        long rtt = now.Microseconds - s.XmitUs;
        // Step 2: a retransmitted segment acknowledged sooner than the path allows was the original's ACK.
        if (retransmitted && rtt < t.MinRttMicros) return;
        if (t.RackXmitUs < 0 || SentAfter(s.Order, t.RackOrder))
        {
            t.RackRttUs = rtt;
            t.RackXmitUs = s.XmitUs;
            t.RackEndSeq = s.End;
            t.RackOrder = s.Order;
        }
    }

    /// <summary>RFC 8985 §6.2 step 4 RACK_update_reo_wnd: a D-SACK grows the window by min_RTT/4, once per round
    /// trip, for the next 16 recoveries.</summary>
    private void RackDsackSeen(Tcb t)
    {
        if (t.RackDsackRoundValid && t.SndUna >= t.RackDsackRound) t.RackDsackRoundValid = false;
        t.RackReorderingSeen = true; // a spurious retransmission: the path reorders (as Linux's reord_seen)
        if (t.RackDsackRoundValid) return;
        t.RackDsackRoundValid = true;
        t.RackDsackRound = t.SndMax;
        if (t.RackReoWndMult < MaxReoWndMult)
        {
            t.RackReoWndMult++;
            Counters.RackReoWndGrowths++;
        }
        t.RackReoWndPersist = ReoWndPersistRecoveries;
    }

    /// <summary>A recovery ended: a grown reordering window shrinks back after 16 of them (§6.2 step 4).</summary>
    private static void RackRecoveryEnded(Tcb t)
    {
        if (t.RackReoWndPersist > 0 && --t.RackReoWndPersist == 0) t.RackReoWndMult = 1;
    }

    /// <summary>RACK.reo_wnd (µs): 0 while no reordering was seen and loss is already evident (in recovery, or
    /// DupThresh segments SACKed), else min_RTT/4 per step, at most SRTT (RFC 8985 §6.2 step 4).</summary>
    private static long RackReoWnd(Tcb t)
    {
        if (!t.RackReorderingSeen && (t.InRecovery || t.Retransmits > 0 || t.RecSackedBytes >= 3 * t.EffectiveMss)) return 0;
        return Math.Min(t.MinRttMicros / 4 * t.RackReoWndMult, t.SrttMicros);
    }

    /// <summary>RFC 8985 §6.2 step 5 and §6.3: marks lost every outstanding segment sent before the most recently
    /// delivered one and older than RACK.rtt + reo_wnd; arms the reordering timer for the ones not yet that old.
    /// True if any segment was newly marked.</summary>
    private bool RackDetectLoss(Tcb t, Instant now)
    {
        t.RackDeadline = Instant.Never;
        if (t.RackXmitUs < 0 || t.SegCount == 0) return false;
        long reo = RackReoWnd(t);
        long nowUs = now.Microseconds;
        long timeout = 0;
        bool marked = false;
        for (int i = 0; i < t.SegCount; i++)
        {
            ref var s = ref t.Segs[SegIndex(t, i)];
            if ((s.Flags & (SegFlags.Sacked | SegFlags.Lost)) != 0) continue;
            if (!SentAfter(t.RackOrder, s.Order)) continue;
            long remaining = s.XmitUs + t.RackRttUs + reo - nowUs;
            if (remaining <= 0)
            {
                s.Flags |= SegFlags.Lost;
                t.RecLostBytes += s.End - s.Start;
                Counters.RackLost++;
                if ((s.Flags & SegFlags.Retransmitted) != 0) Counters.LostRetransmits++;
                marked = true;
            }
            else if (remaining > timeout) timeout = remaining;
        }
        if (timeout > 0) t.RackDeadline = now + new TimeSpanMicros(timeout);
        return marked;
    }

    /// <summary>After an ACK's cumulative and selective parts were taken: reordering window, then loss detection.</summary>
    private void RackAfterAck(Tcb t, bool dsack, Instant now)
    {
        if (dsack) RackDsackSeen(t);
        else if (t.RackDsackRoundValid && t.SndUna >= t.RackDsackRound) t.RackDsackRoundValid = false;
        if (t.SegCount == 0) { t.RackDeadline = Instant.Never; return; }
        if (t.SackCount > 0 || t.InRecovery || t.RecLostBytes > 0) RackDetectLoss(t, now);
        else t.RackDeadline = Instant.Never;
    }

    /// <summary>The reordering timer (RFC 8985 §6.3): the segments it waited for are now old enough to be lost.</summary>
    private void RackTimeout(Tcb t, Instant now)
    {
        if (!t.SackOk || !t.IsSynchronized || t.SndUna == t.SndMax) return;
        Counters.RackReorderTimeouts++;
        if (!RackDetectLoss(t, now)) return;
        if (!t.InRecovery && CanStartRecovery(t)) EnterSackRecovery(t, now);
        Output(t);
    }

    /// <summary>RFC 8985 §6.3 on RTO: everything outstanding is lost, and SACK information is dropped with the
    /// scoreboard (RFC 2018 §8, reneging); the go-back-N resends it.</summary>
    private static void RackOnRto(Tcb t)
    {
        t.RecSackedBytes = 0;
        t.RecLostBytes = 0;
        for (int i = 0; i < t.SegCount; i++)
        {
            ref var s = ref t.Segs[SegIndex(t, i)];
            s.Flags = (s.Flags & SegFlags.Retransmitted) | SegFlags.Lost;
            t.RecLostBytes += s.End - s.Start;
        }
        t.RackDeadline = Instant.Never;
    }

    /// <summary>The first segment marked lost and not yet retransmitted (RFC 6675 NextSeg rule 1 with RACK's
    /// IsLost), at most one segment's worth.</summary>
    private bool NextLostRecord(Tcb t, out SeqNum start, out int length)
    {
        if (t.RecLostBytes > 0)
        {
            for (int i = 0; i < t.SegCount; i++)
            {
                ref var s = ref t.Segs[SegIndex(t, i)];
                if ((s.Flags & SegFlags.Lost) == 0) continue;
                start = s.Start;
                length = Math.Min(s.End - s.Start, t.EffectiveMss);
                return true;
            }
        }
        start = default;
        length = 0;
        return false;
    }

    /// <summary>RFC 6675 §4 SetPipe() with RACK's marks: bytes outstanding that are neither SACKed nor lost
    /// (a retransmitted segment is in flight again).</summary>
    private static int Pipe(Tcb t) => Math.Max(0, t.FlightSize - t.RecSackedBytes - t.RecLostBytes);

    /// <summary>Counts a retransmission into the recovery episode (D-SACK undo).</summary>
    private static void NoteRetransmission(Tcb t, SeqNum seq, SeqNum end)
    {
        if (!t.UndoValid) return;
        t.UndoRetrans++;
        if (seq < t.UndoLow) t.UndoLow = seq;
        if (end > t.UndoHigh) t.UndoHigh = end;
    }

    /// <summary>A D-SACK for [l, r): if it reports a retransmission of the latest episode, one fewer is owed;
    /// when every one was reported, the episode was spurious: its window reduction is undone (RFC 3708,
    /// as Linux's undo_retrans).</summary>
    private void DsackUndo(Tcb t, SeqNum l, SeqNum r)
    {
        if (!t.UndoValid || r <= t.UndoLow || l >= t.UndoHigh) return;
        Counters.SpuriousRetransmits++;
        int mss = t.EffectiveMss;
        t.UndoRetrans -= Math.Max(1, (r - l + mss - 1) / mss);
        if (t.UndoRetrans > 0 || t.RecoveryUndone) return;
        t.RecoveryUndone = true;
        t.UndoValid = false;
        Counters.DsackUndos++;
        t.ReordSeen++;
        t.Cwnd = Math.Max(t.Cwnd, t.PriorCwnd);
        if (t.PriorSsthresh > t.Ssthresh) t.Ssthresh = t.PriorSsthresh;
    }
}

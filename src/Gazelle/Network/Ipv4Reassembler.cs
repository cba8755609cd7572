using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Network;

/// <summary>
/// IPv4 fragment reassembly (RFC 791 §3.2, RFC 815) in bounded memory: a fixed number of slots, each
/// with a 64 KiB buffer (allocated on first use, then reused) and a fixed number of received ranges.
/// A fragment overlapping data already received discards the whole datagram (as RFC 5722 does for
/// IPv6: partial overlaps are only ever made by attackers); an exact duplicate is dropped alone. Partial datagrams time out; when every slot is
/// busy the oldest one is evicted.
/// </summary>
public sealed class Ipv4Reassembler
{
    public const int MaxDatagram = 65535;

    private struct Slot
    {
        public bool Used;
        public Ipv4Address Source;
        public Ipv4Address Destination;
        public ushort Id;
        public byte Protocol;
        public Instant Deadline;
        /// <summary>Payload length once the last fragment (MF = 0) arrived, else -1.</summary>
        public int Total;
        public int Received;
        public int RangeCount;
    }

    private readonly Slot[] _slots;
    private readonly byte[]?[] _buffers;
    private readonly int[] _rangeStart;
    private readonly int[] _rangeEnd;
    private readonly int _maxFragments;
    private readonly TimeSpanMicros _timeout;
    private readonly Ipv4Counters _counters;
    private int _used;

    public Ipv4Reassembler(Ipv4Counters counters, int slots = 8, int maxFragments = 64, TimeSpanMicros? timeout = null)
    {
        _counters = counters;
        _slots = new Slot[slots];
        _buffers = new byte[]?[slots];
        _rangeStart = new int[slots * maxFragments];
        _rangeEnd = new int[slots * maxFragments];
        _maxFragments = maxFragments;
        _timeout = timeout ?? TimeSpanMicros.FromSeconds(30);
    }

    /// <summary>Partial datagrams held.</summary>
    public int InProgress => _used;

    /// <summary>
    /// Adds a fragment. Returns true with the whole payload when it completes a datagram (the span is
    /// valid until the next call); otherwise the fragment was stored or dropped, and counted.
    /// </summary>
    public bool TryAdd(Ipv4Packet fragment, Instant now, out ReadOnlySpan<byte> payload)
    {
        payload = default;
        var data = fragment.Payload;
        int start = fragment.FragmentOffset;
        int end = start + data.Length;
        bool last = !fragment.MoreFragments;
        // RFC 791: every fragment but the last carries a multiple of 8 bytes; nothing goes past 65535.
        if ((!last && (data.Length & 7) != 0) || (!last && data.Length == 0) || end + fragment.HeaderLength > MaxDatagram)
        {
            _counters.FragmentInvalid++;
            return false;
        }

        int s = Find(fragment.Source, fragment.Destination, fragment.Identification, fragment.Protocol);
        if (s < 0)
        {
            s = AllocateSlot(now);
            ref var n = ref _slots[s];
            n.Used = true;
            n.Source = fragment.Source;
            n.Destination = fragment.Destination;
            n.Id = fragment.Identification;
            n.Protocol = fragment.Protocol;
            n.Deadline = now + _timeout;
            n.Total = -1;
            n.Received = 0;
            n.RangeCount = 0;
            _used++;
        }
        ref var slot = ref _slots[s];

        if (last)
        {
            if ((slot.Total >= 0 && slot.Total != end) || slot.Received > 0 && MaxEnd(s) > end)
            {
                _counters.FragmentInvalid++;
                Discard(s);
                return false;
            }
            slot.Total = end;
        }
        else if (slot.Total >= 0 && end > slot.Total)
        {
            _counters.FragmentInvalid++;
            Discard(s);
            return false;
        }

        int rbase = s * _maxFragments;
        for (int r = 0; r < slot.RangeCount; r++)
        {
            if (start == _rangeStart[rbase + r] && end == _rangeEnd[rbase + r])
            {
                // An exact duplicate (the network duplicated it) is dropped alone, as Linux does.
                _counters.FragmentDuplicates++;
                return false;
            }
            if (start < _rangeEnd[rbase + r] && _rangeStart[rbase + r] < end)
            {
                _counters.FragmentOverlaps++;
                Discard(s);
                return false;
            }
        }
        if (slot.RangeCount == _maxFragments)
        {
            _counters.FragmentTooMany++;
            Discard(s);
            return false;
        }
        _rangeStart[rbase + slot.RangeCount] = start;
        _rangeEnd[rbase + slot.RangeCount] = end;
        slot.RangeCount++;
        slot.Received += data.Length;
        var buffer = _buffers[s] ??= new byte[MaxDatagram];
        data.CopyTo(buffer.AsSpan(start));

        // Ranges never overlap, so the datagram is whole when the byte count reaches the known end.
        if (slot.Total >= 0 && slot.Received == slot.Total)
        {
            payload = buffer.AsSpan(0, slot.Total);
            _counters.Reassembled++;
            Release(s);
            return true;
        }
        _counters.FragmentsStored++;
        return false;
    }

    /// <summary>Discards partial datagrams past their deadline; returns the next deadline.</summary>
    public Instant Poll(Instant now)
    {
        if (_used == 0) return Instant.Never;
        var next = Instant.Never;
        for (int i = 0; i < _slots.Length; i++)
        {
            if (!_slots[i].Used) continue;
            if (now >= _slots[i].Deadline)
            {
                _counters.ReassemblyTimeouts++;
                Release(i);
                continue;
            }
            next = Instant.Min(next, _slots[i].Deadline);
        }
        return next;
    }

    private int MaxEnd(int s)
    {
        int m = 0, rbase = s * _maxFragments;
        for (int r = 0; r < _slots[s].RangeCount; r++) m = Math.Max(m, _rangeEnd[rbase + r]);
        return m;
    }

    private int Find(Ipv4Address src, Ipv4Address dst, ushort id, byte protocol)
    {
        if (_used == 0) return -1;
        for (int i = 0; i < _slots.Length; i++)
        {
            ref var s = ref _slots[i];
            if (s.Used && s.Id == id && s.Source == src && s.Destination == dst && s.Protocol == protocol) return i;
        }
        return -1;
    }

    private int AllocateSlot(Instant now)
    {
        int oldest = 0;
        for (int i = 0; i < _slots.Length; i++)
        {
            if (!_slots[i].Used) return i;
            if (_slots[i].Deadline < _slots[oldest].Deadline) oldest = i;
        }
        _counters.ReassemblyEvictions++;
        Release(oldest);
        return oldest;
    }

    private void Discard(int s) => Release(s);

    private void Release(int s)
    {
        if (!_slots[s].Used) return;
        _slots[s] = default;
        _used--;
    }
}

using Gazelle.Buffers;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Link;

/// <summary>Sizing and timing of the ARP cache.</summary>
public sealed record ArpOptions
{
    public int Capacity { get; init; } = 256;
    /// <summary>Packets held per next hop while it resolves; more are dropped (counted).</summary>
    public int PendingPerEntry { get; init; } = 4;
    public TimeSpanMicros RetryInterval { get; init; } = TimeSpanMicros.FromSeconds(1);
    /// <summary>Requests sent before giving up (the first one included).</summary>
    public int MaxRequests { get; init; } = 3;
    /// <summary>How long a learned mapping is trusted.</summary>
    public TimeSpanMicros ReachableTime { get; init; } = TimeSpanMicros.FromSeconds(60);
    /// <summary>An entry used this close to expiry is refreshed with a unicast request.</summary>
    public TimeSpanMicros RefreshWindow { get; init; } = TimeSpanMicros.FromSeconds(5);
}

/// <summary>
/// ARP for one interface (RFC 826): a cache of IPv4 → MAC mappings with expiry and refresh, answers
/// to requests for our address, a gratuitous announcement at start, and a bounded queue of IP packets
/// per next hop awaiting resolution (retried, then dropped with a counter).
/// </summary>
public sealed class ArpCache
{
    private enum State : byte { Free, Incomplete, Reachable }

    private struct Entry
    {
        public Ipv4Address Ip;
        public MacAddress Mac;
        public State State;
        public byte Requests;
        public Instant Expires;
        /// <summary>Incomplete: next request. Reachable: earliest next refresh.</summary>
        public Instant NextRequest;
        public int PendingCount;
        /// <summary>When we last sent through this entry (default: never; learned from someone else's request).</summary>
        public Instant LastUsed;
    }

    private readonly EthernetLink _link;
    private readonly Ipv4Address _address;
    private readonly ArpOptions _options;
    private readonly Entry[] _entries;
    private readonly Dictionary<uint, int> _index;
    private readonly PacketBuffer?[] _pending;
    private readonly int[] _free;
    private int _freeCount;
    private int _incomplete;
    private Instant _nextDeadline = Instant.Never;
    private int _lastSlot = -1;

    public ArpCache(EthernetLink link, Ipv4Address address, ArpOptions options, ArpCounters counters)
    {
        _link = link;
        _address = address;
        _options = options;
        Counters = counters;
        _entries = new Entry[options.Capacity];
        _index = new Dictionary<uint, int>(options.Capacity);
        _pending = new PacketBuffer?[options.Capacity * options.PendingPerEntry];
        _free = new int[options.Capacity];
        for (int i = 0; i < options.Capacity; i++) _free[i] = options.Capacity - 1 - i;
        _freeCount = options.Capacity;
    }

    public ArpCounters Counters { get; }
    /// <summary>Entries in use (resolving or resolved).</summary>
    public int Count => _entries.Length - _freeCount;
    /// <summary>Packets held awaiting resolution.</summary>
    public int PendingPackets
    {
        get
        {
            int n = 0;
            foreach (ref readonly var e in _entries.AsSpan()) n += e.PendingCount;
            return n;
        }
    }

    /// <summary>The resolved MAC of <paramref name="ip"/>, if known and not expired.</summary>
    public bool TryLookup(Ipv4Address ip, Instant now, out MacAddress mac)
    {
        mac = default;
        if (!_index.TryGetValue(ip.Value, out int i)) return false;
        ref var e = ref _entries[i];
        if (e.State != State.Reachable || now >= e.Expires) return false;
        mac = e.Mac;
        return true;
    }

    /// <summary>The slot of <paramref name="ip"/>. The slot found last is tried first: a stack mostly sends
    /// to one next hop (its peer or its gateway), and the check costs less than a dictionary probe per
    /// packet. A freed slot is zeroed (State Free), so a stale hint never matches.</summary>
    private bool Find(Ipv4Address ip, out int slot)
    {
        slot = _lastSlot;
        if ((uint)slot < (uint)_entries.Length && _entries[slot].State != State.Free && _entries[slot].Ip == ip) return true;
        if (!_index.TryGetValue(ip.Value, out slot)) return false;
        _lastSlot = slot;
        return true;
    }

    /// <summary>Moves whenever an entry is learned, starts resolving or is freed: a resolution taken with
    /// <see cref="TryGetSettled"/> stays current while this is unchanged (and until its deadline).</summary>
    public int Version { get; private set; }

    /// <summary>The MAC of a reachable <paramref name="ip"/> that needs no refresh before <paramref name="until"/>
    /// (the start of its refresh window), for a sender that caches it (the IP layer's route cache): while
    /// <see cref="Version"/> is unchanged and before <paramref name="until"/>, sending to <paramref name="mac"/>
    /// is what <see cref="Send"/> would do. <see cref="Touch"/> keeps the entry's use current.</summary>
    public bool TryGetSettled(Ipv4Address ip, Instant now, out MacAddress mac, out Instant until, out int slot)
    {
        mac = default;
        until = default;
        if (!Find(ip, out slot)) return false;
        ref var e = ref _entries[slot];
        if (e.State != State.Reachable) return false;
        until = new Instant(e.Expires.Microseconds - _options.RefreshWindow.Value);
        if (now >= until) return false;
        mac = e.Mac;
        return true;
    }

    /// <summary>Marks the entry of a slot from <see cref="TryGetSettled"/> as used now (least recently used
    /// entries are evicted first).</summary>
    public void Touch(int slot, Instant now) => _entries[slot].LastUsed = now;

    /// <summary>Gratuitous ARP (a request for our own address, RFC 5227 §3 announcement).</summary>
    public void Announce() => SendArp(ArpOperation.Request, MacAddress.Broadcast, MacAddress.Zero, _address);

    /// <summary>Sends an IP packet (in <paramref name="packet"/>, no Ethernet header yet) to
    /// <paramref name="nextHop"/>, resolving it first if needed. Takes ownership of the buffer.</summary>
    public void Send(PacketBuffer packet, Ipv4Address nextHop, Instant now)
    {
        if (Find(nextHop, out int i))
        {
            ref var e = ref _entries[i];
            e.LastUsed = now;
            if (e.State == State.Reachable)
            {
                if (now < e.Expires)
                {
                    if ((e.Expires - now).Value <= _options.RefreshWindow.Value && now >= e.NextRequest)
                    {
                        // Refresh before it expires, unicast to the known address.
                        e.NextRequest = now + _options.RetryInterval;
                        Counters.Refreshes++;
                        SendArp(ArpOperation.Request, e.Mac, e.Mac, nextHop);
                    }
                    _link.Send(packet, e.Mac, EtherType.Ipv4);
                    return;
                }
                // Expired: resolve again.
                StartResolving(ref e, now);
            }
            Enqueue(i, packet);
            return;
        }

        int slot = Allocate();
        if (slot < 0)
        {
            Counters.TableFull++;
            packet.Release();
            return;
        }
        ref var n = ref _entries[slot];
        n.Ip = nextHop;
        n.Mac = MacAddress.Zero;
        n.PendingCount = 0;
        n.LastUsed = now;
        _index[nextHop.Value] = slot;
        StartResolving(ref n, now);
        Enqueue(slot, packet);
    }

    private void StartResolving(ref Entry e, Instant now)
    {
        Version++;
        e.State = State.Incomplete;
        e.Requests = 1;
        e.NextRequest = now + _options.RetryInterval;
        _incomplete++;
        _nextDeadline = Instant.Min(_nextDeadline, e.NextRequest);
        SendArp(ArpOperation.Request, MacAddress.Broadcast, MacAddress.Zero, e.Ip);
    }

    private void Enqueue(int slot, PacketBuffer packet)
    {
        ref var e = ref _entries[slot];
        if (e.PendingCount == _options.PendingPerEntry)
        {
            Counters.PendingQueueFull++;
            packet.Release();
            return;
        }
        _pending[slot * _options.PendingPerEntry + e.PendingCount++] = packet;
    }

    /// <summary>Processes a received ARP packet (the Ethernet payload); counts exactly one outcome.</summary>
    public void Input(ReadOnlySpan<byte> bytes, Instant now)
    {
        if (!ArpPacket.TryCreate(bytes, out var p) || !ArpRepr.TryParse(p, out var arp))
        {
            Counters.Malformed++;
            return;
        }
        if (arp.SenderMac.IsMulticast || arp.SenderMac == MacAddress.Zero || arp.SenderIp.IsBroadcast || arp.SenderIp.IsMulticast)
        {
            Counters.BadSender++;
            return;
        }
        if (arp.SenderIp == _address)
        {
            Counters.AddressConflict++;
            return;
        }

        // RFC 826 "Packet Reception": merge first, then add if we are the target.
        bool merged = false;
        if (!arp.SenderIp.IsUnspecified && _index.TryGetValue(arp.SenderIp.Value, out int i))
        {
            Learn(i, arp.SenderMac, now);
            merged = true;
        }
        if (arp.TargetIp != _address)
        {
            if (merged) Counters.Learned++;
            else Counters.IgnoredNotForUs++;
            return;
        }
        if (!merged && !arp.SenderIp.IsUnspecified)
        {
            int slot = Allocate();
            if (slot >= 0)
            {
                ref var n = ref _entries[slot];
                n.Ip = arp.SenderIp;
                n.State = State.Free;
                n.PendingCount = 0;
                _index[arp.SenderIp.Value] = slot;
                Learn(slot, arp.SenderMac, now);
            }
        }
        if (arp.Operation == ArpOperation.Request)
        {
            // Reply to the requester directly; an RFC 5227 probe (sender 0.0.0.0) gets it too.
            SendArp(ArpOperation.Reply, arp.SenderMac, arp.SenderMac, arp.SenderIp);
            Counters.RequestsAnswered++;
        }
        else
        {
            Counters.Learned++;
        }
    }

    private void Learn(int slot, MacAddress mac, Instant now)
    {
        ref var e = ref _entries[slot];
        Version++;
        if (e.State == State.Incomplete) _incomplete--;
        e.State = State.Reachable;
        e.Mac = mac;
        e.Expires = now + _options.ReachableTime;
        e.NextRequest = now;
        e.Requests = 0;
        int baseIndex = slot * _options.PendingPerEntry;
        for (int k = 0; k < e.PendingCount; k++)
        {
            var b = _pending[baseIndex + k]!;
            _pending[baseIndex + k] = null;
            _link.Send(b, mac, EtherType.Ipv4);
        }
        e.PendingCount = 0;
    }

    /// <summary>Retries and gives up on resolutions; returns the next instant it needs a call.</summary>
    public Instant Poll(Instant now)
    {
        if (_incomplete == 0) return _nextDeadline = Instant.Never;
        if (now < _nextDeadline) return _nextDeadline;
        var next = Instant.Never;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if (e.State != State.Incomplete) continue;
            if (now >= e.NextRequest)
            {
                if (e.Requests >= _options.MaxRequests)
                {
                    Counters.ResolutionFailed += e.PendingCount;
                    ReleasePending(i);
                    _incomplete--;
                    Free(i);
                    continue;
                }
                e.Requests++;
                e.NextRequest = now + _options.RetryInterval;
                SendArp(ArpOperation.Request, MacAddress.Broadcast, MacAddress.Zero, e.Ip);
            }
            next = Instant.Min(next, e.NextRequest);
        }
        return _nextDeadline = next;
    }

    /// <summary>Releases every held packet and forgets every entry (stack shutdown).</summary>
    public void Clear()
    {
        for (int i = 0; i < _entries.Length; i++)
        {
            if (_entries[i].State == State.Free) continue;
            ReleasePending(i);
            Free(i);
        }
        _incomplete = 0;
        _nextDeadline = Instant.Never;
    }

    private void ReleasePending(int slot)
    {
        ref var e = ref _entries[slot];
        int baseIndex = slot * _options.PendingPerEntry;
        for (int k = 0; k < e.PendingCount; k++)
        {
            _pending[baseIndex + k]!.Release();
            _pending[baseIndex + k] = null;
        }
        e.PendingCount = 0;
    }

    private int Allocate()
    {
        if (_freeCount > 0) return _free[--_freeCount];
        // Evict the resolved entry used least recently (never-used ones first, the one closest to expiry among
        // equals); entries still resolving are kept. A flood of ARP requests from made-up senders (each one
        // adds an entry, RFC 826) then cannot push out a neighbour in use (found by the fuzz test).
        int victim = -1;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref readonly var e = ref _entries[i];
            if (e.State != State.Reachable) continue;
            if (victim < 0 || e.LastUsed < _entries[victim].LastUsed
                || (e.LastUsed == _entries[victim].LastUsed && e.Expires < _entries[victim].Expires)) victim = i;
        }
        if (victim < 0) return -1;
        Counters.Evictions++;
        Free(victim);
        return _free[--_freeCount];
    }

    private void Free(int slot)
    {
        ref var e = ref _entries[slot];
        Version++;
        _index.Remove(e.Ip.Value);
        e = default;
        _free[_freeCount++] = slot;
    }

    private void SendArp(ArpOperation op, MacAddress frameDestination, MacAddress targetMac, Ipv4Address targetIp)
    {
        var b = _link.RentTx();
        if (b is null) return;
        new ArpRepr(op, _link.Mac, _address, targetMac, targetIp).Emit(b.Append(ArpPacket.Length));
        Counters.RequestsSent += op == ArpOperation.Request ? 1 : 0;
        _link.Send(b, frameDestination, EtherType.Arp);
    }
}

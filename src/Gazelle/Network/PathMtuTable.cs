using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Network;

/// <summary>
/// Per-destination path MTUs learned from fragmentation-needed messages (RFC 1191). Bounded; entries
/// age out so a path can grow back (RFC 1191 §6.3 suggests about 10 minutes).
/// </summary>
public sealed class PathMtuTable
{
    /// <summary>Smallest MTU accepted (RFC 791: every host handles 68-byte datagrams).</summary>
    public const int MinimumMtu = 68;
    // RFC 1191 §7 plateaus, for routers that report an MTU of 0.
    private static ReadOnlySpan<ushort> Plateaus => [32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

    private struct Entry
    {
        public Ipv4Address Destination;
        public int Mtu;
        public Instant Expires;
    }

    private readonly Entry[] _entries;
    private readonly Dictionary<uint, int> _index;
    private readonly int _linkMtu;
    private readonly TimeSpanMicros _lifetime;
    private int _count;

    public PathMtuTable(int linkMtu, int capacity = 128, TimeSpanMicros? lifetime = null)
    {
        _linkMtu = linkMtu;
        _entries = new Entry[capacity];
        _index = new Dictionary<uint, int>(capacity);
        _lifetime = lifetime ?? TimeSpanMicros.FromSeconds(600);
    }

    public int Count => _count;
    /// <summary>Moves whenever an entry is added, changed or removed (the IP layer's route cache checks it).</summary>
    public int Version { get; private set; }

    /// <summary>Whether a (possibly expired) estimate is held for <paramref name="destination"/>.</summary>
    public bool Contains(Ipv4Address destination) => _count != 0 && _index.ContainsKey(destination.Value);

    public int Get(Ipv4Address destination, Instant now)
    {
        if (_count == 0 || !_index.TryGetValue(destination.Value, out int i)) return _linkMtu;
        if (now >= _entries[i].Expires)
        {
            Remove(i);
            return _linkMtu;
        }
        return _entries[i].Mtu;
    }

    /// <summary>The MTU a fragmentation-needed report stands for: the next-hop MTU it gives, or (a router that
    /// reports 0) RFC 1191 §5's plateau below the quoted datagram; never below <see cref="MinimumMtu"/>.</summary>
    public static int Estimate(int reportedMtu, int quotedTotalLength)
    {
        int mtu = reportedMtu;
        if (mtu == 0)
        {
            mtu = MinimumMtu;
            foreach (ushort p in Plateaus)
            {
                if (p < quotedTotalLength) { mtu = p; break; }
            }
        }
        return Math.Max(mtu, MinimumMtu);
    }

    /// <summary>Applies a fragmentation-needed report; <paramref name="quotedTotalLength"/> is the total
    /// length of the quoted datagram (used when the router reports 0). Returns true if the MTU dropped.</summary>
    public bool Update(Ipv4Address destination, int reportedMtu, int quotedTotalLength, Instant now)
    {
        int current = Get(destination, now);
        int mtu = Estimate(reportedMtu, quotedTotalLength);
        if (mtu >= current) return false; // RFC 1191 §6.1: never raise the estimate from a report
        if (!_index.TryGetValue(destination.Value, out int i))
        {
            if (_count == _entries.Length)
            {
                int victim = 0;
                for (int k = 1; k < _count; k++) if (_entries[k].Expires < _entries[victim].Expires) victim = k;
                Remove(victim);
            }
            i = _count++;
            _index[destination.Value] = i;
        }
        _entries[i] = new Entry { Destination = destination, Mtu = mtu, Expires = now + _lifetime };
        Version++;
        return true;
    }

    private void Remove(int i)
    {
        Version++;
        _index.Remove(_entries[i].Destination.Value);
        int last = --_count;
        if (i != last)
        {
            _entries[i] = _entries[last];
            _index[_entries[i].Destination.Value] = i;
        }
        _entries[last] = default;
    }
}

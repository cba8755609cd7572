using System.Buffers.Binary;
using Gazelle.Buffers;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Devices.InMemory;

/// <summary>Counters of one <see cref="UserVbridge"/>.</summary>
public sealed class UserVbridgeCounters
{
    /// <summary>Frames taken off the ports' TX rings.</summary>
    public long FramesIn;
    /// <summary>Frames forwarded to the one port their destination MAC was learned on.</summary>
    public long Unicast;
    /// <summary>Frames flooded to every other port (broadcast, multicast, or unknown/aged destination).</summary>
    public long Flooded;
    /// <summary>Copies handed to ports (a flood to N ports counts N); the port may still drop and count them.</summary>
    public long Delivered;
    /// <summary>Copies a destination port refused (its own counters say why).</summary>
    public long DeliveryRefused;
    /// <summary>Frames dropped because the destination was learned on the port they came from.</summary>
    public long DropSamePort;
    /// <summary>Frames dropped because they were shorter than an Ethernet header.</summary>
    public long DropRunt;
    /// <summary>Source MACs not learned because the table was full (their replies are flooded).</summary>
    public long LearnTableFull;
    /// <summary>Learned MACs that moved to another port.</summary>
    public long Moves;
}

/// <summary>
/// The seed's <b>user-vbridge</b>: a learning L2 switch joining any number of <see cref="UserVeth"/>s.
/// Source MACs are learned into a fixed-size open-addressing table (MAC → port, last seen); unicast to a learned
/// MAC goes to that port only; broadcast, multicast and unknown destinations are flooded to every other port.
/// Entries older than the aging time (if set) count as unknown until the MAC is seen again.
/// <para>
/// Driven by the caller: <see cref="Pump(Instant)"/> drains every port's TX rings in port order and copies each
/// frame into the destination ports' RX pools, then releases the original. Deterministic (fixed port and queue
/// order, no clocks, no randomness), allocation-free after <see cref="AddPort"/>, and not thread-safe (pump from
/// the same thread that drives the attached veths).
/// </para>
/// </summary>
public sealed class UserVbridge
{
    private const int EthHeaderLength = 14;
    private const ulong Occupied = 1UL << 63;

    private UserVeth[] _ports = [];
    private readonly PacketBuffer[] _burst;
    private readonly ulong[] _keys;   // MAC | Occupied, or 0 when empty
    private readonly int[] _portOf;
    private readonly long[] _lastSeen;
    private readonly int _tableMask;
    private readonly int _tableLimit;
    private int _entries;

    /// <param name="macTableCapacity">Most MACs remembered at once.</param>
    /// <param name="agingTime">How long a learned MAC stays valid without being seen; null never ages.</param>
    /// <param name="burst">Frames taken from a port per drain call.</param>
    public UserVbridge(int macTableCapacity = 4096, TimeSpanMicros? agingTime = null, int burst = 32)
    {
        if (macTableCapacity <= 0) throw new ArgumentOutOfRangeException(nameof(macTableCapacity));
        if (burst <= 0) throw new ArgumentOutOfRangeException(nameof(burst));
        int size = 1;
        while (size < macTableCapacity * 2) size <<= 1;
        _keys = new ulong[size];
        _portOf = new int[size];
        _lastSeen = new long[size];
        _tableMask = size - 1;
        _tableLimit = macTableCapacity;
        _burst = new PacketBuffer[burst];
        AgingTime = agingTime;
    }

    public TimeSpanMicros? AgingTime { get; }
    public UserVbridgeCounters Counters { get; } = new();
    public int PortCount => _ports.Length;
    public int LearnedCount => _entries;
    public UserVeth Port(int index) => _ports[index];

    /// <summary>Attaches a veth; returns its port number. Setup-time only (allocates).</summary>
    public int AddPort(UserVeth veth)
    {
        ArgumentNullException.ThrowIfNull(veth);
        if (Array.IndexOf(_ports, veth) >= 0) throw new ArgumentException("veth already attached", nameof(veth));
        var ports = new UserVeth[_ports.Length + 1];
        _ports.CopyTo(ports, 0);
        ports[^1] = veth;
        _ports = ports;
        return ports.Length - 1;
    }

    /// <summary>Forwards everything the ports have transmitted. Returns the number of frames taken in.</summary>
    public int Pump(Instant now)
    {
        int total = 0;
        var burst = _burst.AsSpan();
        for (int p = 0; p < _ports.Length; p++)
        {
            var port = _ports[p];
            port.AdvanceTo(now); // a port with a link model releases the frames that have crossed it by now
            int n;
            while ((n = port.DrainTransmitted(burst)) > 0)
            {
                for (int i = 0; i < n; i++)
                {
                    var f = burst[i];
                    burst[i] = null!;
                    Forward(p, f.Data, now);
                    f.Release();
                }
                total += n;
            }
        }
        return total;
    }

    /// <summary><see cref="Pump(Instant)"/> for callers without a clock (only meaningful without aging).</summary>
    public int Pump() => Pump(Instant.Zero);

    /// <summary>Whether <paramref name="mac"/> is learned (and not aged out at <paramref name="now"/>), and on which port.</summary>
    public bool TryLookup(MacAddress mac, Instant now, out int port)
    {
        int slot = Find(mac.Value);
        if (slot >= 0 && !IsAged(slot, now))
        {
            port = _portOf[slot];
            return true;
        }
        port = -1;
        return false;
    }

    private void Forward(int inPort, ReadOnlySpan<byte> frame, Instant now)
    {
        var c = Counters;
        c.FramesIn++;
        if (frame.Length < EthHeaderLength)
        {
            c.DropRunt++;
            return;
        }
        ulong dst = ReadMac(frame);
        ulong src = ReadMac(frame[6..]);
        if (!IsGroup(src)) Learn(src, inPort, now);

        if (!IsGroup(dst))
        {
            int slot = Find(dst);
            if (slot >= 0 && !IsAged(slot, now))
            {
                int outPort = _portOf[slot];
                if (outPort == inPort)
                {
                    c.DropSamePort++;
                    return;
                }
                c.Unicast++;
                Deliver(outPort, frame);
                return;
            }
        }
        c.Flooded++;
        for (int p = 0; p < _ports.Length; p++)
        {
            if (p != inPort) Deliver(p, frame);
        }
    }

    private void Deliver(int port, ReadOnlySpan<byte> frame)
    {
        if (_ports[port].DeliverFromWire(frame)) Counters.Delivered++;
        else Counters.DeliveryRefused++;
    }

    private static ulong ReadMac(ReadOnlySpan<byte> six) =>
        ((ulong)BinaryPrimitives.ReadUInt16BigEndian(six) << 32) | BinaryPrimitives.ReadUInt32BigEndian(six[2..]);

    /// <summary>Group (broadcast/multicast) bit: LSB of the first octet (IEEE 802).</summary>
    private static bool IsGroup(ulong mac) => ((mac >> 40) & 1) != 0;

    private bool IsAged(int slot, Instant now) =>
        AgingTime is { } age && now.Microseconds - _lastSeen[slot] > age.Value;

    private int Home(ulong mac) => (int)((mac * 0x9E37_79B9_7F4A_7C15UL) >> 40) & _tableMask;

    private int Find(ulong mac)
    {
        ulong key = mac | Occupied;
        for (int i = Home(mac), probes = 0; probes <= _tableMask; i = (i + 1) & _tableMask, probes++)
        {
            ulong k = _keys[i];
            if (k == key) return i;
            if (k == 0) return -1;
        }
        return -1;
    }

    private void Learn(ulong mac, int port, Instant now)
    {
        ulong key = mac | Occupied;
        for (int i = Home(mac); ; i = (i + 1) & _tableMask)
        {
            ulong k = _keys[i];
            if (k == key)
            {
                if (_portOf[i] != port)
                {
                    _portOf[i] = port;
                    Counters.Moves++;
                }
                _lastSeen[i] = now.Microseconds;
                return;
            }
            if (k == 0)
            {
                // Table is at most half full (size >= 2 * capacity), so probing always ends on an empty slot.
                if (_entries == _tableLimit)
                {
                    Counters.LearnTableFull++;
                    return;
                }
                _keys[i] = key;
                _portOf[i] = port;
                _lastSeen[i] = now.Microseconds;
                _entries++;
                return;
            }
        }
    }
}

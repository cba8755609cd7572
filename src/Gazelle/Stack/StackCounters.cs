using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using Gazelle.Link;
using Gazelle.Network;
using Gazelle.Transport.Udp;

namespace Gazelle.Stack;

/// <summary>
/// Every counter of one stack, by layer. Each received frame ends in exactly one counter marked
/// <see cref="FrameOutcomeAttribute"/> (handled, or dropped for a named reason).
/// </summary>
public sealed class StackCounters
{
    public LinkCounters Link { get; } = new();
    public ArpCounters Arp { get; } = new();
    public Ipv4Counters Ip { get; } = new();
    public IcmpCounters Icmp { get; } = new();
    public UdpCounters Udp { get; } = new();
    public TcpInputCounters Tcp { get; } = new();

    /// <summary>Sum of every frame-outcome counter: equals <see cref="LinkCounters.FramesReceived"/>
    /// when no frame went uncounted. (Reflection: for tests and diagnostics, not the packet path.)</summary>
    public long SumOfFrameOutcomes()
    {
        long sum = 0;
        foreach (var (_, value, outcome) in Snapshot()) if (outcome) sum += value;
        return sum;
    }

    /// <summary>All counters as (layer.name, value, is-frame-outcome).</summary>
    public List<(string Name, long Value, bool FrameOutcome)> Snapshot()
    {
        var list = new List<(string, long, bool)>();
        Add(list, "Link", Link);
        Add(list, "Arp", Arp);
        Add(list, "Ip", Ip);
        Add(list, "Icmp", Icmp);
        Add(list, "Udp", Udp);
        Add(list, "Tcp", Tcp);
        return list;
    }

    private static void Add<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields)] T>(
        List<(string, long, bool)> list, string layer, T group) where T : class
    {
        foreach (var f in typeof(T).GetFields(BindingFlags.Public | BindingFlags.Instance))
        {
            if (f.FieldType != typeof(long)) continue;
            list.Add(($"{layer}.{f.Name}", (long)f.GetValue(group)!, f.GetCustomAttribute<FrameOutcomeAttribute>() is not null));
        }
    }

    /// <summary>Non-zero counters, one per line.</summary>
    public override string ToString()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var (name, value, _) in Snapshot()) if (value != 0) sb.Append(name).Append(" = ").Append(value).Append('\n');
        return sb.ToString();
    }
}

/// <summary>TCP segments as seen by the stack before the TCP layer (which keeps its own counters).</summary>
public sealed class TcpInputCounters
{
    /// <summary>Segments handed to the TCP layer.</summary>
    [FrameOutcome] public long Delivered;
    /// <summary>Dropped: header shorter than 20 bytes, bad data offset or malformed options.</summary>
    [FrameOutcome] public long Malformed;
    /// <summary>Dropped: checksum did not verify.</summary>
    [FrameOutcome] public long BadChecksum;
    /// <summary>Dropped: segment sent to a broadcast address (RFC 1122 §4.2.3.10).</summary>
    [FrameOutcome] public long Broadcast;
    /// <summary>Segments TCP asked to send that could not be (no buffer, no route, too big).</summary>
    public long SendFailed;
}

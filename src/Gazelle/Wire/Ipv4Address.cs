using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Gazelle.Wire;

/// <summary>An IPv4 address held in host order (so comparisons and masks are plain integer ops).</summary>
public readonly record struct Ipv4Address(uint Value)
{
    public static readonly Ipv4Address Any = new(0);
    public static readonly Ipv4Address Broadcast = new(0xFFFF_FFFF);

    public Ipv4Address(byte a, byte b, byte c, byte d) : this(((uint)a << 24) | ((uint)b << 16) | ((uint)c << 8) | d) { }

    public static Ipv4Address Read(ReadOnlySpan<byte> fourBytes) => new(BinaryPrimitives.ReadUInt32BigEndian(fourBytes));
    public void Write(Span<byte> fourBytes) => BinaryPrimitives.WriteUInt32BigEndian(fourBytes, Value);

    /// <summary>The address as the kernel's <c>in_addr.s_addr</c> (network order in memory).</summary>
    public uint NetworkOrder => BinaryPrimitives.ReverseEndianness(Value);
    public static Ipv4Address FromNetworkOrder(uint sAddr) => new(BinaryPrimitives.ReverseEndianness(sAddr));

    public bool IsUnspecified => Value == 0;
    public bool IsBroadcast => Value == 0xFFFF_FFFF;
    public bool IsMulticast => (Value >> 28) == 0xE;
    public bool IsLoopback => (Value >> 24) == 127;
    public bool InSubnet(Ipv4Address network, Ipv4Address mask) => (Value & mask.Value) == (network.Value & mask.Value);

    public static bool TryParse(string s, [NotNullWhen(true)] out Ipv4Address? address)
    {
        address = null;
        var parts = s.Split('.');
        if (parts.Length != 4) return false;
        uint v = 0;
        foreach (var p in parts)
        {
            if (p.Length is 0 or > 3 || !byte.TryParse(p, System.Globalization.NumberStyles.None, null, out byte b)) return false;
            v = (v << 8) | b;
        }
        address = new Ipv4Address(v);
        return true;
    }

    public static Ipv4Address Parse(string s) =>
        TryParse(s, out var a) ? a.Value : throw new FormatException($"not an IPv4 address: '{s}'");

    public override string ToString() => $"{Value >> 24}.{(Value >> 16) & 0xFF}.{(Value >> 8) & 0xFF}.{Value & 0xFF}";
}

/// <summary>An IPv4 address and port (port in host order).</summary>
public readonly record struct Ipv4Endpoint(Ipv4Address Address, ushort Port)
{
    public override string ToString() => $"{Address}:{Port}";
}

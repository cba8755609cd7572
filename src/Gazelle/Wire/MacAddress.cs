using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Gazelle.Wire;

/// <summary>A 48-bit Ethernet address in the low bits of a <see cref="ulong"/>, wire order (first byte most significant).</summary>
public readonly record struct MacAddress(ulong Value)
{
    public static readonly MacAddress Broadcast = new(0xFFFF_FFFF_FFFF);
    public static readonly MacAddress Zero = new(0);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static MacAddress Read(ReadOnlySpan<byte> sixBytes) =>
        new(((ulong)BinaryPrimitives.ReadUInt16BigEndian(sixBytes) << 32) | BinaryPrimitives.ReadUInt32BigEndian(sixBytes[2..]));

    public void Write(Span<byte> sixBytes)
    {
        BinaryPrimitives.WriteUInt16BigEndian(sixBytes, (ushort)(Value >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(sixBytes[2..], (uint)Value);
    }

    public bool IsBroadcast => Value == 0xFFFF_FFFF_FFFF;
    /// <summary>Group bit: the least significant bit of the first octet (IEEE 802).</summary>
    public bool IsMulticast => ((Value >> 40) & 1) != 0;

    public static bool TryParse(string s, [NotNullWhen(true)] out MacAddress? mac)
    {
        mac = null;
        var parts = s.Split(':', '-');
        if (parts.Length != 6) return false;
        ulong v = 0;
        foreach (var p in parts)
        {
            if (p.Length != 2 || !byte.TryParse(p, NumberStyles.HexNumber, null, out byte b)) return false;
            v = (v << 8) | b;
        }
        mac = new MacAddress(v);
        return true;
    }

    public static MacAddress Parse(string s) => TryParse(s, out var m) ? m.Value : throw new FormatException($"not a MAC address: '{s}'");

    public override string ToString()
    {
        Span<byte> b = stackalloc byte[6];
        Write(b);
        return $"{b[0]:x2}:{b[1]:x2}:{b[2]:x2}:{b[3]:x2}:{b[4]:x2}:{b[5]:x2}";
    }
}

namespace Gazelle.Tests.Wire;

internal static class WireTestUtil
{
    public static byte[] Hex(string s) => Convert.FromHexString(s.Replace(" ", "", StringComparison.Ordinal));

    /// <summary>RFC 1071 checksum the plain way: big-endian words, one at a time.</summary>
    public static ushort ReferenceChecksum(ReadOnlySpan<byte> data)
    {
        ulong s = 0;
        int i = 0;
        for (; i + 1 < data.Length; i += 2) s += (uint)((data[i] << 8) | data[i + 1]);
        if (i < data.Length) s += (uint)(data[i] << 8);
        while (s >> 16 != 0) s = (s & 0xFFFF) + (s >> 16);
        return (ushort)~s;
    }
}

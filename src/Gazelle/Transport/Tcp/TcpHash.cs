using System.Numerics;
using System.Runtime.CompilerServices;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// A keyed hash (SipHash-2-4 over 64-bit words) used for ISNs (RFC 6528), ephemeral ports (RFC 6056),
/// SYN cookies, timestamp offsets and flow-table buckets. The key comes from the stack's Secret.
/// </summary>
internal readonly struct TcpHash
{
    private readonly ulong _k0, _k1;

    public TcpHash(ulong secret, ulong purpose)
    {
        _k0 = Mix(secret ^ 0x736F_6D65_7073_6575UL ^ purpose);
        _k1 = Mix(secret + 0x646F_7261_6E64_6F6DUL + purpose * 0x9E37_79B9_7F4A_7C15UL);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1; v1 = BitOperations.RotateLeft(v1, 13); v1 ^= v0; v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3; v3 = BitOperations.RotateLeft(v3, 16); v3 ^= v2;
        v0 += v3; v3 = BitOperations.RotateLeft(v3, 21); v3 ^= v0;
        v2 += v1; v1 = BitOperations.RotateLeft(v1, 17); v1 ^= v2; v2 = BitOperations.RotateLeft(v2, 32);
    }

    /// <summary>Hash of two 64-bit words.</summary>
    public ulong Hash(ulong a, ulong b)
    {
        ulong v0 = _k0 ^ 0x736F_6D65_7073_6575UL, v1 = _k1 ^ 0x646F_7261_6E64_6F6DUL;
        ulong v2 = _k0 ^ 0x6C79_6765_6E65_7261UL, v3 = _k1 ^ 0x7465_6462_7974_6573UL;
        v3 ^= a; Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3); v0 ^= a;
        v3 ^= b; Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3); v0 ^= b;
        ulong fin = 16UL << 56;
        v3 ^= fin; Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3); v0 ^= fin;
        v2 ^= 0xFF;
        Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    /// <summary>Hash of a 4-tuple plus an extra word.</summary>
    public ulong Hash(uint localAddr, uint remoteAddr, ushort localPort, ushort remotePort, ulong extra = 0) =>
        Hash(((ulong)localAddr << 32) | remoteAddr, ((ulong)localPort << 48) | ((ulong)remotePort << 32) ^ extra);
}

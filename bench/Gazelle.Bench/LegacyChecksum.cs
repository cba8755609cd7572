using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Gazelle.Bench;

/// <summary>
/// The stack's checksum before the hot-path pass (commit d2c8149), kept here only so that
/// <see cref="ChecksumBenchmarks.Legacy"/> compares the old and the new routine in the same run on a
/// shared, noisy machine: 256-bit loop from 64 bytes, four 256-bit horizontal reductions, then the
/// 128-bit loop with two more. Not used by the stack.
/// </summary>
internal static class LegacyChecksum
{
    public static uint Sum(ReadOnlySpan<byte> data)
    {
        ref byte p = ref MemoryMarshal.GetReference(data);
        int n = data.Length;
        int i = 0;
        ulong acc = 0;
        if (Vector256.IsHardwareAccelerated && n >= 64)
        {
            Vector256<uint> sum0 = Vector256<uint>.Zero, sum1 = Vector256<uint>.Zero;
            Vector256<uint> carry0 = Vector256<uint>.Zero, carry1 = Vector256<uint>.Zero;
            for (; i <= n - 64; i += 64)
            {
                var v0 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, i)).AsUInt32();
                var v1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, i + 32)).AsUInt32();
                sum0 += v0;
                sum1 += v1;
                carry0 -= Vector256.LessThan(sum0, v0);
                carry1 -= Vector256.LessThan(sum1, v1);
            }
            acc += WidenSum(sum0) + WidenSum(sum1) + WidenSum(carry0) + WidenSum(carry1);
        }
        if (Vector128.IsHardwareAccelerated && n - i >= 16)
        {
            Vector128<uint> sum = Vector128<uint>.Zero, carry = Vector128<uint>.Zero;
            for (; i <= n - 16; i += 16)
            {
                var v = Vector128.LoadUnsafe(ref Unsafe.Add(ref p, i)).AsUInt32();
                sum += v;
                carry -= Vector128.LessThan(sum, v);
            }
            acc = AddCarry(acc, WidenSum(sum));
            acc = AddCarry(acc, WidenSum(carry));
        }
        for (; i <= n - 8; i += 8)
            acc = AddCarry(acc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
        if (n - i >= 4)
        {
            acc = AddCarry(acc, Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, i)));
            i += 4;
        }
        if (n - i >= 2)
        {
            acc = AddCarry(acc, Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref p, i)));
            i += 2;
        }
        uint folded = Gazelle.Wire.InternetChecksum.Fold(acc);
        if (BitConverter.IsLittleEndian) folded = BinaryPrimitives.ReverseEndianness((ushort)folded);
        if (i < n) folded = Gazelle.Wire.InternetChecksum.Add(folded, (uint)Unsafe.Add(ref p, i) << 8);
        return folded;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddCarry(ulong acc, ulong v)
    {
        ulong s = acc + v;
        return s + (s < v ? 1UL : 0UL);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong WidenSum(Vector256<uint> v)
    {
        var (lo, hi) = Vector256.Widen(v);
        return Vector256.Sum(lo + hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong WidenSum(Vector128<uint> v)
    {
        var (lo, hi) = Vector128.Widen(v);
        return Vector128.Sum(lo + hi);
    }
}

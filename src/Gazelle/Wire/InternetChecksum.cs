using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Gazelle.Wire;

/// <summary>
/// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of the
/// data taken as big-endian 16-bit words (an odd final byte is padded with a zero byte).
/// Partial sums are carried as <see cref="uint"/> values already folded to 16 bits, in big-endian
/// word order, so they combine with <see cref="Add"/> and finish with <see cref="Finish"/>.
/// </summary>
public static class InternetChecksum
{
    /// <summary>Checksum of <paramref name="data"/> alone: the value to store in a header field.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Sum(data));

    /// <summary>
    /// Below this length the 256-bit loop does not pay for itself on the machines measured (it also folds
    /// four accumulators at the end). ChecksumBenchmarks, bench/micro-results.md run 4 (the same run,
    /// 128-bit only against 256-bit from 64 B): 22 vs 33 ns at 64 B, level at 256 B, 84 vs 101 ns at
    /// 576 B, 281 vs 213 ns at 1500 B, 1441 vs 1307 ns at 9000 B; so 256-bit from 1 KiB on. (Under the JIT:
    /// the NativeAOT library is built for a target without AVX2, where only the 128-bit loops run.)
    /// </summary>
    internal const int Vector256MinLength = 1024;

    /// <summary>Folded (not complemented) sum of <paramref name="data"/> as big-endian words.</summary>
    public static uint Sum(ReadOnlySpan<byte> data) =>
        Sum(data, Vector256.IsHardwareAccelerated ? Vector256MinLength : int.MaxValue, Vector128.IsHardwareAccelerated);

    /// <summary>The sum with the vector widths chosen by the caller (tests exercise every path this way);
    /// <paramref name="useVector256"/> takes the 256-bit loop from 64 bytes on, whatever the threshold.</summary>
    internal static uint Sum(ReadOnlySpan<byte> data, bool useVector256, bool useVector128) =>
        Sum(data, useVector256 ? 64 : int.MaxValue, useVector128);

    /// <summary>The sum taking the 256-bit loop only from <paramref name="vector256From"/> bytes on.</summary>
    internal static uint Sum(ReadOnlySpan<byte> data, int vector256From, bool useVector128)
    {
        // RFC 1071 §2(B): the sum is byte-order independent, so we add native-order words and swap the
        // folded result once at the end. 2^16 ≡ 1 (mod 2^16 - 1), so wider accumulators fold correctly.
        ref byte p = ref MemoryMarshal.GetReference(data);
        int n = data.Length;
        int i = 0;
        ulong acc = 0;

        // Lanes of 32-bit words; a lane's carry-outs are counted separately (subtracting the all-ones
        // compare mask adds 1) and weigh 2^32 ≡ 1, so they fold in at the end.
        Vector128<uint> sum = Vector128<uint>.Zero, carry = Vector128<uint>.Zero;
        bool vectored = false;
        if (n >= Math.Max(vector256From, 64))
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
            // Fold lane-wise into the 128-bit accumulators (adds with carry, no horizontal sums): the
            // 128-bit loop continues from them and one reduction finishes both.
            var s = sum0 + sum1;
            var c = carry0 + carry1 - Vector256.LessThan(s, sum1);
            var upper = s.GetUpper();
            sum = s.GetLower() + upper;
            carry = c.GetLower() + c.GetUpper() - Vector128.LessThan(sum, upper);
            vectored = true;
        }
        if (useVector128 && n - i >= 16)
        {
            for (; i <= n - 16; i += 16)
            {
                var v = Vector128.LoadUnsafe(ref Unsafe.Add(ref p, i)).AsUInt32();
                sum += v;
                carry -= Vector128.LessThan(sum, v);
            }
            vectored = true;
        }
        if (vectored) acc = WidenSum(sum) + WidenSum(carry); // each < 2^34: no overflow
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
        uint folded = Fold(acc);
        if (BitConverter.IsLittleEndian) folded = BinaryPrimitives.ReverseEndianness((ushort)folded);
        if (i < n) folded = Add(folded, (uint)Unsafe.Add(ref p, i) << 8); // odd byte: high half of a BE word
        return folded;
    }

    /// <summary>
    /// Copies <paramref name="source"/> to the start of <paramref name="destination"/> and returns the folded sum
    /// of the bytes (as <see cref="Sum(ReadOnlySpan{byte})"/>) from the same loads: one pass over the data instead
    /// of a sum and then a copy (a TCP segment's payload going into its packet buffer).
    /// </summary>
    public static uint CopyAndSum(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int n = source.Length;
        if ((uint)n > (uint)destination.Length) ThrowHelpers.ArgumentOutOfRange(nameof(destination));
        // 128-bit only: NativeAOT's default target has no AVX2 (the preloaded library never ran a 256-bit
        // loop here), and an x86-64-v3 build measured no gain (592 vs 546 ns at 9000 B, ChecksumBenchmarks).
        if (Vector128.IsHardwareAccelerated && n >= 64) return CopyAndSum128(source, destination);
        source.CopyTo(destination);
        return Sum(destination[..n]);
    }

    /// <summary><see cref="CopyAndSum"/>'s loop: 128-bit vectors; each 32-bit lane's two 16-bit words are added into
    /// separate 32-bit accumulators (the word masked, the word shifted down), so no lane can carry out and no carry is
    /// counted: four cheap operations per 16 bytes instead of an unsigned compare and its fix-up (the app → send ring
    /// copy took twice memmove's time with the compare, perf). A lane gains at most 0xFFFF per step: folded into a
    /// 64-bit total every 2^15 steps, far below overflow.</summary>
    internal static uint CopyAndSum128(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int n = source.Length;
        ref byte src = ref MemoryMarshal.GetReference(source);
        ref byte dst = ref MemoryMarshal.GetReference(destination);
        var low16 = Vector128.Create(0xFFFFu);
        ulong total = 0;
        int i = 0;
        while (i <= n - 32)
        {
            Vector128<uint> lo0 = Vector128<uint>.Zero, hi0 = Vector128<uint>.Zero;
            Vector128<uint> lo1 = Vector128<uint>.Zero, hi1 = Vector128<uint>.Zero;
            int stop = Math.Min(n - 32, i + (32 << 15));
            for (; i <= stop; i += 32)
            {
                var v0 = Vector128.LoadUnsafe(ref Unsafe.Add(ref src, i));
                var v1 = Vector128.LoadUnsafe(ref Unsafe.Add(ref src, i + 16));
                v0.StoreUnsafe(ref Unsafe.Add(ref dst, i));
                v1.StoreUnsafe(ref Unsafe.Add(ref dst, i + 16));
                var w0 = v0.AsUInt32();
                var w1 = v1.AsUInt32();
                lo0 += w0 & low16;
                hi0 += Vector128.ShiftRightLogical(w0, 16);
                lo1 += w1 & low16;
                hi1 += Vector128.ShiftRightLogical(w1, 16);
            }
            total += WidenSum(lo0) + WidenSum(hi0) + WidenSum(lo1) + WidenSum(hi1);
        }
        uint folded = Fold(total);
        if (BitConverter.IsLittleEndian) folded = BinaryPrimitives.ReverseEndianness((ushort)folded);
        if (i == n) return folded; // a multiple of 32 bytes (64-byte datagrams): no tail, no copy call
        source[i..].CopyTo(destination[i..]);
        return Add(folded, Sum(destination[i..n])); // i is a multiple of 32: even
    }

    /// <summary>Sum of a chunk that starts at <paramref name="offset"/> within the checksummed data
    /// (an odd offset swaps the chunk's bytes within words, RFC 1071 §2(B)).</summary>
    public static uint SumAt(ReadOnlySpan<byte> chunk, int offset)
    {
        uint s = Sum(chunk);
        return (offset & 1) == 0 ? s : BinaryPrimitives.ReverseEndianness((ushort)s);
    }

    /// <summary>One's complement addition of two folded sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Add(uint a, uint b)
    {
        uint s = a + b;
        return (s & 0xFFFF) + (s >> 16);
    }

    /// <summary>Complement of a folded sum: the header field value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Finish(uint sum) => (ushort)~Fold(sum);

    /// <summary>IPv4 pseudo-header sum (RFC 9293 §3.1, RFC 768): source, destination, zero, protocol,
    /// upper-layer length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PseudoHeaderSum(Ipv4Address source, Ipv4Address destination, byte protocol, int length)
    {
        ulong s = (source.Value >> 16) + (source.Value & 0xFFFF)
                + (destination.Value >> 16) + (destination.Value & 0xFFFF)
                + protocol + (uint)length;
        return Fold(s);
    }

    /// <summary>Incremental update of a checksum field when one 16-bit word changes from
    /// <paramref name="oldWord"/> to <paramref name="newWord"/> (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).</summary>
    public static ushort Update(ushort checksum, ushort oldWord, ushort newWord)
    {
        uint s = (uint)(ushort)~checksum + (ushort)~oldWord + newWord;
        return (ushort)~Fold(s);
    }

    /// <summary>Folds a wide one's complement sum to 16 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Fold(ulong s)
    {
        s = (s & 0xFFFF_FFFF) + (s >> 32);
        s = (s & 0xFFFF_FFFF) + (s >> 32);
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return (uint)s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddCarry(ulong acc, ulong v)
    {
        ulong s = acc + v;
        return s + (s < v ? 1UL : 0UL); // end-around carry: 2^64 ≡ 1
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong WidenSum(Vector128<uint> v)
    {
        var (lo, hi) = Vector128.Widen(v);
        return Vector128.Sum(lo + hi);
    }
}

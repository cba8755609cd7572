using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Gazelle.Devices.Rss;

/// <summary>
/// The Toeplitz hash that NICs use for receive-side scaling, bit-identical to DPDK's <c>rte_softrss</c>
/// (rte_thash.h) for the same key. The input is the tuple as <c>rte_softrss</c> takes it: 32-bit words in
/// host order — source address, destination address, then <c>source port &lt;&lt; 16 | destination port</c> —
/// which is the same bit stream as the header fields in network byte order.
/// <para>
/// Table-driven: for every input byte position the constructor precomputes the XOR of the key windows of all
/// 256 byte values, so a 12-byte IPv4 4-tuple costs 12 table loads and XORs and no allocation. A hasher is
/// immutable after construction and may be shared between threads.
/// </para>
/// </summary>
public sealed class ToeplitzHash
{
    /// <summary>The 40-byte key of Microsoft's RSS specification, also the default key of many NICs and the key
    /// under which the published RSS verification vectors are computed.</summary>
    public static ReadOnlySpan<byte> MicrosoftKey =>
    [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
        0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
        0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
        0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
        0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    /// <summary>Bytes of a TCP/UDP-over-IPv4 tuple (addresses and ports).</summary>
    public const int Ipv4L4TupleBytes = 12;
    /// <summary>Bytes of an IPv4 address pair.</summary>
    public const int Ipv4L3TupleBytes = 8;

    // _table[p * 256 + v]: hash contribution of byte value v at input byte position p.
    private readonly uint[] _table;
    private readonly byte[] _key;

    /// <summary>Builds a hasher for <paramref name="key"/> (at least 8 bytes; the input may be up to
    /// <c>key.Length - 4</c> bytes long, 36 for the usual 40-byte key).</summary>
    public ToeplitzHash(ReadOnlySpan<byte> key)
    {
        if (key.Length < 8) throw new ArgumentException("an RSS key has at least 8 bytes", nameof(key));
        _key = key.ToArray();
        MaxInputBytes = key.Length - 4;
        _table = new uint[MaxInputBytes * 256];
        for (int p = 0; p < MaxInputBytes; p++)
        {
            for (int bit = 0; bit < 8; bit++)
            {
                uint window = KeyWindow(key, p * 8 + bit);
                // Every byte value with this bit set (bit 0 is the byte's most significant bit) gets the window.
                int mask = 0x80 >> bit;
                for (int v = 0; v < 256; v++)
                {
                    if ((v & mask) != 0) _table[p * 256 + v] ^= window;
                }
            }
        }
    }

    /// <summary>A hasher with <see cref="MicrosoftKey"/>.</summary>
    public static ToeplitzHash CreateDefault() => new(MicrosoftKey);

    /// <summary>Longest input the key covers.</summary>
    public int MaxInputBytes { get; }
    /// <summary>The key (a copy).</summary>
    public ReadOnlySpan<byte> Key => _key;

    /// <summary>Hash of a byte stream (header fields in network order, as the NIC sees them).</summary>
    public uint Hash(ReadOnlySpan<byte> input)
    {
        if (input.Length > MaxInputBytes) ThrowHelpers.ArgumentOutOfRange(nameof(input));
        uint h = 0;
        uint[] t = _table;
        for (int p = 0; p < input.Length; p++) h ^= t[(p << 8) | input[p]];
        return h;
    }

    /// <summary>Hash of an IPv4 address pair (host-order addresses), as <c>rte_softrss</c> with
    /// <c>RTE_THASH_V4_L3_LEN</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint HashIpv4(uint sourceAddress, uint destinationAddress)
    {
        uint[] t = _table;
        if (t.Length < Ipv4L3TupleBytes * 256) ThrowHelpers.InvalidOperation("RSS key too short for IPv4");
        return Word(t, 0, sourceAddress) ^ Word(t, 4, destinationAddress);
    }

    /// <summary>Hash of a TCP/UDP-over-IPv4 4-tuple (host-order values), as <c>rte_softrss</c> with
    /// <c>RTE_THASH_V4_L4_LEN</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint HashIpv4(uint sourceAddress, uint destinationAddress, ushort sourcePort, ushort destinationPort)
    {
        uint[] t = _table;
        if (t.Length < Ipv4L4TupleBytes * 256) ThrowHelpers.InvalidOperation("RSS key too short for IPv4 L4");
        return Word(t, 0, sourceAddress) ^ Word(t, 4, destinationAddress)
            ^ Word(t, 8, ((uint)sourcePort << 16) | destinationPort);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Word(uint[] t, int bytePos, uint w)
    {
        uint p = (uint)bytePos << 8;
        return t[p | (w >> 24)]
            ^ t[(p + 256) | ((w >> 16) & 0xFF)]
            ^ t[(p + 512) | ((w >> 8) & 0xFF)]
            ^ t[(p + 768) | (w & 0xFF)];
    }

    /// <summary>The 32 key bits starting at bit <paramref name="bitOffset"/> (bit 0 = MSB of key[0]); key bits
    /// past the end read as zero.</summary>
    private static uint KeyWindow(ReadOnlySpan<byte> key, int bitOffset)
    {
        int byteOffset = bitOffset >> 3;
        ulong v = 0;
        for (int i = 0; i < 8; i++)
        {
            int k = byteOffset + i;
            v = (v << 8) | (k < key.Length ? key[k] : 0u);
        }
        return (uint)((v << (bitOffset & 7)) >> 32);
    }

    /// <summary>
    /// The straightforward bit-by-bit algorithm, written the way <c>rte_softrss</c> defines it: for every set bit
    /// <c>i</c> (counted from the least significant) of host-order word <c>j</c>, XOR in the 32 key bits that start
    /// at bit <c>32j + 31 - i</c>. Slow; the reference the table-driven <see cref="Hash"/> is checked against.
    /// </summary>
    public static uint SoftRss(ReadOnlySpan<uint> tuple, ReadOnlySpan<byte> key)
    {
        if (key.Length < (tuple.Length + 1) * 4) ThrowHelpers.ArgumentOutOfRange(nameof(key));
        uint ret = 0;
        for (int j = 0; j < tuple.Length; j++)
        {
            uint k0 = BinaryPrimitives.ReadUInt32BigEndian(key[(j * 4)..]);
            uint k1 = BinaryPrimitives.ReadUInt32BigEndian(key[((j + 1) * 4)..]);
            for (uint map = tuple[j]; map != 0; map &= map - 1)
            {
                int i = System.Numerics.BitOperations.TrailingZeroCount(map);
                ret ^= (k0 << (31 - i)) | (uint)((ulong)k1 >> (i + 1));
            }
        }
        return ret;
    }
}

/// <summary>
/// The RSS redirection table (RETA): the low bits of the hash index a table of queue numbers, as NICs do
/// (e.g. 128 entries indexed by the hash's 7 low bits). Filled round-robin over the queues by default, like
/// DPDK's default RETA. Not thread-safe to modify; lookups are pure reads.
/// </summary>
public sealed class RedirectionTable
{
    private readonly ushort[] _entries;
    private readonly uint _mask;

    /// <summary>A table of <paramref name="size"/> entries (a power of two) spread over <paramref name="queueCount"/> queues.</summary>
    public RedirectionTable(int queueCount, int size = 128)
    {
        if (queueCount is <= 0 or > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(queueCount));
        if (size <= 0 || (size & (size - 1)) != 0) throw new ArgumentOutOfRangeException(nameof(size), "RETA size must be a power of two");
        _entries = new ushort[size];
        _mask = (uint)size - 1;
        QueueCount = queueCount;
        for (int i = 0; i < size; i++) _entries[i] = (ushort)(i % queueCount);
    }

    public int Size => _entries.Length;
    public int QueueCount { get; }

    /// <summary>The queue for a hash: <c>reta[hash &amp; (size - 1)]</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int QueueOf(uint hash) => _entries[hash & _mask];

    /// <summary>
    /// The queue a NIC with this table and <paramref name="hasher"/>'s key delivers a TCP/UDP-over-IPv4 flow to,
    /// as seen in the frames' own direction (source = the sender). A stack choosing an ephemeral port for an
    /// active open can ask with the reply's tuple (remote as source) to keep the connection on its own queue.
    /// </summary>
    public int QueueOfFlow(ToeplitzHash hasher, Gazelle.Wire.Ipv4Address source, Gazelle.Wire.Ipv4Address destination,
        ushort sourcePort, ushort destinationPort) =>
        QueueOf(hasher.HashIpv4(source.Value, destination.Value, sourcePort, destinationPort));

    /// <summary>Points one entry at a queue (e.g. to steer flows away from a stopped stack).</summary>
    public void Set(int index, int queue)
    {
        if ((uint)index >= (uint)_entries.Length) ThrowHelpers.ArgumentOutOfRange(nameof(index));
        if ((uint)queue >= (uint)QueueCount) ThrowHelpers.ArgumentOutOfRange(nameof(queue));
        _entries[index] = (ushort)queue;
    }

    public int this[int index] => _entries[index];
}

using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// 4-tuple → connection index: open addressing with linear probing and backward-shift deletion (no
/// tombstones), keyed hash so remote peers cannot aim collisions. Sized once; never allocates.
/// <para>Layout: one array of 16-byte entries (tuple and index together), four to a cache line, so a
/// lookup that hits its home slot touches one line (the former three parallel arrays touched three).</para>
/// <para>Hash: Thorup's pair-multiply-shift over the three 32-bit words of the tuple with four 64-bit keys
/// drawn from the stack's secret, keeping the top bits ("High speed hashing for integers and strings",
/// 2015, §3.5: strongly universal, so any two distinct tuples share a home with probability ≤ 2/capacity
/// whatever tuples an attacker picks without knowing the keys). Two multiplications against SipHash-2-4's
/// ten rounds (FlowLookup 67 → see bench/micro-results.md). Like Linux's established-socket hash (a jhash
/// keyed by a boot-time secret), it is not a PRF: an attacker who could time lookups adaptively might
/// learn key bits, but the table holds at most MaxTcpConnections tuples of which the attacker creates
/// only those the listener accepts, so a probe run is bounded by the table's load (≤ 1/2) in any case.</para>
/// </summary>
internal sealed class FlowTable
{
    [StructLayout(LayoutKind.Sequential, Size = 16)]
    private struct Entry
    {
        public ulong A;     // local addr << 32 | remote addr
        public uint B;      // local port << 16 | remote port
        public int Index;   // connection index, -1 = empty
    }

    private readonly Entry[] _entries;
    private readonly int _mask;
    private readonly int _shift;
    private readonly ulong _k0, _k1, _k2, _k3;
    public int Count { get; private set; }

    public FlowTable(int maxEntries, ulong secret)
    {
        int cap = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, maxEntries * 2));
        _entries = new Entry[cap];
        for (int i = 0; i < cap; i++) _entries[i].Index = -1;
        _mask = cap - 1;
        _shift = 64 - BitOperations.Log2((uint)cap);
        // Keys: a SipHash of the secret per key (control path); odd is not required by the family.
        var kdf = new TcpHash(secret, 0xF10E);
        _k0 = kdf.Hash(0, 0); _k1 = kdf.Hash(1, 0); _k2 = kdf.Hash(2, 0); _k3 = kdf.Hash(3, 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(ulong a, uint b)
    {
        // Pair-multiply-shift: ((x0 + k0)(x1 + k1) + (x2 + k2)) mod 2^64, top bits. x2 is paired with a
        // keyed constant (k3) so each 32-bit word enters through a product.
        ulong h = ((uint)a + _k0) * ((a >> 32) + _k1) + (b + _k2) * _k3;
        return (int)(h >> _shift);
    }

    private static ulong KeyA(Ipv4Address local, Ipv4Address remote) => ((ulong)local.Value << 32) | remote.Value;
    private static uint KeyB(ushort localPort, ushort remotePort) => ((uint)localPort << 16) | remotePort;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref Entry At(int i) => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_entries), i); // i is masked

    public int Find(Ipv4Address local, ushort localPort, Ipv4Address remote, ushort remotePort)
    {
        ulong a = KeyA(local, remote);
        uint b = KeyB(localPort, remotePort);
        int i = Home(a, b);
        while (true)
        {
            ref Entry e = ref At(i);
            if (e.Index < 0) return -1;
            if (e.A == a && e.B == b) return e.Index;
            i = (i + 1) & _mask;
        }
    }

    /// <summary>Adds a tuple; false if present or full.</summary>
    public bool Add(Ipv4Address local, ushort localPort, Ipv4Address remote, ushort remotePort, int index)
    {
        if (Count >= _mask) return false;
        ulong a = KeyA(local, remote);
        uint b = KeyB(localPort, remotePort);
        int i = Home(a, b);
        while (At(i).Index >= 0)
        {
            if (At(i).A == a && At(i).B == b) return false;
            i = (i + 1) & _mask;
        }
        At(i) = new Entry { A = a, B = b, Index = index };
        Count++;
        return true;
    }

    public bool Remove(Ipv4Address local, ushort localPort, Ipv4Address remote, ushort remotePort)
    {
        ulong a = KeyA(local, remote);
        uint b = KeyB(localPort, remotePort);
        int i = Home(a, b);
        while (true)
        {
            if (At(i).Index < 0) return false;
            if (At(i).A == a && At(i).B == b) break;
            i = (i + 1) & _mask;
        }
        // Backward-shift deletion: move later members of the probe run into the hole.
        int hole = i;
        int j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            if (At(j).Index < 0) break;
            int home = Home(At(j).A, At(j).B);
            // Move j into the hole if its home is not cyclically within (hole, j].
            bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (!between)
            {
                At(hole) = At(j);
                hole = j;
            }
        }
        At(hole).Index = -1;
        Count--;
        return true;
    }
}

using System.Numerics;
using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// 4-tuple → connection index: open addressing with linear probing and backward-shift deletion (no
/// tombstones), keyed hash so remote peers cannot aim collisions. Sized once; never allocates.
/// </summary>
internal sealed class FlowTable
{
    private readonly int[] _slots;      // connection index, -1 = empty
    private readonly ulong[] _keysA;    // local addr << 32 | remote addr
    private readonly uint[] _keysB;     // local port << 16 | remote port
    private readonly int _mask;
    private readonly TcpHash _hash;
    public int Count { get; private set; }

    public FlowTable(int maxEntries, ulong secret)
    {
        int cap = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, maxEntries * 2));
        _slots = new int[cap];
        _keysA = new ulong[cap];
        _keysB = new uint[cap];
        Array.Fill(_slots, -1);
        _mask = cap - 1;
        _hash = new TcpHash(secret, 0xF10E);
    }

    private int Home(ulong a, uint b) => (int)(_hash.Hash(a, b) & (ulong)_mask);

    private static ulong KeyA(Ipv4Address local, Ipv4Address remote) => ((ulong)local.Value << 32) | remote.Value;
    private static uint KeyB(ushort localPort, ushort remotePort) => ((uint)localPort << 16) | remotePort;

    public int Find(Ipv4Address local, ushort localPort, Ipv4Address remote, ushort remotePort)
    {
        ulong a = KeyA(local, remote);
        uint b = KeyB(localPort, remotePort);
        int i = Home(a, b);
        while (true)
        {
            int s = _slots[i];
            if (s < 0) return -1;
            if (_keysA[i] == a && _keysB[i] == b) return s;
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
        while (_slots[i] >= 0)
        {
            if (_keysA[i] == a && _keysB[i] == b) return false;
            i = (i + 1) & _mask;
        }
        _slots[i] = index; _keysA[i] = a; _keysB[i] = b;
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
            if (_slots[i] < 0) return false;
            if (_keysA[i] == a && _keysB[i] == b) break;
            i = (i + 1) & _mask;
        }
        // Backward-shift deletion: move later members of the probe run into the hole.
        int hole = i;
        int j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            if (_slots[j] < 0) break;
            int home = Home(_keysA[j], _keysB[j]);
            // Move j into the hole if its home is not cyclically within (hole, j].
            bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (!between)
            {
                _slots[hole] = _slots[j]; _keysA[hole] = _keysA[j]; _keysB[hole] = _keysB[j];
                hole = j;
            }
        }
        _slots[hole] = -1;
        Count--;
        return true;
    }
}

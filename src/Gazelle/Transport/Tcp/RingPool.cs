using System.Numerics;
using Gazelle.Time;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// The send and receive rings of one stack's connections, by power-of-two size class (4 KB .. 1 GB).
/// A connection rents a ring when it first has bytes to hold, doubles it as it fills (up to its
/// SO_SNDBUF/SO_RCVBUF) and returns it once it has been empty for <see cref="Tcb.RingKeepMicros"/>, so memory follows the bytes queued,
/// not the number of connections (4096 idle connections with 256 KB buffers hold nothing, not 2 GB).
/// Returned rings are kept for reuse up to <see cref="LimitBytes"/>; beyond that they go to the GC.
/// Renting a pooled ring and returning one allocate nothing.
/// </summary>
internal sealed class RingPool
{
    public const int MinShift = 12;           // 4 KB
    public const int MaxShift = 30;           // 1 GB, the tcp_send_buffer/tcp_recv_buffer ceiling
    private const int MaxPerClass = 1024;

    private readonly byte[]?[][] _free = new byte[]?[MaxShift - MinShift + 1][];
    private readonly int[] _count = new int[MaxShift - MinShift + 1];

    public RingPool(long limitBytes)
    {
        LimitBytes = Math.Max(0, limitBytes);
        for (int c = 0; c < _free.Length; c++)
            _free[c] = new byte[]?[(int)Math.Clamp(LimitBytes >> (MinShift + c), 0, MaxPerClass)];
    }

    /// <summary>The stack's time as of its last poll or tick (TcpLayer sets it): a connection whose ring empties
    /// keeps it until this plus <see cref="Tcb.RingKeepMicros"/>.</summary>
    public Instant Now;
    /// <summary>The earliest <see cref="Tcb.RingIdleDeadline"/> armed since the layer last folded it into its
    /// timers (a ring can empty in a call that runs no timer code, recv()).</summary>
    public Instant EarliestIdleDeadline = Instant.Never;

    /// <summary>Bytes of returned rings kept for reuse at most.</summary>
    public long LimitBytes { get; }
    /// <summary>Bytes of rings held by connections now.</summary>
    public long InUseBytes { get; private set; }
    /// <summary>Bytes of rings kept for reuse now.</summary>
    public long PooledBytes { get; private set; }
    /// <summary>Rings allocated from the GC heap (the pool had none of the size).</summary>
    public long Allocations { get; private set; }
    /// <summary>Returned rings given to the GC because the pool was at its limit.</summary>
    public long Released { get; private set; }

    /// <summary>The ring size that holds <paramref name="bytes"/>.</summary>
    public static int SizeFor(int bytes) =>
        1 << Math.Clamp(BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)Math.Max(bytes, 1))), MinShift, MaxShift);

    public byte[] Rent(int minBytes)
    {
        int size = SizeFor(minBytes);
        int c = BitOperations.Log2((uint)size) - MinShift;
        byte[] ring;
        if (_count[c] > 0)
        {
            ref var slot = ref _free[c][--_count[c]];
            ring = slot!;
            slot = null;
            PooledBytes -= size;
        }
        else
        {
            // Pinned (the pinned object heap): a segment's payload may go to the device by reference to its ring
            // (ITcpOutput.Send), so a ring must never move. Uninitialised: only bytes written are ever read.
            ring = GC.AllocateUninitializedArray<byte>(size, pinned: true);
            Allocations++;
        }
        InUseBytes += size;
        return ring;
    }

    /// <summary>Runs before a ring comes back (to be reused or dropped): the stack transmits frames whose payload still
    /// points into a ring (<see cref="ITcpOutput.Send"/>) first. Set once, when the stack is built.</summary>
    public Action? BeforeReturn { get; set; }

    public void Return(byte[] ring)
    {
        if (ring.Length == 0) return;
        BeforeReturn?.Invoke();
        InUseBytes -= ring.Length;
        int c = BitOperations.Log2((uint)ring.Length) - MinShift;
        if (PooledBytes + ring.Length <= LimitBytes && _count[c] < _free[c].Length)
        {
            _free[c][_count[c]++] = ring;
            PooledBytes += ring.Length;
        }
        else Released++;
    }
}

using Gazelle.Buffers;
using Gazelle.Devices;
using Gazelle.Wire;

namespace Gazelle.Tests.Stack;

/// <summary>
/// A minimal in-memory NIC for stack tests: one queue, its own pool; frames it transmits go to the
/// peer's receive queue (ownership moves with them) or, without a peer, to <see cref="Sent"/>.
/// </summary>
internal sealed class TestNic : INic, IDisposable
{
    private readonly NativePacketPool _pool;

    public TestNic(MacAddress mac, int poolSize = 512, int mtu = 1500)
    {
        MacAddress = mac;
        Mtu = mtu;
        _pool = new NativePacketPool(poolSize);
    }

    public MacAddress MacAddress { get; }
    public int Mtu { get; }
    public int QueueCount => 1;
    public NicOffloads Offloads { get; init; } = NicOffloads.None;
    public IPacketPool TxPool => _pool;
    public NativePacketPool Pool => _pool;
    public TestNic? Peer { get; set; }
    public Queue<PacketBuffer> RxQueue { get; } = new(4096);
    public Queue<PacketBuffer> Sent { get; } = new(4096);
    /// <summary>When set, Transmit accepts at most this many frames per call.</summary>
    public int? TransmitLimit { get; set; }

    public static (TestNic A, TestNic B) Pair(MacAddress a, MacAddress b, int poolSize = 512)
    {
        var x = new TestNic(a, poolSize);
        var y = new TestNic(b, poolSize);
        x.Peer = y;
        y.Peer = x;
        return (x, y);
    }

    public int Receive(int queue, Span<PacketBuffer> frames)
    {
        int n = 0;
        while (n < frames.Length && RxQueue.TryDequeue(out var b)) frames[n++] = b;
        return n;
    }

    public int Transmit(int queue, ReadOnlySpan<PacketBuffer> frames)
    {
        int n = Math.Min(frames.Length, TransmitLimit ?? int.MaxValue);
        for (int i = 0; i < n; i++)
        {
            if (Peer is not null) Peer.RxQueue.Enqueue(frames[i]);
            else Sent.Enqueue(frames[i]);
        }
        return n;
    }

    /// <summary>Queues a copy of <paramref name="frame"/> for the stack to receive.</summary>
    public void Inject(ReadOnlySpan<byte> frame)
    {
        var b = _pool.Rent() ?? throw new InvalidOperationException("test pool exhausted");
        b.Reset(0);
        frame.CopyTo(b.Append(frame.Length));
        RxQueue.Enqueue(b);
    }

    /// <summary>Takes the next transmitted frame as a byte array (null if none) and releases its buffer.</summary>
    public byte[]? TakeSent()
    {
        if (!Sent.TryDequeue(out var b)) return null;
        var bytes = b.Data.ToArray();
        b.Release();
        return bytes;
    }

    public void DrainAll()
    {
        while (RxQueue.TryDequeue(out var b)) b.Release();
        while (Sent.TryDequeue(out var b)) b.Release();
    }

    public void Dispose()
    {
        DrainAll();
        _pool.Dispose();
    }
}

using Gazelle.Buffers;
using Gazelle.Devices;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Stack;

/// <summary>
/// A decorator for fuzzing: frames <see cref="Inject"/>ed (copied into its own pool) are handed to the stack
/// ahead of whatever the wrapped device received, so the stack processes them first in its next poll, in the
/// state the injector saw. Transmit and timing go to the wrapped device untouched.
/// </summary>
internal sealed class InjectingNic : INic, ITimedNic, IDisposable
{
    private readonly INic _inner;
    private readonly NativePacketPool _pool;
    private readonly Queue<PacketBuffer> _injected;

    public InjectingNic(INic inner, int poolSize = 256)
    {
        _inner = inner;
        _pool = new NativePacketPool(poolSize);
        _injected = new Queue<PacketBuffer>(poolSize);
    }

    public NativePacketPool Pool => _pool;
    public int Pending => _injected.Count;
    public MacAddress MacAddress => _inner.MacAddress;
    public int Mtu => _inner.Mtu;
    public int QueueCount => _inner.QueueCount;
    public NicOffloads Offloads => _inner.Offloads;
    public IPacketPool TxPool => _inner.TxPool;

    public void Inject(ReadOnlySpan<byte> frame)
    {
        var b = _pool.Rent() ?? throw new InvalidOperationException("injection pool exhausted");
        b.Reset(0);
        frame.CopyTo(b.Append(frame.Length));
        _injected.Enqueue(b);
    }

    public int Receive(int queue, Span<PacketBuffer> frames)
    {
        int n = 0;
        while (n < frames.Length && _injected.TryDequeue(out var b)) frames[n++] = b;
        if (n < frames.Length) n += _inner.Receive(queue, frames[n..]);
        return n;
    }

    public int Transmit(int queue, ReadOnlySpan<PacketBuffer> frames) => _inner.Transmit(queue, frames);

    public void AdvanceTo(Instant now)
    {
        if (_inner is ITimedNic t) t.AdvanceTo(now);
    }

    public Instant NextDeadline => _inner is ITimedNic t ? t.NextDeadline : Instant.Never;

    public void Dispose()
    {
        while (_injected.TryDequeue(out var b)) b.Release();
        _pool.Dispose();
    }
}

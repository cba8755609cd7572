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

    private int _vlan = -1;
    private Random? _tagRandom;

    /// <summary>From now on, injected frames get an 802.1Q tag as a VLAN's would: mostly <paramref name="vlanId"/>
    /// (any priority), one in twenty another id, one in twenty none (which a stack on the VLAN must drop).</summary>
    public void TagWith(int vlanId, Random rng)
    {
        _vlan = vlanId;
        _tagRandom = rng;
    }

    /// <param name="ours">With <see cref="TagWith"/>: always tag with the VLAN's id.</param>
    public void Inject(ReadOnlySpan<byte> frame, bool ours = false)
    {
        var b = _pool.Rent() ?? throw new InvalidOperationException("injection pool exhausted");
        b.Reset(0);
        int r = _vlan > 0 && frame.Length >= 12 ? (ours ? 0 : _tagRandom!.Next(20)) : 19;
        if (r == 19)
        {
            frame.CopyTo(b.Append(frame.Length));
        }
        else
        {
            int id = r == 18 ? (_vlan == 4094 ? 1 : _vlan + 1) : _vlan;
            var t = b.Append(frame.Length + 4);
            frame[..12].CopyTo(t);
            t[12] = 0x81; t[13] = 0x00;
            t[14] = (byte)((_tagRandom!.Next(8) << 5) | (id >> 8)); t[15] = (byte)id;
            frame[12..].CopyTo(t[16..]);
        }
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

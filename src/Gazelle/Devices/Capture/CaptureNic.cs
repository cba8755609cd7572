using Gazelle.Buffers;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Devices.Capture;

/// <summary>
/// A decorator that records every frame crossing a device, both directions, into a <see cref="PcapWriter"/>:
/// received frames as the wrapped device hands them up, transmitted frames once the wrapped device has taken
/// them (frames it refuses are not recorded, since the caller will offer them again). Timestamps come from the
/// instant passed to <see cref="AdvanceTo"/> (forwarded to the wrapped device if it is an <see cref="ITimedNic"/>).
/// Frames are recorded right after the wrapped device accepted them, while their memory is still the caller's
/// and unchanged (a DPDK TX burst only frees buffers on a later burst). Allocation-free; not thread-safe; does
/// not dispose the wrapped device or the writer.
/// </summary>
public sealed class CaptureNic : INic, ITimedNic
{
    private readonly INic _inner;
    private Instant _now;

    public CaptureNic(INic inner, PcapWriter writer)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(writer);
        _inner = inner;
        Writer = writer;
    }

    public INic Inner => _inner;
    public PcapWriter Writer { get; }
    /// <summary>When false, frames pass without being recorded.</summary>
    public bool Enabled { get; set; } = true;

    public MacAddress MacAddress => _inner.MacAddress;
    public int Mtu => _inner.Mtu;
    public int QueueCount => _inner.QueueCount;
    public NicOffloads Offloads => _inner.Offloads & ~NicOffloads.TxPayloadByReference; // it writes whole frames
    public IPacketPool TxPool => _inner.TxPool;
    public Instant NextDeadline => _inner is ITimedNic t ? t.NextDeadline : Instant.Never;

    public void AdvanceTo(Instant now)
    {
        _now = now;
        if (_inner is ITimedNic t) t.AdvanceTo(now);
    }

    public int Receive(int queue, Span<PacketBuffer> frames)
    {
        int n = _inner.Receive(queue, frames);
        if (Enabled)
        {
            for (int i = 0; i < n; i++) Writer.Write(_now, frames[i].Data);
        }
        return n;
    }

    public int Transmit(int queue, ReadOnlySpan<PacketBuffer> frames)
    {
        int n = _inner.Transmit(queue, frames);
        if (Enabled)
        {
            for (int i = 0; i < n; i++) Writer.Write(_now, frames[i].Data);
        }
        return n;
    }
}

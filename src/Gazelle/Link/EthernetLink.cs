using Gazelle.Buffers;
using Gazelle.Devices;
using Gazelle.Wire;

namespace Gazelle.Link;

/// <summary>
/// The Ethernet side of one stack on one NIC queue: receives bursts, prepends Ethernet headers in the
/// buffers' headroom (with an IEEE 802.1Q tag when the stack runs on a VLAN), and batches frames for transmission.
/// </summary>
public sealed class EthernetLink
{
    public const int BurstSize = 32;

    private readonly INic _nic;
    /// <summary>The device's transmit pool, looked up once (two interface calls per rent otherwise).</summary>
    private readonly IPacketPool _txPool;
    private readonly int _queue;
    private readonly PacketBuffer[] _tx = new PacketBuffer[BurstSize];
    private int _txCount;
    private readonly int _header;

    /// <param name="vlanId">802.1Q VLAN id 1..4094 to tag every frame with, or -1 for untagged frames.</param>
    public EthernetLink(INic nic, int queue, LinkCounters counters, int vlanId = -1)
    {
        if ((uint)queue >= (uint)nic.QueueCount) throw new ArgumentOutOfRangeException(nameof(queue));
        if (vlanId != -1 && vlanId is < 1 or > 4094) throw new ArgumentOutOfRangeException(nameof(vlanId), "a VLAN id is 1..4094 (or -1 for none)");
        VlanId = vlanId;
        _header = vlanId < 0 ? EthernetFrame.HeaderLength : EthernetFrame.TaggedHeaderLength;
        _nic = nic;
        _txPool = nic.TxPool;
        _queue = queue;
        Counters = counters;
        Mac = nic.MacAddress;
        // The largest L3 packet a single transmit buffer holds after the Ethernet header.
        int room = _txPool.Rent() is { } probe ? ReleaseReturning(probe, probe.Tailroom) : nic.Mtu;
        Mtu = Math.Min(nic.Mtu, room);
        TxPayloadByReference = (nic.Offloads & NicOffloads.TxPayloadByReference) != 0;
    }

    /// <summary>The device copies frames out while it transmits: a frame may carry its payload by reference
    /// (<see cref="PacketBuffer.ExternalData1"/>) to memory left unchanged until <see cref="Flush"/> returns.</summary>
    public bool TxPayloadByReference { get; }

    private static int ReleaseReturning(PacketBuffer b, int value)
    {
        b.Release();
        return value;
    }

    public LinkCounters Counters { get; }
    /// <summary>The 802.1Q VLAN id frames are tagged with and must carry, or -1 (untagged).</summary>
    public int VlanId { get; }
    public MacAddress Mac { get; }
    /// <summary>Largest IP packet (L3 bytes) sent in one frame.</summary>
    public int Mtu { get; }
    public IPacketPool TxPool => _txPool;

    public int Receive(Span<PacketBuffer> frames)
    {
        int n = _nic.Receive(_queue, frames);
        Counters.FramesReceived += n;
        return n;
    }

    /// <summary>Rents an empty transmit buffer (null, counted, when the pool is exhausted).</summary>
    public PacketBuffer? RentTx()
    {
        var b = _txPool.Rent();
        if (b is null) Counters.TxNoBuffer++;
        return b;
    }

    /// <summary>Prepends the Ethernet header to <paramref name="payload"/> and queues it; takes ownership.</summary>
    public void Send(PacketBuffer payload, MacAddress destination, ushort etherType)
    {
        // Priority code point 0 (best effort): the tag only carries the VLAN id (IEEE 802.1Q §9.6).
        new EthernetRepr(destination, Mac, etherType, (ushort)Math.Max(VlanId, 0), VlanId >= 0).Emit(payload.Prepend(_header));
        _tx[_txCount++] = payload;
        if (_txCount == _tx.Length) Flush();
    }

    /// <summary>Bytes of the Ethernet header this link writes (with the 802.1Q tag on a VLAN).</summary>
    public int HeaderLength => _header;

    /// <summary>Writes the header <see cref="Send"/> would prepend into <paramref name="into"/> (<see cref="HeaderLength"/> bytes).</summary>
    public void EmitHeader(Span<byte> into, MacAddress destination, ushort etherType) =>
        new EthernetRepr(destination, Mac, etherType, (ushort)Math.Max(VlanId, 0), VlanId >= 0).Emit(into[.._header]);

    /// <summary>Queues a frame that already carries its Ethernet header (<see cref="EmitHeader"/>); takes ownership.</summary>
    public void SendFrame(PacketBuffer frame)
    {
        if (frame.ExternalLength1 != 0) _txReferencing = true;
        _tx[_txCount++] = frame;
        if (_txCount == _tx.Length) Flush();
    }

    private bool _txReferencing;

    /// <summary>Transmits the batch now if a frame in it carries payload by reference: called before the memory such a
    /// payload lies in can change (a send ring going back to its pool, where a receive may take it and write).</summary>
    public void FlushReferencing()
    {
        if (_txReferencing) Flush();
    }

    /// <summary>Frames are queued for <see cref="Flush"/>.</summary>
    public bool Pending => _txCount > 0;

    /// <summary>Releases the frames from <paramref name="from"/> on, which the device refused (its ring full: a sender
    /// faster than the peer drains, most frames of sockperf's UDP throughput client), in one call to the pool
    /// when they are all its own (which may keep them for the next rents: <see cref="IPacketPool.ReturnUnsent"/>).</summary>
    private void ReleaseRefused(int from)
    {
        Counters.TxDeviceFull += _txCount - from;
        var pool = _txPool;
        for (int i = from; i < _txCount; i++)
        {
            if (_tx[i].Owner == pool) continue;
            for (int k = from; k < _txCount; k++) _tx[k].Release();
            return;
        }
        pool.ReturnUnsent(_tx.AsSpan(from, _txCount - from));
    }

    /// <summary>Hands the batched frames to the device; frames it refuses are released and counted.</summary>
    public void Flush()
    {
        if (_txCount == 0) return;
        int sent = _nic.Transmit(_queue, _tx.AsSpan(0, _txCount));
        Counters.FramesTransmitted += sent;
        if (sent < _txCount) ReleaseRefused(sent);
        for (int i = 0; i < _txCount; i++) _tx[i] = null!; // usually one: cheaper than Array.Clear's call
        _txCount = 0;
        _txReferencing = false;
    }
}

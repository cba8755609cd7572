using Gazelle.Buffers;
using Gazelle.Devices;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Link;

/// <summary>
/// The Ethernet side of one stack on one NIC queue: receives bursts, prepends Ethernet headers in the
/// buffers' headroom (with an IEEE 802.1Q tag when the stack runs on a VLAN), and batches frames for transmission.
/// Frames the device refuses (its ring full: the peer of a memif link drains slower than we send) stay queued, in
/// order, for the next flush, up to <see cref="QueueCapacity"/>; a datagram sender asks <see cref="TryMakeRoom"/> first
/// and waits while the queue is full, as Linux's veth stops its queue when the peer's ring is full and the qdisc then
/// holds the sender's datagrams until its socket's send buffer is spent (Linux 6.16, "veth: apply qdisc backpressure on
/// full ptr_ring to reduce TX drops"). A device that takes nothing for <see cref="StallMicros"/> is given up on: its
/// queued frames are dropped and counted, and refused frames are dropped at once until it takes one again.
/// </summary>
public sealed class EthernetLink
{
    public const int BurstSize = 32;
    /// <summary>Frames queued at most: a burst being built plus a burst the device refused.</summary>
    public const int QueueCapacity = 2 * BurstSize;
    /// <summary>How long a device may refuse every frame before the link drops what it holds rather than make senders
    /// wait (<see cref="StallMicros"/>'s default): longer than a peer may be starved of CPU on a loaded machine (with
    /// 100 ms, a pinned sockperf server at load 5 on these 2 cores let its sender give up 1 and 5 times in 5 s,
    /// udptp-cost.sh), short enough that a peer that stopped reading costs a blocking sender one pause.</summary>
    public const long DefaultStallMicros = 1_000_000;

    private readonly INic _nic;
    /// <summary>The device's transmit pool, looked up once (two interface calls per rent otherwise).</summary>
    private readonly IPacketPool _txPool;
    private readonly int _queue;
    private readonly PacketBuffer[] _tx = new PacketBuffer[QueueCapacity];
    private int _txCount;
    private readonly int _header;
    /// <summary>The device refused the last flush's frames and the link kept them: the next flush waits for a full queue
    /// instead of a full burst (a failed device call per frame otherwise).</summary>
    private bool _deviceBusy;
    /// <summary>When the device began refusing everything (valid while <see cref="_deviceBusy"/>).</summary>
    private Instant _refusingSince;
    /// <summary>The device took nothing for <see cref="StallMicros"/>: refused frames are dropped until it takes one.</summary>
    private bool _stalled;
    /// <summary><see cref="TryMakeRoom"/> said no: <see cref="RoomRegained"/> runs when the queue has room again.</summary>
    private bool _senderWaiting;

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
    /// <summary>How long the device may refuse every frame before the link gives up on it (<see cref="DefaultStallMicros"/>).</summary>
    public long StallMicros { get; set; } = DefaultStallMicros;
    /// <summary>The stack's time, for <see cref="StallMicros"/> (set by each poll and tick).</summary>
    public Instant Now { get; set; }
    /// <summary>Called (once per stay) when the queue has room again after <see cref="TryMakeRoom"/> said no: writers
    /// that waited for it can be told (their sockets' write events).</summary>
    public Action? RoomRegained { get; set; }
    /// <summary>The queue has room for another frame (a datagram sender's socket is writable).</summary>
    public bool HasRoom => _txCount < QueueCapacity;
    /// <summary>The device refuses frames and the link holds some for it.</summary>
    public bool DeviceBusy => _deviceBusy;
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
        Enqueue(payload);
    }

    /// <summary>Queues a frame and transmits the queue when a burst is full (or, while the device refuses, the whole
    /// queue); a frame that finds the queue full and the device still refusing is dropped and counted.</summary>
    private void Enqueue(PacketBuffer frame)
    {
        if (_txCount == _tx.Length)
        {
            Flush();
            if (_txCount == _tx.Length)
            {
                Counters.TxDeviceFull++;
                frame.Release();
                return;
            }
        }
        _tx[_txCount++] = frame;
        if (_txCount >= (_deviceBusy ? _tx.Length : BurstSize)) Flush();
    }

    /// <summary>Whether a datagram of <paramref name="frames"/> frames may be sent now: the queue has room for them (after
    /// a flush if it had not), or the device is given up on (its frames are dropped anyway). When not, the sender waits
    /// (or a non-blocking one gets EAGAIN) and <see cref="RoomRegained"/> tells when to try again.</summary>
    public bool TryMakeRoom(int frames = 1)
    {
        int need = Math.Min(Math.Max(frames, 1), _tx.Length);
        if (_txCount + need <= _tx.Length) return true;
        Flush();
        if (_txCount + need <= _tx.Length) return true;
        _senderWaiting = true;
        return false;
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
        Enqueue(frame);
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

    /// <summary>Releases the frames from <paramref name="from"/> on, which the device refused and the link does not keep,
    /// in one call to the pool when they are all its own (which may keep them for the next rents:
    /// <see cref="IPacketPool.ReturnUnsent"/>).</summary>
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

    /// <summary>Hands the queued frames to the device. Frames it refuses stay queued for the next flush, except a frame
    /// whose payload lies by reference in memory that may change once this returns (dropped and counted, as TCP
    /// retransmits it) and, once the device took nothing for <see cref="StallMicros"/>, all of them.</summary>
    public void Flush()
    {
        if (_txCount == 0) return;
        int sent = _nic.Transmit(_queue, _tx.AsSpan(0, _txCount));
        Counters.FramesTransmitted += sent;
        if (sent > 0) _stalled = false;
        if (sent < _txCount) Refused(sent);
        else TruncateQueue(0);
        _txReferencing = false;
        if (_senderWaiting && _txCount < _tx.Length)
        {
            _senderWaiting = false;
            RoomRegained?.Invoke();
        }
    }

    /// <summary>The device took the first <paramref name="sent"/> queued frames: the rest move to the front of the queue,
    /// or are dropped (see <see cref="Flush"/>).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void Refused(int sent)
    {
        if (sent > 0 || !_deviceBusy) _refusingSince = Now;
        else if ((Now - _refusingSince).Value >= StallMicros && !_stalled)
        {
            _stalled = true;
            Counters.TxDeviceStalled++;
        }
        if (_stalled)
        {
            ReleaseRefused(sent);
            TruncateQueue(0);
            return;
        }
        int kept = 0;
        for (int i = sent; i < _txCount; i++)
        {
            var f = _tx[i];
            if (f.ExternalLength1 != 0)
            {
                Counters.TxDeviceFull++;
                f.Release();
            }
            else _tx[kept++] = f;
        }
        Counters.TxDeviceBusy += kept;
        TruncateQueue(kept);
    }

    /// <summary>Keeps the first <paramref name="count"/> queued frames (the device is busy while any stay).</summary>
    private void TruncateQueue(int count)
    {
        for (int i = count; i < _txCount; i++) _tx[i] = null!; // usually one: cheaper than Array.Clear's call
        _txCount = count;
        _deviceBusy = count > 0;
    }
}

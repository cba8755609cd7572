using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Gazelle.Buffers;
using Gazelle.Link;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Network;

/// <summary>
/// IPv4 for a host (RFC 791, RFC 1122 §3.2): validates and reassembles what arrives, routes what
/// leaves (on-link or through the gateway), fragments datagrams larger than the path MTU.
/// </summary>
public sealed unsafe class Ipv4Layer : IIpOutput
{
    private readonly EthernetLink _link;
    private readonly ArpCache _arp;
    private readonly Ipv4Address _address;
    private readonly Ipv4Address _netmask;
    private readonly Ipv4Address _gateway;
    private readonly Ipv4Address _subnetBroadcast;
    private ushort _nextId;

    /// <summary>Datagrams to our own address waiting for the next poll (a ring of packet buffers).</summary>
    private readonly PacketBuffer?[] _local = new PacketBuffer?[LocalQueueSize];
    private int _localHead;
    private int _localCount;

    /// <summary>Capacity of the local delivery queue (datagrams a stack sends to itself between polls).</summary>
    public const int LocalQueueSize = 256;

    /// <summary>
    /// The route of the last destination sent to twice in a row (one entry: a sender mostly talks to one peer), with
    /// its frame's Ethernet and IPv4 headers prebuilt, so a send there copies them and patches the total length, the
    /// identification and the header checksum instead of routing, emitting both headers and resolving the next hop
    /// (a sixth of a 64-byte UDP send, perf on sockperf's throughput client). Current while the ARP cache and the
    /// path MTU table are unchanged (their versions) and before the next hop's refresh window opens; sends with
    /// other parameters (source, protocol, TTL, TOS, DF) or longer than the MTU take the full path.
    /// </summary>
    private struct CachedRoute
    {
        public bool Valid;
        /// <summary>The parameters of the sends it serves.</summary>
        public Ipv4SendParams Params;
        public int Mtu, ArpSlot, ArpVersion, PathMtuVersion;
        public Instant Until;
        /// <summary>RFC 1071 sum of the IPv4 header's words but the total length, identification and checksum.</summary>
        public uint HeaderSum;
    }

    private CachedRoute _route;
    /// <summary>Ethernet header (link bytes) then IPv4 header of <see cref="_route"/> (length, id, checksum zero), in an
    /// array of at least <see cref="RouteCopyBytes"/> (the bytes after the headers are zero and never sent).</summary>
    private readonly byte[] _routeHeaders;
    /// <summary>Bytes of <see cref="_routeHeaders"/> that are headers: the link header, then 20.</summary>
    private readonly int _routeHeadersLength;
    /// <summary>Bytes a routed send copies from <see cref="_routeHeaders"/> in three 16-byte moves instead of a call
    /// to copy the 34 or 38 header bytes (the copy call was 3% of a 64-byte UDP send, perf).</summary>
    private const int RouteCopyBytes = 48;
    /// <summary>Destination of the last send that took the full path (a second one in a row builds the route).</summary>
    private Ipv4Address _lastSlowDestination;

    public Ipv4Layer(Ipv4Address address, Ipv4Address netmask, Ipv4Address gateway, ulong secret,
                     EthernetLink link, ArpCache arp, Ipv4Counters counters)
    {
        _link = link;
        _arp = arp;
        _address = address;
        _netmask = netmask;
        _gateway = gateway;
        _subnetBroadcast = new Ipv4Address(address.Value | ~netmask.Value);
        _nextId = (ushort)(secret ^ (secret >> 16) ^ (secret >> 32) ^ (secret >> 48));
        Counters = counters;
        Reassembler = new Ipv4Reassembler(counters);
        PathMtus = new PathMtuTable(link.Mtu);
        _routeHeadersLength = link.HeaderLength + Ipv4Repr.HeaderLength;
        _routeHeaders = new byte[Math.Max(RouteCopyBytes, _routeHeadersLength)];
    }

    public Ipv4Counters Counters { get; }
    public Ipv4Reassembler Reassembler { get; }
    public PathMtuTable PathMtus { get; }
    public Ipv4Address LocalAddress => _address;
    /// <summary>The stack's current time (set at each poll): sends made between polls use it.</summary>
    public Instant Now { get; set; }

    public bool IsBroadcast(Ipv4Address a) => a.IsBroadcast || a == _subnetBroadcast;

    /// <summary>Datagrams queued for local delivery (sent to our own address, not yet taken back).</summary>
    public int LocalPending => _localCount;

    /// <summary>Takes the oldest datagram sent to our own address (the IPv4 header at the start of its
    /// data); the caller feeds it to <see cref="TryInput"/> with loopback set, then releases it.</summary>
    public bool TryTakeLocal(out PacketBuffer buffer)
    {
        buffer = null!;
        if (_localCount == 0) return false;
        buffer = _local[_localHead]!;
        _local[_localHead] = null;
        _localHead = (_localHead + 1) % LocalQueueSize;
        _localCount--;
        return true;
    }

    /// <summary>Releases the datagrams waiting for local delivery.</summary>
    public void ClearLocal()
    {
        while (TryTakeLocal(out var b)) b.Release();
    }

    /// <summary>
    /// Validates a received packet (the Ethernet payload). Returns true with the header and the whole
    /// upper-layer payload when a datagram is ready; otherwise it was dropped or stored and counted.
    /// <paramref name="header"/> spans the received header (for quoting in ICMP errors). <paramref name="checksumUnnecessary"/>:
    /// the device's frames only crossed memory (NicOffloads.RxChecksumUnnecessary), so the header checksum is not
    /// verified, as a NIC that verified it in hardware (RFC 1122 §3.2.1.2's check, done by the device).
    /// </summary>
    public bool TryInput(ReadOnlySpan<byte> bytes, Instant now, out Ipv4Repr repr, out ReadOnlySpan<byte> header,
                         out ReadOnlySpan<byte> payload, out bool broadcast, bool loopback = false, bool checksumUnnecessary = false)
    {
        repr = default;
        header = default;
        payload = default;
        broadcast = false;
        if (!Ipv4Packet.TryCreate(bytes, out var p))
        {
            Counters.Malformed++;
            return false;
        }
        if (!checksumUnnecessary && !p.VerifyChecksum())
        {
            Counters.BadChecksum++;
            return false;
        }
        var src = p.Source;
        if (src.IsBroadcast || src.IsMulticast || src.IsLoopback || src.IsUnspecified || (src == _address && !loopback) || src == _subnetBroadcast)
        {
            Counters.BadSource++;
            return false;
        }
        var dst = p.Destination;
        broadcast = IsBroadcast(dst);
        if (dst != _address && !broadcast)
        {
            Counters.NotForUs++;
            return false;
        }
        repr = Ipv4Repr.Parse(p);
        header = p.Header;
        if (p.IsFragment)
        {
            if (!Reassembler.TryAdd(p, now, out payload)) return false;
            repr.MoreFragments = false;
            repr.FragmentOffset = 0;
            repr.PayloadLength = payload.Length;
            return true;
        }
        payload = p.Payload;
        return true;
    }

    public int PathMtu(Ipv4Address destination) => PathMtus.Get(destination, Now);

    /// <inheritdoc/>
    public bool TryMakeRoom(Ipv4Address destination, int length)
    {
        if (destination == _address || (_link.HasRoom && !_link.DeviceBusy)) return true; // local delivery needs no device
        int mtu = SendMtu(destination);
        int frames = length + Ipv4Repr.HeaderLength <= mtu ? 1 : (length + FragmentChunk(mtu) - 1) / FragmentChunk(mtu);
        return _link.TryMakeRoom(frames);
    }

    /// <summary>The MTU a send toward <paramref name="destination"/> is cut to: the path's, at most the link's.</summary>
    private int SendMtu(Ipv4Address destination) => Math.Min(PathMtus.Get(destination, Now), _link.Mtu);

    /// <summary>Payload bytes in every fragment but the last: RFC 791 §3.2, a multiple of 8.</summary>
    private static int FragmentChunk(int mtu) => (mtu - Ipv4Repr.HeaderLength) & ~7;

    public Errno Send(in Ipv4SendParams p, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2) =>
        Send(p, header, payload1, payload2, -1, 0);

    /// <summary>
    /// As <see cref="Send(in Ipv4SendParams, ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>, the
    /// transport checksum still to be written: <paramref name="headerSum"/> is the folded sum of the pseudo-header
    /// and of <paramref name="header"/> (its checksum field zero); the payload's sum is taken while it is copied into
    /// the packet buffer (one pass over the bytes instead of two) and the checksum goes at
    /// <paramref name="checksumOffset"/> in the header.
    /// </summary>
    public Errno SendChecksummed(in Ipv4SendParams p, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        int checksumOffset, uint headerSum)
    {
        if ((uint)checksumOffset > (uint)(header.Length - 2)) ThrowHelpers.ArgumentOutOfRange(nameof(checksumOffset));
        return Send(p, header, payload1, payload2, checksumOffset, headerSum);
    }

    /// <summary>
    /// As <see cref="SendChecksummed(in Ipv4SendParams, ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte}, int, uint)"/>,
    /// for a payload in pinned memory that stays unchanged until the link's next flush (TCP's send ring: nothing writes a
    /// ring between a segment's output and the flush that ends the call or poll). On a device that copies frames out as
    /// it transmits (<see cref="EthernetLink.TxPayloadByReference"/>), a long payload on the cached route then goes by
    /// reference: only the headers are written into the packet buffer, the payload is summed where it lies and the
    /// device copies it from there (one copy per byte fewer than <see cref="CopySummed"/>).
    /// </summary>
    /// <param name="payloadSummed">True when <paramref name="headerSum"/> already includes the payload's sum (the send
    /// ring keeps the sums of what it holds): the payload is then only copied (or referenced), never summed here.</param>
    public Errno SendChecksummedPinned(in Ipv4SendParams p, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        int checksumOffset, uint headerSum, bool payloadSummed = false)
    {
        if ((uint)checksumOffset > (uint)(header.Length - 2)) ThrowHelpers.ArgumentOutOfRange(nameof(checksumOffset));
        return Send(p, header, payload1, payload2, checksumOffset, headerSum,
            _link.TxPayloadByReference && payload1.Length + payload2.Length >= MinPayloadByReference, payloadSummed);
    }

    /// <summary>Shorter payloads are copied: a segment's extra mbuf (allocated, attached, freed) costs about as much as
    /// copying a kilobyte.</summary>
    public const int MinPayloadByReference = 1024;

    private Errno Send(in Ipv4SendParams p, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        int checksumOffset, uint headerSum, bool byReference = false, bool payloadSummed = false)
    {
        var dst = p.Destination;
        if (checksumOffset >= 0 && _route.Valid && dst == _route.Params.Destination)
        {
            int length = Ipv4Repr.HeaderLength + header.Length + payload1.Length + payload2.Length;
            ref readonly var r = ref _route.Params;
            if (p.Source == r.Source && p.Protocol == r.Protocol && p.Ttl == r.Ttl && p.Tos == r.Tos
                && p.DontFragment == r.DontFragment && length <= _route.Mtu && Now < _route.Until
                && _arp.Version == _route.ArpVersion && PathMtus.Version == _route.PathMtuVersion)
            {
                return byReference ? SendRoutedByReference(header, payload1, payload2, checksumOffset, headerSum, length, payloadSummed)
                    : SendRouted(header, payload1, payload2, checksumOffset, headerSum, length, payloadSummed);
            }
        }
        MacAddress mac = default;
        Ipv4Address nextHop = dst;
        bool bcast = IsBroadcast(dst);
        if (bcast)
        {
            mac = MacAddress.Broadcast;
        }
        else if (dst.IsMulticast || dst.IsUnspecified || dst.IsLoopback)
        {
            Counters.TxNoRoute++;
            return Errno.ENETUNREACH;
        }
        else if (!dst.InSubnet(_address, _netmask))
        {
            if (_gateway.IsUnspecified)
            {
                Counters.TxNoRoute++;
                return Errno.ENETUNREACH;
            }
            nextHop = _gateway;
        }

        int l4 = header.Length + payload1.Length + payload2.Length;
        if (l4 + Ipv4Repr.HeaderLength > 65535) return Errno.EMSGSIZE;
        int mtu = SendMtu(dst);
        Ipv4Repr repr = default;
        SetHeaderFields(ref repr, p);
        repr.Identification = _nextId++;

        if (Ipv4Repr.HeaderLength + l4 <= mtu)
        {
            if (RentTxOrCount() is not { } b) return Errno.ENOBUFS;
            if (checksumOffset >= 0) CopySummed(b.Append(l4), header, payload1, payload2, checksumOffset, headerSum, p.Protocol, payloadSummed);
            else
            {
                header.CopyTo(b.Append(header.Length));
                payload1.CopyTo(b.Append(payload1.Length));
                payload2.CopyTo(b.Append(payload2.Length));
            }
            repr.PayloadLength = l4;
            Transmit(b, repr, bcast, mac, nextHop);
            if (checksumOffset >= 0 && !bcast)
            {
                if (dst == _lastSlowDestination) CacheRoute(p, nextHop);
                _lastSlowDestination = dst;
            }
            return Errno.Ok;
        }
        if (p.DontFragment)
        {
            Counters.TxTooBig++;
            return Errno.EMSGSIZE;
        }

        if (checksumOffset >= 0) return SendSummedFragments(p, header, payload1, payload2, checksumOffset, headerSum, payloadSummed);
        int chunk = FragmentChunk(mtu);
        for (int off = 0; off < l4; off += chunk)
        {
            int len = Math.Min(chunk, l4 - off);
            if (RentTxOrCount() is not { } b) return Errno.ENOBUFS;
            CopyRange(header, payload1, payload2, off, b.Append(len));
            repr.FragmentOffset = off;
            repr.MoreFragments = off + len < l4;
            repr.PayloadLength = len;
            Counters.FragmentsCreated++;
            Transmit(b, repr, bcast, mac, nextHop);
        }
        return Errno.Ok;
    }

    /// <summary>Sends through <see cref="_route"/> (checked by the caller): the prebuilt headers, then the transport
    /// header and payload as the full path writes them (<see cref="CopySummed"/>).</summary>
    private Errno SendRouted(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        int checksumOffset, uint headerSum, int length, bool payloadSummed)
    {
        if (RentTxOrCount() is not { } b) return Errno.ENOBUFS;
        var headers = _routeHeaders;
        int linkLength = _routeHeadersLength - Ipv4Repr.HeaderLength;
        var ip = b.Append(length);
        var frame = b.Prepend(linkLength);
        // The buffer was empty: its data is now the whole frame. The three 16-byte moves may write past the
        // headers (the transport header and payload are written over those bytes next) and past a frame shorter
        // than 48 bytes, inside the buffer (checked).
        if (_routeHeadersLength <= RouteCopyBytes && b.Capacity - b.Headroom >= RouteCopyBytes)
        {
            ref byte from = ref MemoryMarshal.GetArrayDataReference(headers);
            ref byte to = ref MemoryMarshal.GetReference(frame);
            Vector128.LoadUnsafe(ref from).StoreUnsafe(ref to);
            Vector128.LoadUnsafe(ref from, 16).StoreUnsafe(ref to, 16);
            Vector128.LoadUnsafe(ref from, 32).StoreUnsafe(ref to, 32);
        }
        else
        {
            headers.AsSpan(0, _routeHeadersLength).CopyTo(b.Data);
        }
        CopySummed(ip[Ipv4Repr.HeaderLength..], header, payload1, payload2, checksumOffset, headerSum, _route.Params.Protocol, payloadSummed);
        SendRoutedFrame(b, ip, length);
        return Errno.Ok;
    }

    /// <summary>As <see cref="SendRouted"/>, the payload left where it is (<see cref="SendChecksummedPinned"/>): summed
    /// there, and attached to the buffer by reference for the device to copy.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Errno SendRoutedByReference(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        int checksumOffset, uint headerSum, int length, bool payloadSummed)
    {
        if (RentTxOrCount() is not { } b) return Errno.ENOBUFS;
        var headers = _routeHeaders.AsSpan(0, _routeHeadersLength);
        int linkLength = _routeHeadersLength - Ipv4Repr.HeaderLength;
        var ip = b.Append(Ipv4Repr.HeaderLength + header.Length);
        b.Prepend(linkLength);
        headers.CopyTo(b.Data);
        var transport = ip[Ipv4Repr.HeaderLength..];
        header.CopyTo(transport);
        uint sum = headerSum;
        if (!payloadSummed)
        {
            uint s1 = InternetChecksum.Sum(payload1);
            sum = InternetChecksum.Add(sum, header.Length % 2 == 0 ? s1 : BinaryPrimitives.ReverseEndianness((ushort)s1));
        }
        if (!payloadSummed && !payload2.IsEmpty)
        {
            uint s2 = InternetChecksum.Sum(payload2);
            if (((header.Length + payload1.Length) & 1) != 0) s2 = BinaryPrimitives.ReverseEndianness((ushort)s2); // RFC 1071 §2(B)
            sum = InternetChecksum.Add(sum, s2);
        }
        BinaryPrimitives.WriteUInt16BigEndian(transport[checksumOffset..], TransportChecksum(sum, _route.Params.Protocol));
        b.SetExternal((byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(payload1)), payload1.Length,
            (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(payload2)), payload2.Length);
        Counters.PayloadsByReference++;
        SendRoutedFrame(b, ip, length);
        return Errno.Ok;
    }

    /// <summary>A buffer for a frame to send, or null with <c>TxNoBuffer</c> counted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private PacketBuffer? RentTxOrCount()
    {
        var b = _link.RentTx();
        if (b is null) Counters.TxNoBuffer++;
        return b;
    }

    /// <summary>The routed paths' last step: the IPv4 header's length, ID and checksum (from the route's
    /// precomputed sum of the fixed fields), then the frame goes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SendRoutedFrame(PacketBuffer b, Span<byte> ip, int length)
    {
        ushort id = _nextId++;
        BinaryPrimitives.WriteUInt16BigEndian(ip[Ipv4Packet.TotalLengthOffset..], (ushort)length);
        BinaryPrimitives.WriteUInt16BigEndian(ip[Ipv4Packet.IdentificationOffset..], id);
        BinaryPrimitives.WriteUInt16BigEndian(ip[Ipv4Packet.ChecksumOffset..],
            InternetChecksum.Finish(InternetChecksum.Fold((ulong)_route.HeaderSum + (uint)length + id)));
        Counters.DatagramsSent++;
        _arp.Touch(_route.ArpSlot, Now);
        _link.SendFrame(b);
    }

    /// <summary>Builds <see cref="_route"/> for a destination just sent to on the full path, when its next hop is
    /// resolved and settled and no path MTU estimate is held for it (else the full path keeps it).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void CacheRoute(in Ipv4SendParams p, Ipv4Address nextHop)
    {
        _route.Valid = false;
        var dst = p.Destination;
        if (nextHop == _address || PathMtus.Contains(dst) || !_arp.TryGetSettled(nextHop, Now, out var mac, out var until, out int slot)) return;
        var headers = _routeHeaders.AsSpan(0, _routeHeadersLength);
        int linkLength = headers.Length - Ipv4Repr.HeaderLength;
        _link.EmitHeader(headers, mac, EtherType.Ipv4);
        Ipv4Repr repr = default;
        SetHeaderFields(ref repr, p);
        repr.Emit(headers[linkLength..]);
        var ip = headers[linkLength..];
        // The emitted checksum covers the header with length 20 and id 0: keep the sum without the length, and
        // zero the three patched fields.
        BinaryPrimitives.WriteUInt16BigEndian(ip[Ipv4Packet.TotalLengthOffset..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(ip[Ipv4Packet.ChecksumOffset..], 0);
        _route.HeaderSum = InternetChecksum.Fold(InternetChecksum.Sum(ip));
        _route.Params = p;
        _route.Mtu = Math.Min(PathMtus.Get(dst, Now), _link.Mtu);
        _route.ArpSlot = slot;
        _route.ArpVersion = _arp.Version;
        _route.PathMtuVersion = PathMtus.Version;
        _route.Until = until;
        _route.Valid = true;
    }

    /// <summary>Fragments carry the transport header once: its checksum is computed over the whole datagram first.
    /// Apart from <see cref="Send(in Ipv4SendParams, ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte}, int, uint)"/>
    /// because of its stackalloc (a stack cookie there made the JIT copy every span parameter on the common path).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Errno SendSummedFragments(in Ipv4SendParams p, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        int checksumOffset, uint headerSum, bool payloadSummed)
    {
        Span<byte> summed = stackalloc byte[header.Length];
        header.CopyTo(summed);
        uint sum = headerSum;
        if (!payloadSummed)
        {
            sum = InternetChecksum.Add(sum, InternetChecksum.SumAt(payload1, header.Length));
            sum = InternetChecksum.Add(sum, InternetChecksum.SumAt(payload2, header.Length + payload1.Length));
        }
        BinaryPrimitives.WriteUInt16BigEndian(summed[checksumOffset..], TransportChecksum(sum, p.Protocol));
        return Send(p, summed, payload1, payload2, -1, 0);
    }

    /// <summary>The header fields a send's parameters give. Set one by one on the caller's local: an object
    /// initializer built a temporary and copied it over, a 16-byte load of bytes just stored narrower (a
    /// store-forwarding stall, perf annotate).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetHeaderFields(ref Ipv4Repr repr, in Ipv4SendParams p)
    {
        repr.Source = p.Source;
        repr.Destination = p.Destination;
        repr.Protocol = p.Protocol;
        repr.Ttl = p.Ttl;
        repr.Tos = p.Tos;
        repr.DontFragment = p.DontFragment;
    }

    /// <summary>Writes the transport header then both payloads into <paramref name="into"/>, summing the payloads
    /// while copying them, and the transport checksum at <paramref name="checksumOffset"/> (<paramref name="headerSum"/>:
    /// the pseudo-header and the header with its checksum field zero).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopySummed(Span<byte> into, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        int checksumOffset, uint headerSum, byte protocol, bool payloadSummed = false)
    {
        if (header.Length == 8 && into.Length >= 8) // UDP: one 8-byte move instead of a copy call
            Unsafe.WriteUnaligned(ref MemoryMarshal.GetReference(into), Unsafe.ReadUnaligned<ulong>(ref MemoryMarshal.GetReference(header)));
        else
            header.CopyTo(into);
        if (payloadSummed)
        {
            // The sum came with the payload (the send ring's): a plain copy.
            payload1.CopyTo(into[header.Length..]);
            payload2.CopyTo(into[(header.Length + payload1.Length)..]);
            BinaryPrimitives.WriteUInt16BigEndian(into[checksumOffset..], TransportChecksum(headerSum, protocol));
            return;
        }
        uint s1 = InternetChecksum.CopyAndSum(payload1, into.Slice(header.Length, payload1.Length));
        uint sum = InternetChecksum.Add(headerSum, header.Length % 2 == 0 ? s1 : BinaryPrimitives.ReverseEndianness((ushort)s1));
        if (!payload2.IsEmpty) // a UDP datagram has none: no call
        {
            uint s2 = InternetChecksum.CopyAndSum(payload2, into.Slice(header.Length + payload1.Length, payload2.Length));
            if (((header.Length + payload1.Length) & 1) != 0) s2 = BinaryPrimitives.ReverseEndianness((ushort)s2); // RFC 1071 §2(B)
            sum = InternetChecksum.Add(sum, s2);
        }
        BinaryPrimitives.WriteUInt16BigEndian(into[checksumOffset..], TransportChecksum(sum, protocol));
    }

    /// <summary>The transport checksum of a finished sum: UDP sends a computed zero as all ones (RFC 768; zero
    /// means "no checksum").</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort TransportChecksum(uint sum, byte protocol)
    {
        ushort c = InternetChecksum.Finish(sum);
        return c == 0 && protocol == IpProtocol.Udp ? (ushort)0xFFFF : c;
    }

    private void Transmit(PacketBuffer b, in Ipv4Repr repr, bool broadcast, MacAddress mac, Ipv4Address nextHop)
    {
        repr.Emit(b.Prepend(Ipv4Repr.HeaderLength));
        Counters.DatagramsSent++;
        if (nextHop == _address)
        {
            // As on Linux (the loopback path), a datagram to ourselves never reaches ARP or the
            // NIC. It is queued and taken back as input at the next poll, so input never runs inside the
            // output call that produced it (no re-entry, no recursion: answers wait for the poll after).
            if (_localCount == LocalQueueSize)
            {
                Counters.LoopbackQueueFull++;
                b.Release();
                return;
            }
            _local[(_localHead + _localCount) % LocalQueueSize] = b;
            _localCount++;
            Counters.LoopbackSent++;
            return;
        }
        if (broadcast) _link.Send(b, mac, EtherType.Ipv4);
        else _arp.Send(b, nextHop, Now);
    }

    /// <summary>Copies bytes [offset, offset + dest.Length) of the concatenation a ++ b ++ c.</summary>
    private static void CopyRange(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c, int offset, Span<byte> dest)
    {
        while (dest.Length > 0)
        {
            ReadOnlySpan<byte> src;
            if (offset < a.Length) src = a[offset..];
            else if (offset < a.Length + b.Length) src = b[(offset - a.Length)..];
            else src = c[(offset - a.Length - b.Length)..];
            int n = Math.Min(src.Length, dest.Length);
            src[..n].CopyTo(dest);
            dest = dest[n..];
            offset += n;
        }
    }

    /// <summary>Runs the reassembly timer; returns its next deadline.</summary>
    public Instant Poll(Instant now) => Reassembler.Poll(now);
}

using System.Buffers.Binary;
using Gazelle.Buffers;
using Gazelle.Devices;
using Gazelle.Link;
using Gazelle.Network;
using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Transport.Tcp;
using Gazelle.Transport.Udp;
using Gazelle.Wire;

namespace Gazelle.Stack;

/// <summary>
/// One protocol stack on one NIC queue: Ethernet, ARP, IPv4, ICMP, UDP and TCP, with
/// its own tables and counters. Single-threaded: whoever owns it calls <see cref="Poll"/> and the
/// socket API from one thread. Nothing inside reads a clock; time comes in through <see cref="Poll"/>.
/// </summary>
public sealed class NetStack : ISocketApi, ITcpOutput, IIcmpErrorSink
{
    private readonly StackConfig _config;
    private readonly EthernetLink _link;
    private readonly ArpCache _arp;
    private readonly Ipv4Layer _ip;
    private readonly Icmpv4Layer _icmp;
    private readonly UdpLayer _udp;
    private readonly PacketBuffer[] _rx = new PacketBuffer[EthernetLink.BurstSize];
    private readonly ITimedNic? _timedNic;
    /// <summary>The device's frames cannot have been corrupted on the way (<see cref="NicOffloads.RxChecksumUnnecessary"/>).</summary>
    private readonly bool _rxChecksumUnnecessary;
    private bool _started;
    private Instant _now;

    // TCP: segments go to _tcp.Input, its timers run in Poll, ICMP errors reach OnDestinationUnreachable,
    // and TCP handles are the TCP layer's own indices (SocketHandles keeps them apart from UDP's).
    private readonly TcpLayer _tcp;
    /// <summary>IP + largest TCP header + TcpLayer's MSS floor (88): no TCP segment needs more room than this.</summary>
    private const int SmallestTcpDatagram = Ipv4Repr.HeaderLength + TcpHeader.MaxHeaderLength + TcpLayer.MinimumMss;

    public NetStack(StackConfig config, INic nic, int queue = 0, NetStackOptions? options = null)
    {
        options ??= new NetStackOptions();
        _config = config;
        Counters = new StackCounters();
        _link = new EthernetLink(nic, queue, Counters.Link, config.VlanId);
        _timedNic = nic as ITimedNic;
        _rxChecksumUnnecessary = (nic.Offloads & NicOffloads.RxChecksumUnnecessary) != 0;
        _arp = new ArpCache(_link, config.Address, options.Arp, Counters.Arp);
        // Stacks on other queues share the address: start each one's IP identification elsewhere.
        ulong idSeed = config.Secret ^ ((ulong)(queue + 1) * 0x9E37_79B9_7F4A_7C15UL);
        _ip = new Ipv4Layer(config.Address, config.Netmask, config.Gateway, idSeed, _link, _arp, Counters.Ip);
        _icmp = new Icmpv4Layer(_ip, Counters.Icmp, options.IcmpErrorsPerSecond, options.IcmpErrorBurst);
        _udp = new UdpLayer(_ip, options.Udp with
        {
            MaxSockets = config.MaxUdpSockets, ReceiveBufferMax = config.ReceiveBufferMax, SendBufferMax = config.SendBufferMax,
        }, config.Secret, Counters.Udp);
        _link.RoomRegained = _udp.OnSendRoom;
        _tcp = new TcpLayer(config, this);
        // A segment's payload may point into its send ring until the link flushes (ITcpOutput.Send): a ring going back
        // to the pool, where a receive ring may be rented and written, first sends such frames.
        if (_link.TxPayloadByReference) _tcp.Rings.BeforeReturn = _link.FlushReferencing;
        // Held frames come out of the NIC's pool: a quarter of it at most, so receive never runs dry for them.
        _tcp.HeldFramesLimit = Math.Min(config.TcpHeldFrames, nic.TxPool.Capacity / 4);
    }

    public StackConfig Config => _config;
    public StackCounters Counters { get; }
    public MacAddress MacAddress => _link.Mac;
    public Ipv4Address Address => _config.Address;
    public ArpCache Arp => _arp;
    public Ipv4Layer Ip => _ip;
    public UdpLayer Udp => _udp;
    /// <summary>The TCP layer (its <see cref="TcpLayer.Counters"/> name every TCP event and drop).</summary>
    public TcpLayer Tcp => _tcp;
    public Icmpv4Layer Icmp => _icmp;

    /// <summary>Sends an ICMP echo request; the answer shows in <see cref="Icmpv4Layer.LastEchoReply"/>.</summary>
    public Errno Ping(Ipv4Address destination, ushort identifier, ushort sequence, ReadOnlySpan<byte> data)
    {
        var e = _icmp.SendEchoRequest(destination, identifier, sequence, data);
        _link.Flush();
        return e;
    }

    /// <inheritdoc/>
    public bool HasUnfinishedOutput => _tcp.UnacknowledgedCloses > 0 || _arp.PendingPackets > 0 || _link.Pending;

    // ------------------------------------------------------------------ poll loop

    /// <summary>Receives a burst, dispatches it, runs ARP/reassembly/TCP timers, transmits. Returns the
    /// next deadline (now when the burst was full and more frames may be waiting).</summary>
    public Instant Poll(Instant now)
    {
        _now = now;
        _ip.Now = now;
        _link.Now = now;
        _timedNic?.AdvanceTo(now); // a device with delayed frames (impairment, capture) learns the time from us
        if (!_started)
        {
            _started = true;
            _arp.Announce(); // gratuitous ARP: tell the segment who we are
        }
        int n = _link.Receive(_rx);
        _tcp.BeginInputBatch(); // one ACK per connection for the burst's in-order segments
        int done = 0;
        for (int i = 0; i < n; i++)
        {
            var frame = _rx[i];
            _rx[i] = null!;
            _tcp.SetInputFrame(frame);
            Dispatch(frame.Data, now);
            if (!_tcp.TakeInputFrame()) _rx[done++] = frame; // else a connection holds its payload until read
        }
        if (done > 0) ReleaseInput(done);
        bool localLeft = DeliverLocal(now);
        _tcp.EndInputBatch();
        var next = Instant.Min(_arp.Poll(now), _ip.Poll(now));
        next = Instant.Min(next, PollTcp(now));
        if (_timedNic is not null) next = Instant.Min(next, _timedNic.NextDeadline);
        _link.Flush();
        _lastPollIdle = n == 0 && !localLeft;
        return n == _rx.Length || localLeft ? now : next;
    }

    /// <summary>Releases the burst's first <paramref name="count"/> frames (processed, not held): in one call to their
    /// pool when it is the same for all (a DPDK pool frees their mbufs in one native call; one call per frame was a
    /// twentieth of sockperf's UDP throughput server, perf).</summary>
    private void ReleaseInput(int count)
    {
        var frames = _rx.AsSpan(0, count);
        var pool = frames[0].Owner;
        bool one = true;
        for (int i = 1; i < frames.Length; i++) one &= frames[i].Owner == pool;
        if (one) pool.ReturnBulk(frames);
        else foreach (var f in frames) f.Release();
        frames.Clear();
    }

    /// <inheritdoc/>
    public bool LocalDeliveryPending => _ip.LocalPending > 0;

    private bool _lastPollIdle;

    /// <inheritdoc/>
    public bool LastPollIdle => _lastPollIdle;

    /// <inheritdoc/>
    public void Tick(Instant now)
    {
        _now = now;
        _ip.Now = now;
        _link.Now = now;
        _tcp.Tick(now);
    }

    /// <inheritdoc/>
    public bool TakeEventedSockets(Span<SocketHandle> into, out int count)
    {
        count = 0;
        var tcp = _tcp.Events;
        var udp = _udp.Events;
        bool complete = !tcp.Overflowed && !udp.Overflowed && tcp.Entries.Length + udp.Entries.Length <= into.Length;
        if (complete)
        {
            foreach (int i in tcp.Entries) into[count++] = new SocketHandle(i);
            foreach (int i in udp.Entries) into[count++] = SocketHandles.Udp(i);
        }
        tcp.Clear();
        udp.Clear();
        return complete;
    }

    /// <summary>Takes back the datagrams this stack sent to its own address. Only those queued before
    /// this call: what their input sends to us in turn (an ACK, an answer) waits for the next poll, so
    /// one poll does bounded work. Returns true when datagrams are left for the next poll.</summary>
    private bool DeliverLocal(Instant now)
    {
        for (int k = _ip.LocalPending; k > 0 && _ip.TryTakeLocal(out var b); k--)
        {
            Counters.Ip.LoopbackReceived++;
            Ipv4Input(b.Data, now, loopback: true);
            b.Release();
        }
        return _ip.LocalPending > 0;
    }

    private void Dispatch(ReadOnlySpan<byte> frame, Instant now)
    {
        if (!EthernetFrame.TryCreate(frame, out var eth))
        {
            Counters.Link.RxTooShort++;
            return;
        }
        var dst = eth.Destination;
        if (dst != _link.Mac && !dst.IsBroadcast)
        {
            Counters.Link.RxNotForUs++;
            return;
        }
        if (eth.Source == _link.Mac)
        {
            Counters.Link.RxOwnSource++;
            return;
        }
        // IEEE 802.1Q: on a VLAN, only frames tagged with its id are ours (any priority); untagged, tagged ones are not.
        if (_link.VlanId >= 0)
        {
            if (!eth.HasVlanTag)
            {
                Counters.Link.RxUntagged++;
                return;
            }
            if (eth.VlanId != _link.VlanId)
            {
                Counters.Link.RxOtherVlan++;
                return;
            }
        }
        else if (eth.HasVlanTag)
        {
            Counters.Link.RxVlanTagged++;
            return;
        }
        switch (eth.EtherType)
        {
            case EtherType.Arp:
                _arp.Input(eth.Payload, now);
                return;
            case EtherType.Ipv4:
                Ipv4Input(eth.Payload, now);
                return;
            default:
                Counters.Link.RxUnknownEtherType++;
                return;
        }
    }

    private void Ipv4Input(ReadOnlySpan<byte> bytes, Instant now, bool loopback = false)
    {
        // No header checksum pass over a frame that only crossed memory (a twentieth of sockperf's UDP server, perf).
        if (!_ip.TryInput(bytes, now, out var ip, out var header, out var payload, out bool broadcast, loopback,
                _rxChecksumUnnecessary && !loopback)) return;
        switch (ip.Protocol)
        {
            case IpProtocol.Icmp:
                _icmp.Input(ip, payload, broadcast, this);
                return;
            case IpProtocol.Udp:
                // As TCP: no checksum pass over a datagram that only crossed memory (a sixth of sockperf's UDP server, perf).
                if (_udp.Input(ip, payload, broadcast, _rxChecksumUnnecessary && !loopback) == UdpInputResult.NoPort)
                    _icmp.SendUnreachable(Icmpv4UnreachableCode.Port, ip, header, payload, broadcast, now);
                return;
            case IpProtocol.Tcp:
                TcpInput(ip, payload, broadcast, now);
                return;
            default:
                Counters.Ip.UnknownProtocol++;
                _icmp.SendUnreachable(Icmpv4UnreachableCode.Protocol, ip, header, payload, broadcast, now);
                return;
        }
    }

    private void TcpInput(in Ipv4Repr ip, ReadOnlySpan<byte> segment, bool broadcast, Instant now)
    {
        if (broadcast)
        {
            Counters.Tcp.Broadcast++;
            return;
        }
        if (!TcpHeader.TryCreate(segment, out var h) || !h.TryParse(out var repr))
        {
            Counters.Tcp.Malformed++;
            return;
        }
        if (!_rxChecksumUnnecessary && !h.VerifyChecksum(ip.Source, ip.Destination))
        {
            Counters.Tcp.BadChecksum++;
            return;
        }
        Counters.Tcp.Delivered++;
        _tcp.Input(ip.Source, ip.Destination, repr, h.Payload, now);
    }

    private Instant PollTcp(Instant now) => _tcp.Poll(now);

    /// <summary>Releases what the stack holds (packets awaiting ARP or local delivery) and transmits anything batched.</summary>
    public void Shutdown()
    {
        _arp.Clear();
        _ip.ClearLocal();
        _link.Flush();
    }

    // ------------------------------------------------------------------ ICMP errors → transports

    bool IIcmpErrorSink.OnIcmpError(in IcmpError error)
    {
        return error.Protocol switch
        {
            IpProtocol.Udp => _udp.OnIcmpError(error),
            IpProtocol.Tcp when error.Type == Icmpv4Type.DestinationUnreachable => TcpIcmpError(error),
            _ => false,
        };
    }

    private bool TcpIcmpError(in IcmpError error)
    {
        int mtu = error.NextHopMtu;
        if (error.Code == Icmpv4UnreachableCode.FragmentationNeeded
            && _tcp.QuotesDataInFlight(error.Local.Address, error.Remote.Address, error.Local.Port, error.Remote.Port, error.QuotedSequence))
        {
            // Only a report TCP accepts (RFC 5927 §4.1) lowers the path MTU: a forged one quoting nothing in
            // flight must not shrink the path under a connection that keeps its MSS (every segment refused).
            if (_ip.PathMtus.Update(error.Remote.Address, mtu, 0, _now)) Counters.Icmp.PathMtuUpdates++;
            mtu = _ip.PathMtu(error.Remote.Address);
        }
        _tcp.OnDestinationUnreachable(error.Local.Address, error.Remote.Address, error.Local.Port, error.Remote.Port,
            error.QuotedSequence, error.Code, mtu, _now);
        return true;
    }

    // ------------------------------------------------------------------ ITcpOutput

    public bool Send(Ipv4Address local, Ipv4Address remote, in TcpRepr header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2, byte tos) =>
        SendSegment(local, remote, header, payload1, payload2, 0, false, tos);

    public bool SendSummed(Ipv4Address local, Ipv4Address remote, in TcpRepr header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        uint payloadSum, byte tos) => SendSegment(local, remote, header, payload1, payload2, payloadSum, true, tos);

    private bool SendSegment(Ipv4Address local, Ipv4Address remote, in TcpRepr header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        uint payloadSum, bool payloadSummed, byte tos)
    {
        Span<byte> h = stackalloc byte[TcpHeader.MaxHeaderLength];
        int hlen = TcpHeader.Emit(header, h);
        h = h[..hlen];
        int length = hlen + payload1.Length + payload2.Length;
        // The payload's part of the checksum is the send ring's, or taken while the IP layer copies it into the packet
        // buffer. (The header is whole 32-bit words: the payload starts at an even offset.)
        uint headerSum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(local, remote, IpProtocol.Tcp, length), InternetChecksum.Sum(h));
        if (payloadSummed) headerSum = InternetChecksum.Add(headerSum, payloadSum);
        // RFC 1191: TCP sets DF and sizes segments from PathMtu (a segment that still does not fit is a sizing
        // error and is refused). But a path MTU below TCP's smallest datagram (a report down to RFC 791's 68
        // bytes; TCP's MSS floor is 88) would make every segment too big and stall the connection for good:
        // there, the segment goes without DF and IP fragments it, as Linux does once the PMTU is at its floor.
        int pmtu = _ip.PathMtu(remote);
        bool df = Ipv4Repr.HeaderLength + length <= pmtu || pmtu >= SmallestTcpDatagram;
        // The payload is the connection's send ring (ITcpOutput): pinned, and unchanged until this call's or poll's flush.
        var err = _ip.SendChecksummedPinned(new Ipv4SendParams(local, remote, IpProtocol.Tcp, 64, tos, DontFragment: df), h, payload1, payload2,
            TcpHeader.ChecksumOffset, headerSum, payloadSummed);
        if (err != Errno.Ok)
        {
            Counters.Tcp.SendFailed++;
            return false;
        }
        return true;
    }

    public int PathMtu(Ipv4Address remote) => _ip.PathMtu(remote);

    // ------------------------------------------------------------------ ISocketApi

    public Errno Open(SocketKind kind, out SocketHandle socket)
    {
        socket = SocketHandle.Invalid;
        if (kind == SocketKind.Udp)
        {
            var e = _udp.Open(out int index);
            if (e == Errno.Ok) socket = SocketHandles.Udp(index);
            return e;
        }
        if (kind != SocketKind.Tcp) return Errno.EPROTONOSUPPORT;
        return _tcp.Open(kind, out socket);
    }

    public Errno Bind(SocketHandle socket, Ipv4Endpoint local) =>
        SocketHandles.IsUdp(socket) ? _udp.Bind(SocketHandles.UdpIndex(socket), local) : _tcp.Bind(socket, local);

    public Errno Listen(SocketHandle socket, int backlog) =>
        SocketHandles.IsUdp(socket) ? Errno.EOPNOTSUPP : Flushed(_tcp.Listen(socket, backlog));

    public Errno Accept(SocketHandle listener, out SocketHandle connection, out Ipv4Endpoint remote)
    {
        connection = SocketHandle.Invalid;
        remote = default;
        return SocketHandles.IsUdp(listener) ? Errno.EOPNOTSUPP : Flushed(_tcp.Accept(listener, out connection, out remote));
    }

    public Errno Connect(SocketHandle socket, Ipv4Endpoint remote) =>
        SocketHandles.IsUdp(socket) ? _udp.Connect(SocketHandles.UdpIndex(socket), remote) : Flushed(_tcp.Connect(socket, remote));

    /// <inheritdoc/>
    public bool BatchDatagrams { get; set; }

    /// <inheritdoc/>
    public bool OutputPending => _link.Pending;

    /// <summary>How long the device may refuse every frame before the link drops what it holds instead of making
    /// datagram senders wait (<see cref="EthernetLink.StallMicros"/>).</summary>
    public long DeviceStallMicros { get => _link.StallMicros; set => _link.StallMicros = value; }

    /// <inheritdoc/>
    public void FlushOutput() => _link.Flush();

    /// <inheritdoc/>
    public bool AcksOwed => _tcp.AcksOwed;

    /// <inheritdoc/>
    public void SendOwedAcks()
    {
        _tcp.SendOwedAcks();
        _link.Flush();
    }

    public Errno Send(SocketHandle socket, ReadOnlySpan<byte> data, MessageFlags flags, out int sent)
    {
        sent = 0;
        if (!SocketHandles.IsUdp(socket)) return Flushed(_tcp.Send(socket, data, flags, out sent));
        var e = _udp.SendTo(SocketHandles.UdpIndex(socket), data, false, default, out sent);
        if (!BatchDatagrams) _link.Flush();
        return e;
    }

    public Errno SendTo(SocketHandle socket, ReadOnlySpan<byte> data, Ipv4Endpoint remote, MessageFlags flags, out int sent)
    {
        sent = 0;
        // A stream socket ignores the address, as Linux's tcp_sendmsg does.
        if (!SocketHandles.IsUdp(socket)) return Flushed(_tcp.Send(socket, data, flags, out sent));
        var e = _udp.SendTo(SocketHandles.UdpIndex(socket), data, true, remote, out sent);
        if (!BatchDatagrams) _link.Flush();
        return e;
    }

    public Errno Receive(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received)
    {
        if (SocketHandles.IsUdp(socket)) return ReceiveFrom(socket, buffer, flags, out received, out _);
        return Flushed(_tcp.Receive(socket, buffer, flags, out received)); // reading may open the window: the update goes out now
    }

    public Errno ReceiveFrom(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received, out Ipv4Endpoint remote)
    {
        received = 0;
        remote = default;
        if (!SocketHandles.IsUdp(socket))
        {
            var e = Flushed(_tcp.Receive(socket, buffer, flags, out received)); // reading may open the window: the update goes out now
            if (e == Errno.Ok) _tcp.GetRemoteEndpoint(socket, out remote);
            return e;
        }
        return _udp.ReceiveFrom(SocketHandles.UdpIndex(socket), buffer, (flags & MessageFlags.Peek) != 0, out received, out remote);
    }

    public Errno Shutdown(SocketHandle socket, ShutdownHow how) =>
        SocketHandles.IsUdp(socket) ? _udp.Shutdown(SocketHandles.UdpIndex(socket), how) : Flushed(_tcp.Shutdown(socket, how));

    public Errno Close(SocketHandle socket) =>
        SocketHandles.IsUdp(socket) ? _udp.Close(SocketHandles.UdpIndex(socket)) : Flushed(_tcp.Close(socket));

    public Errno GetLocalEndpoint(SocketHandle socket, out Ipv4Endpoint local)
    {
        local = default;
        return SocketHandles.IsUdp(socket) ? _udp.GetLocal(SocketHandles.UdpIndex(socket), out local) : _tcp.GetLocalEndpoint(socket, out local);
    }

    public Errno GetRemoteEndpoint(SocketHandle socket, out Ipv4Endpoint remote)
    {
        remote = default;
        return SocketHandles.IsUdp(socket) ? _udp.GetRemote(SocketHandles.UdpIndex(socket), out remote) : _tcp.GetRemoteEndpoint(socket, out remote);
    }

    public Errno SetOption(SocketHandle socket, int level, int name, ReadOnlySpan<byte> value) =>
        SocketHandles.IsUdp(socket) ? _udp.SetOption(SocketHandles.UdpIndex(socket), level, name, value) : Flushed(_tcp.SetOption(socket, level, name, value));

    public Errno GetOption(SocketHandle socket, int level, int name, Span<byte> value, out int length)
    {
        length = 0;
        return SocketHandles.IsUdp(socket) ? _udp.GetOption(SocketHandles.UdpIndex(socket), level, name, value, out length) : _tcp.GetOption(socket, level, name, value, out length);
    }

    public Errno Available(SocketHandle socket, out int bytes)
    {
        bytes = 0;
        return SocketHandles.IsUdp(socket) ? _udp.Available(SocketHandles.UdpIndex(socket), out bytes) : _tcp.Available(socket, out bytes);
    }

    public Errno AtUrgentMark(SocketHandle socket, out bool atMark)
    {
        atMark = false;
        return SocketHandles.IsUdp(socket) ? Errno.EINVAL : _tcp.AtUrgentMark(socket, out atMark);
    }

    public Readiness GetReadiness(SocketHandle socket)
    {
        if (!SocketHandles.IsUdp(socket)) return _tcp.GetReadiness(socket);
        var r = _udp.GetReadiness(SocketHandles.UdpIndex(socket));
        // Not writable while a send would wait for the device (Linux: the socket's send buffer is spent in the qdisc).
        return _link.HasRoom ? r : r & ~Readiness.Writable;
    }


    public SocketEvents GetEvents(SocketHandle socket) =>
        SocketHandles.IsUdp(socket) ? _udp.GetEvents(SocketHandles.UdpIndex(socket)) : _tcp.GetEvents(socket);

    public Errno TakeError(SocketHandle socket) =>
        SocketHandles.IsUdp(socket) ? _udp.TakeError(SocketHandles.UdpIndex(socket)) : _tcp.TakeError(socket);

    /// <summary>TCP calls may emit segments (SYN, data, FIN, window updates): transmit the batch now.</summary>
    private Errno Flushed(Errno e)
    {
        _link.Flush();
        return e;
    }
}

/// <summary>Sizing of a stack beyond <see cref="StackConfig"/>.</summary>
public sealed record NetStackOptions
{
    public ArpOptions Arp { get; init; } = new();
    public UdpOptions Udp { get; init; } = new();
    /// <summary>ICMP errors per second (token bucket refill).</summary>
    public int IcmpErrorsPerSecond { get; init; } = 1000;
    /// <summary>ICMP errors sent back to back at most.</summary>
    public int IcmpErrorBurst { get; init; } = 50;
}

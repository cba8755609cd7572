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
/// One protocol stack on one NIC queue: Ethernet, ARP, IPv4, ICMP, UDP and (when hooked up) TCP, with
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
    private bool _started;
    private Instant _now;

    // ===== TCP HOOKUP =====================================================================
    // When Gazelle.Transport.Tcp.TcpLayer is in the tree, the hookup is:
    //   field:        private readonly TcpLayer _tcp;            (constructor: _tcp = new TcpLayer(config, this);)
    //   TcpInput:     _tcp.Input(ip.Source, ip.Destination, repr, payload, now);
    //   Tcp* methods: forward to _tcp; PollTcp: return _tcp.Poll(now);
    //   OnIcmpError:  _tcp.OnDestinationUnreachable(...)
    // Until then TCP calls return EOPNOTSUPP and TCP segments are counted as Tcp.NoTcp drops.
    // =======================================================================================

    public NetStack(StackConfig config, INic nic, int queue = 0, NetStackOptions? options = null)
    {
        options ??= new NetStackOptions();
        _config = config;
        Counters = new StackCounters();
        _link = new EthernetLink(nic, queue, Counters.Link);
        _timedNic = nic as ITimedNic;
        _arp = new ArpCache(_link, config.Address, options.Arp, Counters.Arp);
        _ip = new Ipv4Layer(config.Address, config.Netmask, config.Gateway, config.Secret, _link, _arp, Counters.Ip);
        _icmp = new Icmpv4Layer(_ip, Counters.Icmp, options.IcmpErrorsPerSecond, options.IcmpErrorBurst);
        _udp = new UdpLayer(_ip, options.Udp with { MaxSockets = config.MaxUdpSockets }, config.Secret, Counters.Udp);
    }

    public StackConfig Config => _config;
    public StackCounters Counters { get; }
    public MacAddress MacAddress => _link.Mac;
    public Ipv4Address Address => _config.Address;
    public ArpCache Arp => _arp;
    public Ipv4Layer Ip => _ip;
    public UdpLayer Udp => _udp;
    public Icmpv4Layer Icmp => _icmp;

    /// <summary>Sends an ICMP echo request; the answer shows in <see cref="Icmpv4Layer.LastEchoReply"/>.</summary>
    public Errno Ping(Ipv4Address destination, ushort identifier, ushort sequence, ReadOnlySpan<byte> data)
    {
        var e = _icmp.SendEchoRequest(destination, identifier, sequence, data);
        _link.Flush();
        return e;
    }

    // ------------------------------------------------------------------ poll loop

    /// <summary>Receives a burst, dispatches it, runs ARP/reassembly/TCP timers, transmits. Returns the
    /// next deadline (now when the burst was full and more frames may be waiting).</summary>
    public Instant Poll(Instant now)
    {
        _now = now;
        _ip.Now = now;
        _timedNic?.AdvanceTo(now); // a device with delayed frames (impairment, capture) learns the time from us
        if (!_started)
        {
            _started = true;
            _arp.Announce(); // gratuitous ARP: tell the segment who we are
        }
        int n = _link.Receive(_rx);
        for (int i = 0; i < n; i++)
        {
            var frame = _rx[i];
            _rx[i] = null!;
            Dispatch(frame.Data, now);
            frame.Release();
        }
        var next = Instant.Min(_arp.Poll(now), _ip.Poll(now));
        next = Instant.Min(next, PollTcp(now));
        if (_timedNic is not null) next = Instant.Min(next, _timedNic.NextDeadline);
        _link.Flush();
        return n == _rx.Length ? now : next;
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
        if (eth.HasVlanTag)
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

    private void Ipv4Input(ReadOnlySpan<byte> bytes, Instant now)
    {
        if (!_ip.TryInput(bytes, now, out var ip, out var header, out var payload, out bool broadcast)) return;
        switch (ip.Protocol)
        {
            case IpProtocol.Icmp:
                _icmp.Input(ip, payload, broadcast, this);
                return;
            case IpProtocol.Udp:
                if (_udp.Input(ip, payload, broadcast) == UdpInputResult.NoPort)
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
        if (!h.VerifyChecksum(ip.Source, ip.Destination))
        {
            Counters.Tcp.BadChecksum++;
            return;
        }
        _ = repr;
        _ = now;
        // TCP HOOKUP: _tcp.Input(ip.Source, ip.Destination, repr, h.Payload, now); Counters.Tcp.Delivered++;
        Counters.Tcp.NoTcp++;
    }

    private static Instant PollTcp(Instant now)
    {
        _ = now;
        return Instant.Never; // TCP HOOKUP: return _tcp.Poll(now);
    }

    /// <summary>Releases what the stack holds (packets awaiting ARP) and transmits anything batched.</summary>
    public void Shutdown()
    {
        _arp.Clear();
        _link.Flush();
    }

    // ------------------------------------------------------------------ ICMP errors → transports

    bool IIcmpErrorSink.OnIcmpError(in IcmpError error)
    {
        return error.Protocol switch
        {
            IpProtocol.Udp => _udp.OnIcmpError(error),
            // TCP HOOKUP: IpProtocol.Tcp when error.Type == Icmpv4Type.DestinationUnreachable =>
            //   { _tcp.OnDestinationUnreachable(error.Local.Address, error.Remote.Address, error.Local.Port,
            //       error.Remote.Port, error.QuotedSequence, error.Code, error.NextHopMtu, _now); return true; }
            _ => false,
        };
    }

    // ------------------------------------------------------------------ ITcpOutput

    public bool Send(Ipv4Address local, Ipv4Address remote, in TcpRepr header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2, byte tos)
    {
        Span<byte> h = stackalloc byte[TcpHeader.MaxHeaderLength];
        int hlen = TcpHeader.Emit(header, h);
        h = h[..hlen];
        int length = hlen + payload1.Length + payload2.Length;
        uint sum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(local, remote, IpProtocol.Tcp, length), InternetChecksum.Sum(h));
        sum = InternetChecksum.Add(sum, InternetChecksum.SumAt(payload1, hlen));
        sum = InternetChecksum.Add(sum, InternetChecksum.SumAt(payload2, hlen + payload1.Length));
        BinaryPrimitives.WriteUInt16BigEndian(h[TcpHeader.ChecksumOffset..], InternetChecksum.Finish(sum));
        // RFC 1191: TCP sets DF and sizes segments from PathMtu.
        var err = _ip.Send(new Ipv4SendParams(local, remote, IpProtocol.Tcp, 64, tos, DontFragment: true), h, payload1, payload2);
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
        return Errno.EOPNOTSUPP; // TCP HOOKUP: return _tcp.Open(kind, out socket);
    }

    public Errno Bind(SocketHandle socket, Ipv4Endpoint local) =>
        SocketHandles.IsUdp(socket) ? _udp.Bind(SocketHandles.UdpIndex(socket), local) : NoTcp(socket);

    public Errno Listen(SocketHandle socket, int backlog) =>
        SocketHandles.IsUdp(socket) ? Errno.EOPNOTSUPP : NoTcp(socket);

    public Errno Accept(SocketHandle listener, out SocketHandle connection, out Ipv4Endpoint remote)
    {
        connection = SocketHandle.Invalid;
        remote = default;
        return SocketHandles.IsUdp(listener) ? Errno.EOPNOTSUPP : NoTcp(listener);
    }

    public Errno Connect(SocketHandle socket, Ipv4Endpoint remote) =>
        SocketHandles.IsUdp(socket) ? _udp.Connect(SocketHandles.UdpIndex(socket), remote) : NoTcp(socket);

    public Errno Send(SocketHandle socket, ReadOnlySpan<byte> data, MessageFlags flags, out int sent)
    {
        sent = 0;
        if (!SocketHandles.IsUdp(socket)) return NoTcp(socket);
        var e = _udp.SendTo(SocketHandles.UdpIndex(socket), data, null, out sent);
        _link.Flush();
        return e;
    }

    public Errno SendTo(SocketHandle socket, ReadOnlySpan<byte> data, Ipv4Endpoint remote, MessageFlags flags, out int sent)
    {
        sent = 0;
        if (!SocketHandles.IsUdp(socket)) return NoTcp(socket);
        var e = _udp.SendTo(SocketHandles.UdpIndex(socket), data, remote, out sent);
        _link.Flush();
        return e;
    }

    public Errno Receive(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received) =>
        ReceiveFrom(socket, buffer, flags, out received, out _);

    public Errno ReceiveFrom(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received, out Ipv4Endpoint remote)
    {
        received = 0;
        remote = default;
        if (!SocketHandles.IsUdp(socket)) return NoTcp(socket);
        return _udp.ReceiveFrom(SocketHandles.UdpIndex(socket), buffer, (flags & MessageFlags.Peek) != 0, out received, out remote);
    }

    public Errno Shutdown(SocketHandle socket, ShutdownHow how) =>
        SocketHandles.IsUdp(socket) ? _udp.Shutdown(SocketHandles.UdpIndex(socket), how) : NoTcp(socket);

    public Errno Close(SocketHandle socket) =>
        SocketHandles.IsUdp(socket) ? _udp.Close(SocketHandles.UdpIndex(socket)) : NoTcp(socket);

    public Errno GetLocalEndpoint(SocketHandle socket, out Ipv4Endpoint local)
    {
        local = default;
        return SocketHandles.IsUdp(socket) ? _udp.GetLocal(SocketHandles.UdpIndex(socket), out local) : NoTcp(socket);
    }

    public Errno GetRemoteEndpoint(SocketHandle socket, out Ipv4Endpoint remote)
    {
        remote = default;
        return SocketHandles.IsUdp(socket) ? _udp.GetRemote(SocketHandles.UdpIndex(socket), out remote) : NoTcp(socket);
    }

    public Errno SetOption(SocketHandle socket, int level, int name, ReadOnlySpan<byte> value) =>
        SocketHandles.IsUdp(socket) ? _udp.SetOption(SocketHandles.UdpIndex(socket), level, name, value) : NoTcp(socket);

    public Errno GetOption(SocketHandle socket, int level, int name, Span<byte> value, out int length)
    {
        length = 0;
        return SocketHandles.IsUdp(socket) ? _udp.GetOption(SocketHandles.UdpIndex(socket), level, name, value, out length) : NoTcp(socket);
    }

    public Errno Available(SocketHandle socket, out int bytes)
    {
        bytes = 0;
        return SocketHandles.IsUdp(socket) ? _udp.Available(SocketHandles.UdpIndex(socket), out bytes) : NoTcp(socket);
    }

    public Readiness GetReadiness(SocketHandle socket) =>
        SocketHandles.IsUdp(socket) ? _udp.GetReadiness(SocketHandles.UdpIndex(socket)) : Readiness.Error | Readiness.HangUp;

    public Errno TakeError(SocketHandle socket) =>
        SocketHandles.IsUdp(socket) ? _udp.TakeError(SocketHandles.UdpIndex(socket)) : NoTcp(socket);

    /// <summary>TCP entry points until the TCP layer is hooked up (no TCP handle can exist yet).</summary>
    private static Errno NoTcp(SocketHandle socket) => socket.IsValid ? Errno.EOPNOTSUPP : Errno.EBADF;
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

using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Gazelle.Network;
using Gazelle.Sockets;
using Gazelle.Wire;

namespace Gazelle.Transport.Udp;

/// <summary>Sizing of UDP sockets.</summary>
public sealed record UdpOptions
{
    public int MaxSockets { get; init; } = 1024;
    /// <summary>Default receive queue bytes per socket (SO_RCVBUF changes it).</summary>
    public int ReceiveBufferBytes { get; init; } = 128 * 1024;
    /// <summary>Largest SO_RCVBUF / SO_SNDBUF request honoured (Linux's net.core.rmem_max / wmem_max).</summary>
    public int ReceiveBufferMax { get; init; } = 212992;
    public int SendBufferMax { get; init; } = 212992;
    /// <summary>Datagrams a receive queue holds at most.</summary>
    public int ReceiveQueueDatagrams { get; init; } = 256;
    /// <summary>Ephemeral port range (RFC 6335 §6 dynamic ports).</summary>
    public ushort EphemeralFirst { get; init; } = 49152;
    public ushort EphemeralLast { get; init; } = 65535;
}

/// <summary>Result of UDP input the caller acts on.</summary>
public enum UdpInputResult
{
    /// <summary>Delivered, or dropped and counted.</summary>
    Done,
    /// <summary>No socket: the caller may send an ICMP port unreachable (RFC 1122 §4.1.3.1).</summary>
    NoPort,
}

/// <summary>
/// UDP (RFC 768, RFC 1122 §4.1) sockets of one stack, addressed by slot index: bind with port
/// conflicts (SO_REUSEADDR / SO_REUSEPORT), connect, send/receive with bounded receive queues,
/// checksums, ephemeral ports.
/// </summary>
public sealed class UdpLayer
{
    private const int SolSocket = 1, SoReuseAddr = 2, SoType = 3, SoError = 4, SoBroadcast = 6, SoSndBuf = 7, SoRcvBuf = 8, SoReusePort = 15;
    private const int IpProtoIp = 0, IpTos = 1, IpTtl = 2;
    private const int SockDgram = 2;
    private const int MaxPayload = 65535 - Ipv4Repr.HeaderLength - UdpDatagram.HeaderLength;

    private sealed class Socket(int index, EventJournal journal)
    {
        public bool Open;
        public bool Bound;
        public bool Connected;
        public Ipv4Endpoint Local;
        public Ipv4Endpoint Remote;
        public bool ReuseAddr, ReusePort, Broadcast;
        public bool ShutRead, ShutWrite;
        public byte Ttl = 64, Tos;
        public Errno PendingError;
        public int NextOnPort = -1;
        /// <summary>A send was refused for want of room on the device and the index is listed in _roomWaiters until
        /// <see cref="OnSendRoom"/> tells it (kept across close and reopen, so the list never holds an index twice).</summary>
        public bool WaitingForRoom;
        public DatagramQueue? Queue;
        /// <summary>Event sequence numbers (<see cref="SocketEvents"/>); never reset; each bump is journaled.</summary>
        public uint ReadEvents
        {
            get => _readEvents;
            set
            {
                _readEvents = value;
                journal.Record(index);
            }
        }

        /// <inheritdoc cref="ReadEvents"/>
        public uint WriteEvents
        {
            get => _writeEvents;
            set
            {
                _writeEvents = value;
                journal.Record(index);
            }
        }

        private uint _readEvents, _writeEvents;
        /// <summary>SO_RCVBUF / SO_SNDBUF as Linux reports them; 0 = never set.</summary>
        public int RcvBufOption, SndBufOption;
    }

    private readonly IIpOutput _ip;
    private readonly UdpOptions _options;
    private readonly Socket?[] _sockets;
    private readonly int[] _free;
    private int _freeCount;
    /// <summary>Port → first socket bound to it (chained through NextOnPort).</summary>
    private readonly Dictionary<ushort, int> _ports;
    /// <summary>The port <see cref="Lookup"/> found last and the head of its chain, or -1 (a datagram stream to one port
    /// looks it up once: the dictionary was a twentieth of sockperf's UDP server, perf). Forgotten when
    /// <see cref="_ports"/> changes.</summary>
    private int _lastPort = -1, _lastHead;
    private int _ephemeralCursor;
    /// <summary>Sockets whose sends waited for room on the device (each once: <see cref="Socket.WaitingForRoom"/>).</summary>
    private readonly int[] _roomWaiters;
    private int _roomWaiterCount;

    public UdpLayer(IIpOutput ip, UdpOptions options, ulong secret, UdpCounters counters)
    {
        _ip = ip;
        _options = options;
        Counters = counters;
        _sockets = new Socket?[options.MaxSockets];
        _free = new int[options.MaxSockets];
        for (int i = 0; i < options.MaxSockets; i++) _free[i] = options.MaxSockets - 1 - i;
        _freeCount = options.MaxSockets;
        _roomWaiters = new int[options.MaxSockets];
        _ports = new Dictionary<ushort, int>(options.MaxSockets);
        // RFC 6056 §3.3.1-style start: a secret-derived offset into the range, then sequential search.
        _ephemeralCursor = (int)(secret % (ulong)(options.EphemeralLast - options.EphemeralFirst + 1));
    }

    public UdpCounters Counters { get; }
    /// <summary>Sockets (by index) whose event numbers moved since the stack's reader last cleared it.</summary>
    public EventJournal Events { get; } = new();
    public int OpenSockets => _options.MaxSockets - _freeCount;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private Socket? Get(int index) => (uint)index < (uint)_sockets.Length && _sockets[index] is { Open: true } s ? s : null;

    public Errno Open(out int index)
    {
        index = -1;
        if (_freeCount == 0) return Errno.EMFILE;
        index = _free[--_freeCount];
        var s = _sockets[index] ??= new Socket(index, Events);
        s.Open = true;
        s.Queue ??= new DatagramQueue(_options.ReceiveBufferBytes, _options.ReceiveQueueDatagrams);
        return Errno.Ok;
    }

    public Errno Close(int index)
    {
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (s.Bound) Unlink(index, s.Local.Port);
        var q = s.Queue!;
        q.Clear();
        if (q.CapacityBytes != _options.ReceiveBufferBytes) s.Queue = null;
        ResetSocket(s);
        _free[_freeCount++] = index;
        return Errno.Ok;
    }

    private static void ResetSocket(Socket s)
    {
        s.Open = s.Bound = s.Connected = false;
        s.Local = s.Remote = default;
        s.ReuseAddr = s.ReusePort = s.Broadcast = false;
        s.ShutRead = s.ShutWrite = false;
        s.Ttl = 64;
        s.Tos = 0;
        s.PendingError = Errno.Ok;
        s.NextOnPort = -1;
        // WaitingForRoom stays: it says the index is listed in _roomWaiters, and a socket reopened at this index must
        // not be listed twice (the list holds one entry per socket); it gets at most one spare write event.
        s.RcvBufOption = s.SndBufOption = 0;
    }

    public Errno Bind(int index, Ipv4Endpoint local)
    {
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (s.Bound) return Errno.EINVAL;
        if (!local.Address.IsUnspecified && local.Address != _ip.LocalAddress && !_ip.IsBroadcast(local.Address))
            return Errno.EADDRNOTAVAIL;
        ushort port = local.Port;
        if (port == 0)
        {
            if (!TryEphemeral(out port)) return Errno.EADDRINUSE;
        }
        else if (Conflicts(s, local.Address, port))
        {
            return Errno.EADDRINUSE;
        }
        s.Local = new Ipv4Endpoint(local.Address, port);
        s.Bound = true;
        s.NextOnPort = _ports.TryGetValue(port, out int head) ? head : -1;
        _ports[port] = index;
        _lastPort = -1;
        return Errno.Ok;
    }

    private bool Conflicts(Socket s, Ipv4Address address, ushort port)
    {
        if (!_ports.TryGetValue(port, out int i)) return false;
        for (; i >= 0; i = _sockets[i]!.NextOnPort)
        {
            var o = _sockets[i]!;
            bool overlap = o.Local.Address.IsUnspecified || address.IsUnspecified || o.Local.Address == address;
            if (!overlap) continue;
            // Both sides must opt in to share (as Linux: SO_REUSEADDR on both, or SO_REUSEPORT on both).
            if ((s.ReuseAddr && o.ReuseAddr) || (s.ReusePort && o.ReusePort)) continue;
            return true;
        }
        return false;
    }

    private bool TryEphemeral(out ushort port)
    {
        int span = _options.EphemeralLast - _options.EphemeralFirst + 1;
        for (int k = 0; k < span; k++)
        {
            int candidate = _options.EphemeralFirst + (_ephemeralCursor + k) % span;
            if (!_ports.ContainsKey((ushort)candidate))
            {
                _ephemeralCursor = (_ephemeralCursor + k + 1) % span;
                port = (ushort)candidate;
                return true;
            }
        }
        port = 0;
        return false;
    }

    private void Unlink(int index, ushort port)
    {
        if (!_ports.TryGetValue(port, out int head)) return;
        _lastPort = -1;
        var s = _sockets[index]!;
        if (head == index)
        {
            if (s.NextOnPort < 0) _ports.Remove(port);
            else _ports[port] = s.NextOnPort;
            return;
        }
        for (int i = head; i >= 0; i = _sockets[i]!.NextOnPort)
        {
            var o = _sockets[i]!;
            if (o.NextOnPort == index)
            {
                o.NextOnPort = s.NextOnPort;
                return;
            }
        }
    }

    public Errno Connect(int index, Ipv4Endpoint remote)
    {
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (remote.Port == 0 || remote.Address.IsUnspecified) return Errno.EINVAL;
        if (_ip.IsBroadcast(remote.Address) && !s.Broadcast) return Errno.EACCES;
        if (!s.Bound)
        {
            var e = Bind(index, new Ipv4Endpoint(Ipv4Address.Any, 0));
            if (e != Errno.Ok) return e;
        }
        s.Remote = remote;
        s.Connected = true;
        return Errno.Ok;
    }

    public Errno SendTo(int index, ReadOnlySpan<byte> data, bool hasTo, Ipv4Endpoint to, out int sent)
    {
        sent = 0;
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (s.ShutWrite) return Errno.EPIPE;
        Ipv4Endpoint remote;
        if (hasTo) remote = to;
        else if (s.Connected) remote = s.Remote;
        else return Errno.EDESTADDRREQ;
        if (remote.Port == 0 || remote.Address.IsUnspecified) return Errno.EINVAL;
        if (data.Length > MaxPayload) return Errno.EMSGSIZE;
        if (_ip.IsBroadcast(remote.Address) && !s.Broadcast) return Errno.EACCES;
        if (!s.Bound)
        {
            var e = Bind(index, new Ipv4Endpoint(Ipv4Address.Any, 0));
            if (e != Errno.Ok) return e;
        }

        if (!_ip.TryMakeRoom(remote.Address, UdpDatagram.HeaderLength + data.Length)) return WaitForRoom(index, s);

        var src = _ip.LocalAddress;
        // The 8 header bytes in a local rather than stackalloc: a stackalloc gives the method a stack cookie, and
        // with it the JIT copies span parameters into shadow slots (a store-forwarding stall per call, perf annotate).
        ulong header = 0;
        Span<byte> h = MemoryMarshal.AsBytes(new Span<ulong>(ref header));
        int length = UdpDatagram.HeaderLength + data.Length;
        BinaryPrimitives.WriteUInt16BigEndian(h[UdpDatagram.SourcePortOffset..], s.Local.Port);
        BinaryPrimitives.WriteUInt16BigEndian(h[UdpDatagram.DestinationPortOffset..], remote.Port);
        BinaryPrimitives.WriteUInt16BigEndian(h[UdpDatagram.LengthOffset..], (ushort)length);
        BinaryPrimitives.WriteUInt16BigEndian(h[UdpDatagram.ChecksumOffset..], 0);
        // The header's words summed from the values (no pass over the bytes); the payload is summed as the
        // IP layer copies it into the packet buffer (one pass instead of a sum and a copy).
        uint headerSum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(src, remote.Address, IpProtocol.Udp, length),
            InternetChecksum.Fold((ulong)s.Local.Port + remote.Port + (uint)length));

        var err = _ip.SendChecksummed(new Ipv4SendParams(src, remote.Address, IpProtocol.Udp, s.Ttl, s.Tos), h, data, default,
            UdpDatagram.ChecksumOffset, headerSum);
        if (err != Errno.Ok)
        {
            Counters.SendErrors++;
            return err;
        }
        Counters.DatagramsSent++;
        s.WriteEvents++; // Linux wakes writers as each sent datagram's buffer is freed (sock_wfree)
        sent = data.Length;
        return Errno.Ok;
    }

    /// <summary>The device refuses frames and the link's queue is full: the caller waits for <see cref="OnSendRoom"/>
    /// (Linux's sender whose datagrams fill its socket's send buffer in the qdisc blocks, or gets EAGAIN).</summary>
    private Errno WaitForRoom(int index, Socket s)
    {
        Counters.SendsWaitingForRoom++;
        if (!s.WaitingForRoom)
        {
            s.WaitingForRoom = true;
            _roomWaiters[_roomWaiterCount++] = index;
        }
        return Errno.EAGAIN;
    }

    /// <summary>The link has room again: the sockets that waited for it get a write event (epoll's EPOLLOUT edge).</summary>
    public void OnSendRoom()
    {
        for (int k = 0; k < _roomWaiterCount; k++)
        {
            var s = _sockets[_roomWaiters[k]];
            if (s is null || !s.WaitingForRoom) continue;
            s.WaitingForRoom = false;
            s.WriteEvents++;
        }
        _roomWaiterCount = 0;
    }

    public Errno ReceiveFrom(int index, Span<byte> buffer, bool peek, out int received, out Ipv4Endpoint remote)
    {
        received = 0;
        remote = default;
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (s.PendingError != Errno.Ok)
        {
            var e = s.PendingError;
            s.PendingError = Errno.Ok;
            return e;
        }
        if (s.Queue!.Dequeue(buffer, peek, out received, out remote) < 0)
            return s.ShutRead ? Errno.Ok : Errno.EAGAIN;
        return Errno.Ok;
    }

    public Errno Shutdown(int index, ShutdownHow how)
    {
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (!s.Connected) return Errno.ENOTCONN;
        if (how != ShutdownHow.Write) s.ShutRead = true;
        if (how != ShutdownHow.Read) s.ShutWrite = true;
        s.ReadEvents++;
        s.WriteEvents++;
        return Errno.Ok;
    }

    public Errno GetLocal(int index, out Ipv4Endpoint local)
    {
        local = default;
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        local = s.Local;
        if (s.Connected && local.Address.IsUnspecified) local = new Ipv4Endpoint(_ip.LocalAddress, local.Port);
        return Errno.Ok;
    }

    public Errno GetRemote(int index, out Ipv4Endpoint remote)
    {
        remote = default;
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (!s.Connected) return Errno.ENOTCONN;
        remote = s.Remote;
        return Errno.Ok;
    }

    public Errno Available(int index, out int bytes)
    {
        bytes = 0;
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        bytes = s.Queue!.NextLength; // Linux FIONREAD on UDP: size of the next datagram
        return Errno.Ok;
    }

    public Readiness GetReadiness(int index)
    {
        var s = Get(index);
        if (s is null) return Readiness.Error | Readiness.HangUp;
        var r = Readiness.None;
        if (s.Queue!.Count > 0 || s.ShutRead) r |= Readiness.Readable;
        if (!s.ShutWrite) r |= Readiness.Writable;
        if (s.PendingError != Errno.Ok) r |= Readiness.Error;
        if (s.ShutRead && s.ShutWrite) r |= Readiness.HangUp;
        return r;
    }


    public SocketEvents GetEvents(int index) => Get(index) is { } s ? new SocketEvents(s.ReadEvents, s.WriteEvents) : default;

    public Errno TakeError(int index)
    {
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        var e = s.PendingError;
        s.PendingError = Errno.Ok;
        return e;
    }

    public Errno SetOption(int index, int level, int name, ReadOnlySpan<byte> value)
    {
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (value.Length < 4) return Errno.EINVAL;
        int v = BinaryPrimitives.ReadInt32LittleEndian(value);
        switch (level, name)
        {
            case (SolSocket, SoReuseAddr): s.ReuseAddr = v != 0; return Errno.Ok;
            case (SolSocket, SoReusePort): s.ReusePort = v != 0; return Errno.Ok;
            case (SolSocket, SoBroadcast): s.Broadcast = v != 0; return Errno.Ok;
            case (SolSocket, SoSndBuf):
                // Datagrams go straight to the device: nothing to size, the value is only reported.
                s.SndBufOption = SocketBufferSize.FromRequest(v, _options.SendBufferMax, SocketBufferSize.MinSend);
                return Errno.Ok;
            case (SolSocket, SoRcvBuf):
            {
                // The queue holds payload: half of what Linux counts (it doubles the request for overhead).
                s.RcvBufOption = SocketBufferSize.FromRequest(v, _options.ReceiveBufferMax, SocketBufferSize.MinReceive);
                int bytes = Math.Max(s.RcvBufOption / 2, 2048);
                var q = s.Queue!;
                // A queue holding datagrams keeps its size (they stay where they are); Linux never refuses.
                if (q.CapacityBytes != bytes && q.Count == 0) s.Queue = new DatagramQueue(bytes, _options.ReceiveQueueDatagrams);
                return Errno.Ok;
            }
            case (IpProtoIp, IpTtl):
                if (v is < 1 or > 255) return Errno.EINVAL;
                s.Ttl = (byte)v;
                return Errno.Ok;
            case (IpProtoIp, IpTos): s.Tos = (byte)v; return Errno.Ok;
            default: return Errno.ENOPROTOOPT;
        }
    }

    public Errno GetOption(int index, int level, int name, Span<byte> value, out int length)
    {
        length = 0;
        var s = Get(index);
        if (s is null) return Errno.EBADF;
        if (value.Length < 4) return Errno.EINVAL;
        int v;
        switch (level, name)
        {
            case (SolSocket, SoReuseAddr): v = s.ReuseAddr ? 1 : 0; break;
            case (SolSocket, SoReusePort): v = s.ReusePort ? 1 : 0; break;
            case (SolSocket, SoBroadcast): v = s.Broadcast ? 1 : 0; break;
            case (SolSocket, SoType): v = SockDgram; break;
            case (SolSocket, SoError): v = (int)s.PendingError; s.PendingError = Errno.Ok; break;
            case (SolSocket, SoRcvBuf): v = s.RcvBufOption != 0 ? s.RcvBufOption : 2 * s.Queue!.CapacityBytes; break;
            case (SolSocket, SoSndBuf): v = s.SndBufOption != 0 ? s.SndBufOption : SocketBufferSize.DefaultDatagramSend; break;
            case (IpProtoIp, IpTtl): v = s.Ttl; break;
            case (IpProtoIp, IpTos): v = s.Tos; break;
            default: return Errno.ENOPROTOOPT;
        }
        BinaryPrimitives.WriteInt32LittleEndian(value, v);
        length = 4;
        return Errno.Ok;
    }

    /// <summary>Processes a received datagram (the IP payload); counts exactly one outcome unless it
    /// returns <see cref="UdpInputResult.NoPort"/> for a unicast datagram (counted too). <paramref name="checksumUnnecessary"/>:
    /// the device's frames cannot have been corrupted on the way (only crossed memory), so the checksum is not verified.</summary>
    public UdpInputResult Input(in Ipv4Repr ip, ReadOnlySpan<byte> bytes, bool broadcast, bool checksumUnnecessary = false)
    {
        if (!UdpDatagram.TryCreate(bytes, out var d))
        {
            Counters.Malformed++;
            return UdpInputResult.Done;
        }
        if (!checksumUnnecessary && !d.VerifyChecksum(ip.Source, ip.Destination))
        {
            Counters.BadChecksum++;
            return UdpInputResult.Done;
        }
        int index = Lookup(ip.Destination, d.DestinationPort, ip.Source, d.SourcePort);
        if (index < 0)
        {
            if (broadcast)
            {
                Counters.BroadcastNoPort++;
                return UdpInputResult.Done;
            }
            Counters.NoPort++;
            return UdpInputResult.NoPort;
        }
        var s = _sockets[index]!;
        if (s.ShutRead || !s.Queue!.TryEnqueue(d.Payload, new Ipv4Endpoint(ip.Source, d.SourcePort)))
        {
            Counters.ReceiveQueueFull++;
            return UdpInputResult.Done;
        }
        Counters.Delivered++;
        s.ReadEvents++;
        return UdpInputResult.Done;
    }

    /// <summary>The best socket for a datagram: a connected one matching the sender beats an unconnected
    /// one, an exact local address beats the wildcard.</summary>
    private int Lookup(Ipv4Address dst, ushort dstPort, Ipv4Address src, ushort srcPort)
    {
        int i;
        if (dstPort == _lastPort) i = _lastHead;
        else if (_ports.TryGetValue(dstPort, out i))
        {
            _lastPort = dstPort;
            _lastHead = i;
        }
        else return -1;
        int best = -1, bestScore = -1;
        for (; i >= 0; i = _sockets[i]!.NextOnPort)
        {
            var s = _sockets[i]!;
            int score = 0;
            if (!s.Local.Address.IsUnspecified)
            {
                if (s.Local.Address != dst) continue;
                score += 1;
            }
            if (s.Connected)
            {
                if (s.Remote.Address != src || s.Remote.Port != srcPort) continue;
                score += 2;
            }
            if (score > bestScore)
            {
                best = i;
                bestScore = score;
            }
        }
        return best;
    }

    /// <summary>An ICMP error about a datagram we sent: recorded as the socket's pending error when it
    /// is connected to that peer (as Linux does; unconnected sockets do not see them).</summary>
    public bool OnIcmpError(in IcmpError error)
    {
        int index = Lookup(error.Local.Address, error.Local.Port, error.Remote.Address, error.Remote.Port);
        if (index < 0) return false;
        var s = _sockets[index]!;
        if (!s.Connected) return false;
        s.PendingError = error.Type switch
        {
            Icmpv4Type.DestinationUnreachable when error.Code == Icmpv4UnreachableCode.Port => Errno.ECONNREFUSED,
            Icmpv4Type.DestinationUnreachable when error.Code == Icmpv4UnreachableCode.FragmentationNeeded => Errno.EMSGSIZE,
            Icmpv4Type.DestinationUnreachable when error.Code is Icmpv4UnreachableCode.Network => Errno.ENETUNREACH,
            Icmpv4Type.DestinationUnreachable => Errno.EHOSTUNREACH,
            _ => Errno.EHOSTUNREACH,
        };
        s.ReadEvents++;
        s.WriteEvents++;
        return true;
    }
}

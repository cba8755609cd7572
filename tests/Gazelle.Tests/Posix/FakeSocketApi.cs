using Gazelle.Sockets;
using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Tests.Posix;

/// <summary>
/// A small in-memory stand-in for a stack, for testing the POSIX layer alone: TCP streams and UDP
/// datagrams between its own sockets, delivered to whichever socket is bound to the destination port.
/// A TCP connect completes (or is refused) at the next <see cref="Poll"/>, so EINPROGRESS paths are real.
/// </summary>
internal sealed class FakeSocketApi(Ipv4Address address) : ISocketApi
{
    public const int ReceiveCapacity = 64 * 1024;

    private sealed class Sock
    {
        public SocketKind Kind;
        public Ipv4Endpoint Local, Remote;
        public bool Bound, Listening, Connected, Connecting, Closed, ReadShut, WriteShut, PeerWriteShut, PeerGone;
        public Ipv4Endpoint ConnectTarget;
        public Errno PendingError;
        public int Peer = -1;
        public readonly Queue<int> AcceptQueue = new();
        public readonly List<byte> Rx = [];
        public readonly Queue<(byte[] Data, Ipv4Endpoint From)> Datagrams = new();
        public readonly Dictionary<(int, int), byte[]> Options = [];
        /// <summary>Event sequence numbers (SocketEvents); SpaceWanted: a send found the peer full.</summary>
        public uint ReadEvents, WriteEvents;
        public bool SpaceWanted;
        public void WakeAll() { ReadEvents++; WriteEvents++; }
    }

    private readonly List<Sock> _socks = [];
    private ushort _nextPort = 40000;

    /// <summary>The stand-in delivers at once: nothing is ever left to send.</summary>
    public bool HasUnfinishedOutput => false;

    public int OpenSockets => _socks.Count(s => !s.Closed);
    public int PollCount { get; private set; }
    /// <summary>What <see cref="ISocketApi.LastPollIdle"/> answers (the stand-in never says it received nothing unless told).</summary>
    public bool Idle { get; set; }
    public bool LastPollIdle => Idle;
    /// <summary>The time of the last poll, and whether a poll was ever given an earlier time than the one before.</summary>
    public Instant LastPollTime { get; private set; }
    public bool TimeWentBack { get; private set; }

    private Sock? Get(SocketHandle h) => h.Value >= 0 && h.Value < _socks.Count && !_socks[h.Value].Closed ? _socks[h.Value] : null;

    public byte[]? OptionOf(SocketHandle h, int level, int name) => Get(h)?.Options.GetValueOrDefault((level, name));

    public Errno Open(SocketKind kind, out SocketHandle socket)
    {
        _socks.Add(new Sock { Kind = kind });
        socket = new SocketHandle(_socks.Count - 1);
        return Errno.Ok;
    }

    private bool PortInUse(SocketKind kind, ushort port) =>
        _socks.Any(s => !s.Closed && s.Bound && s.Kind == kind && s.Local.Port == port && (s.Listening || !s.Connected || kind == SocketKind.Udp));

    private void AutoBind(Sock s)
    {
        if (s.Bound) return;
        while (PortInUse(s.Kind, _nextPort)) _nextPort++;
        s.Local = new Ipv4Endpoint(address, _nextPort++);
        s.Bound = true;
    }

    public Errno Bind(SocketHandle socket, Ipv4Endpoint local)
    {
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (s.Bound) return Errno.EINVAL;
        if (!local.Address.IsUnspecified && local.Address != address) return Errno.EADDRNOTAVAIL;
        if (local.Port != 0 && PortInUse(s.Kind, local.Port)) return Errno.EADDRINUSE;
        s.Local = local.Port == 0 ? new Ipv4Endpoint(local.Address, _nextPort++) : local;
        s.Bound = true;
        return Errno.Ok;
    }

    public Errno Listen(SocketHandle socket, int backlog)
    {
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (s.Kind != SocketKind.Tcp) return Errno.EOPNOTSUPP;
        if (s.Connected) return Errno.EINVAL;
        AutoBind(s);
        s.Listening = true;
        return Errno.Ok;
    }

    public Errno Accept(SocketHandle listener, out SocketHandle connection, out Ipv4Endpoint remote)
    {
        connection = SocketHandle.Invalid;
        remote = default;
        if (Get(listener) is not { } s) return Errno.EBADF;
        if (!s.Listening) return Errno.EINVAL;
        if (s.AcceptQueue.Count == 0) return Errno.EAGAIN;
        int c = s.AcceptQueue.Dequeue();
        connection = new SocketHandle(c);
        remote = _socks[c].Remote;
        return Errno.Ok;
    }

    public Errno Connect(SocketHandle socket, Ipv4Endpoint remote)
    {
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (s.Kind == SocketKind.Udp)
        {
            AutoBind(s);
            s.Remote = remote;
            s.Connected = true;
            return Errno.Ok;
        }
        if (s.Listening) return Errno.EISCONN;
        if (s.Connected) return Errno.EISCONN;
        if (s.Connecting) return Errno.EALREADY;
        AutoBind(s);
        s.Connecting = true;
        s.ConnectTarget = remote;
        return Errno.EINPROGRESS;
    }

    public Errno Send(SocketHandle socket, ReadOnlySpan<byte> data, MessageFlags flags, out int sent)
    {
        sent = 0;
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (s.Kind == SocketKind.Udp)
            return s.Connected ? SendTo(socket, data, s.Remote, flags, out sent) : Errno.EDESTADDRREQ;
        if (s.WriteShut || s.PeerGone) return Errno.EPIPE;
        if (!s.Connected) return Errno.ENOTCONN;
        var peer = _socks[s.Peer];
        int room = ReceiveCapacity - peer.Rx.Count;
        if (room < data.Length) s.SpaceWanted = true;
        if (room <= 0) return Errno.EAGAIN;
        sent = Math.Min(room, data.Length);
        peer.Rx.AddRange(data[..sent].ToArray());
        peer.ReadEvents++;
        return Errno.Ok;
    }

    public Errno SendTo(SocketHandle socket, ReadOnlySpan<byte> data, Ipv4Endpoint remote, MessageFlags flags, out int sent)
    {
        sent = 0;
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (s.Kind == SocketKind.Tcp) return Send(socket, data, flags, out sent);
        AutoBind(s);
        var target = _socks.FirstOrDefault(t => !t.Closed && t.Kind == SocketKind.Udp && t.Bound && t.Local.Port == remote.Port);
        target?.Datagrams.Enqueue((data.ToArray(), new Ipv4Endpoint(address, s.Local.Port)));
        if (target is not null) target.ReadEvents++;
        s.WriteEvents++;
        sent = data.Length;
        return Errno.Ok;
    }

    public Errno Receive(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received) =>
        ReceiveFrom(socket, buffer, flags, out received, out _);

    public Errno ReceiveFrom(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received, out Ipv4Endpoint remote)
    {
        received = 0;
        remote = default;
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (s.Kind == SocketKind.Udp)
        {
            if (s.Datagrams.Count == 0) return Errno.EAGAIN;
            var (data, from) = (flags & MessageFlags.Peek) != 0 ? s.Datagrams.Peek() : s.Datagrams.Dequeue();
            received = Math.Min(data.Length, buffer.Length);
            data.AsSpan(0, received).CopyTo(buffer);
            remote = from;
            return Errno.Ok;
        }
        if (s.Rx.Count > 0)
        {
            received = Math.Min(s.Rx.Count, buffer.Length);
            for (int i = 0; i < received; i++) buffer[i] = s.Rx[i];
            if ((flags & MessageFlags.Peek) == 0)
            {
                s.Rx.RemoveRange(0, received);
                if (s.Peer >= 0 && _socks[s.Peer] is { SpaceWanted: true } writer)
                {
                    writer.SpaceWanted = false;
                    writer.WriteEvents++;
                }
            }
            remote = s.Remote;
            return Errno.Ok;
        }
        if (s.PeerWriteShut || s.ReadShut) return Errno.Ok;
        if (!s.Connected) return Errno.ENOTCONN;
        return Errno.EAGAIN;
    }

    public Errno Shutdown(SocketHandle socket, ShutdownHow how)
    {
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (!s.Connected) return Errno.ENOTCONN;
        if (how != ShutdownHow.Write) s.ReadShut = true;
        if (how != ShutdownHow.Read)
        {
            s.WriteShut = true;
            if (s.Peer >= 0)
            {
                _socks[s.Peer].PeerWriteShut = true;
                _socks[s.Peer].WakeAll();
            }
        }
        s.WakeAll();
        return Errno.Ok;
    }

    public Errno Close(SocketHandle socket)
    {
        if (Get(socket) is not { } s) return Errno.EBADF;
        s.Closed = true;
        if (s.Peer >= 0)
        {
            _socks[s.Peer].PeerWriteShut = true;
            _socks[s.Peer].PeerGone = true;
            _socks[s.Peer].WakeAll();
        }
        while (s.AcceptQueue.Count > 0) _socks[s.AcceptQueue.Dequeue()].Closed = true;
        return Errno.Ok;
    }

    public Errno GetLocalEndpoint(SocketHandle socket, out Ipv4Endpoint local)
    {
        local = Get(socket)?.Local ?? default;
        return Get(socket) is null ? Errno.EBADF : Errno.Ok;
    }

    public Errno GetRemoteEndpoint(SocketHandle socket, out Ipv4Endpoint remote)
    {
        remote = default;
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (!s.Connected) return Errno.ENOTCONN;
        remote = s.Remote;
        return Errno.Ok;
    }

    public Errno SetOption(SocketHandle socket, int level, int name, ReadOnlySpan<byte> value)
    {
        if (Get(socket) is not { } s) return Errno.EBADF;
        s.Options[(level, name)] = value.ToArray();
        return Errno.Ok;
    }

    public Errno GetOption(SocketHandle socket, int level, int name, Span<byte> value, out int length)
    {
        length = 0;
        if (Get(socket) is not { } s) return Errno.EBADF;
        if (!s.Options.TryGetValue((level, name), out var v)) v = new byte[4];
        length = Math.Min(v.Length, value.Length);
        v.AsSpan(0, length).CopyTo(value);
        return Errno.Ok;
    }

    public Errno AtUrgentMark(SocketHandle socket, out bool atMark)
    {
        atMark = false; // the stand-in has no urgent data
        return Get(socket) is null ? Errno.EBADF : Errno.Ok;
    }

    public Errno Available(SocketHandle socket, out int bytes)
    {
        bytes = 0;
        if (Get(socket) is not { } s) return Errno.EBADF;
        bytes = s.Kind == SocketKind.Tcp ? s.Rx.Count : s.Datagrams.Count > 0 ? s.Datagrams.Peek().Data.Length : 0;
        return Errno.Ok;
    }

    public Readiness GetReadiness(SocketHandle socket)
    {
        if (Get(socket) is not { } s) return Readiness.Error | Readiness.HangUp;
        var r = Readiness.None;
        if (s.PendingError != Errno.Ok) r |= Readiness.Error;
        if (s.Kind == SocketKind.Udp) return r | Readiness.Writable | (s.Datagrams.Count > 0 ? Readiness.Readable : 0);
        if (s.Listening) return r | (s.AcceptQueue.Count > 0 ? Readiness.Readable : 0);
        if (!s.Connected) return r | (s.Connecting ? 0 : Readiness.Writable | Readiness.HangUp);
        if (s.Rx.Count > 0 || s.PeerWriteShut) r |= Readiness.Readable;
        if (s.PeerWriteShut) r |= Readiness.ReadHangUp;
        if (s.PeerGone && s.WriteShut) r |= Readiness.HangUp;
        if (!s.WriteShut && !s.PeerGone && _socks[s.Peer].Rx.Count < ReceiveCapacity) r |= Readiness.Writable;
        if (s.PeerGone && !s.WriteShut) r |= Readiness.Writable; // the next send tells EPIPE
        return r;
    }

    public SocketEvents GetEvents(SocketHandle socket) =>
        Get(socket) is { } s ? new SocketEvents(s.ReadEvents, s.WriteEvents) : default;

    public Errno TakeError(SocketHandle socket)
    {
        if (Get(socket) is not { } s) return Errno.EBADF;
        var e = s.PendingError;
        s.PendingError = Errno.Ok;
        return e;
    }

    public Instant Poll(Instant now)
    {
        PollCount++;
        if (now < LastPollTime) TimeWentBack = true;
        LastPollTime = now;
        for (int i = 0; i < _socks.Count; i++)
        {
            var s = _socks[i];
            if (s.Closed || !s.Connecting) continue;
            s.Connecting = false;
            var target = s.ConnectTarget;
            int li = _socks.FindIndex(l => !l.Closed && l.Listening && l.Local.Port == target.Port
                && (l.Local.Address.IsUnspecified || l.Local.Address == target.Address));
            if (li < 0 || target.Address != address)
            {
                s.PendingError = Errno.ECONNREFUSED;
                s.WakeAll();
                continue;
            }
            _socks.Add(new Sock { Kind = SocketKind.Tcp, Local = target, Remote = s.Local, Bound = true, Connected = true, Peer = i });
            int server = _socks.Count - 1;
            s.Peer = server;
            s.Remote = target;
            s.Connected = true;
            s.WakeAll();
            _socks[li].AcceptQueue.Enqueue(server);
            _socks[li].ReadEvents++;
        }
        return Instant.Never;
    }
}

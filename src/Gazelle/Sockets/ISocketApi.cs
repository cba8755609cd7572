using Gazelle.Time;
using Gazelle.Wire;

namespace Gazelle.Sockets;

/// <summary>An index handle to a socket inside one stack (no object references cross the API).</summary>
public readonly record struct SocketHandle(int Value)
{
    public static readonly SocketHandle Invalid = new(-1);
    public bool IsValid => Value >= 0;
}

public enum SocketKind { Tcp, Udp }

/// <summary>Readiness bits, numbered as Linux's EPOLL* / POLL* bits so the POSIX layer passes them through.</summary>
[Flags]
public enum Readiness : uint
{
    None = 0,
    Readable = 0x001,      // EPOLLIN
    Priority = 0x002,      // EPOLLPRI
    Writable = 0x004,      // EPOLLOUT
    Error = 0x008,         // EPOLLERR
    HangUp = 0x010,        // EPOLLHUP
    ReadHangUp = 0x2000,   // EPOLLRDHUP
}

/// <summary>
/// A socket's event sequence numbers: the stack bumps <see cref="Read"/> when something arrives for
/// the reader (data, a datagram, a FIN, a queued connection) and <see cref="Write"/> when send space
/// grows after the socket ran out of it; a state change or an error bumps both. Edge-triggered epoll
/// reports a registration again when a number it watches moved since its last report (Linux wakes
/// epoll on these arrivals, not when the program consumes). Both wrap around freely.
/// </summary>
public readonly record struct SocketEvents(uint Read, uint Write);

[Flags]
public enum MessageFlags
{
    None = 0,
    Oob = 0x01,        // MSG_OOB: urgent data (TCP)
    Peek = 0x02,       // MSG_PEEK
    DontWait = 0x40,   // MSG_DONTWAIT
    WaitAll = 0x100,   // MSG_WAITALL
    NoSignal = 0x4000, // MSG_NOSIGNAL
    More = 0x8000,     // MSG_MORE
}

public enum ShutdownHow { Read = 0, Write = 1, Both = 2 }

/// <summary>
/// The socket API of one stack. It never blocks: calls that would wait return <see cref="Errno.EAGAIN"/>
/// (or <see cref="Errno.EINPROGRESS"/> for connect) and the caller waits on readiness while it keeps
/// polling the stack. The POSIX layer and an in-process .NET API both map onto it directly.
/// Socket options use Linux's (level, name) numbering and byte layouts (<c>SOL_SOCKET</c>, <c>IPPROTO_TCP</c>, ...).
/// </summary>
public interface ISocketApi
{
    Errno Open(SocketKind kind, out SocketHandle socket);
    Errno Bind(SocketHandle socket, Ipv4Endpoint local);
    Errno Listen(SocketHandle socket, int backlog);
    Errno Accept(SocketHandle listener, out SocketHandle connection, out Ipv4Endpoint remote);
    Errno Connect(SocketHandle socket, Ipv4Endpoint remote);
    Errno Send(SocketHandle socket, ReadOnlySpan<byte> data, MessageFlags flags, out int sent);
    Errno SendTo(SocketHandle socket, ReadOnlySpan<byte> data, Ipv4Endpoint remote, MessageFlags flags, out int sent);
    Errno Receive(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received);
    Errno ReceiveFrom(SocketHandle socket, Span<byte> buffer, MessageFlags flags, out int received, out Ipv4Endpoint remote);
    Errno Shutdown(SocketHandle socket, ShutdownHow how);
    /// <summary>Closes the handle; the connection lingers per SO_LINGER and finishes in the background.</summary>
    Errno Close(SocketHandle socket);
    Errno GetLocalEndpoint(SocketHandle socket, out Ipv4Endpoint local);
    Errno GetRemoteEndpoint(SocketHandle socket, out Ipv4Endpoint remote);
    Errno SetOption(SocketHandle socket, int level, int name, ReadOnlySpan<byte> value);
    Errno GetOption(SocketHandle socket, int level, int name, Span<byte> value, out int length);
    /// <summary>Bytes readable now (FIONREAD).</summary>
    Errno Available(SocketHandle socket, out int bytes);
    /// <summary>Whether the next byte to read is at the urgent mark (SIOCATMARK, TCP).</summary>
    Errno AtUrgentMark(SocketHandle socket, out bool atMark);
    /// <summary>Current readiness of the socket.</summary>
    Readiness GetReadiness(SocketHandle socket);
    /// <summary>The socket's event sequence numbers (edge-triggered readiness).</summary>
    SocketEvents GetEvents(SocketHandle socket);
    /// <summary>Pending error (SO_ERROR), cleared by reading it.</summary>
    Errno TakeError(SocketHandle socket);

    /// <summary>True while closed connections still owe their peers data or a FIN (or packets wait for address
    /// resolution): the stack must keep being polled before its process exits, or these are lost.</summary>
    bool HasUnfinishedOutput { get; }

    /// <summary>Drives the stack: receives from the NIC, runs protocol input and timers, transmits.
    /// Returns the next instant at which timers need it (<see cref="Instant.Never"/> if none).</summary>
    Instant Poll(Instant now);

    /// <summary>Tells the stack the time without receiving or running timers, so that what a call sends next
    /// (segments, their RTT and retransmission clocks) is stamped with it; far cheaper than <see cref="Poll"/>,
    /// which the POSIX layer skips on sends that need nothing from the NIC.</summary>
    void Tick(Instant now) { }

    /// <summary>Datagrams the stack sent to its own address wait for the next <see cref="Poll"/> to be delivered
    /// (a send that skipped the poll polls then, so traffic to itself arrives as soon as on loopback).</summary>
    bool LocalDeliveryPending => false;

    /// <summary>The last <see cref="Poll"/> received nothing (no frame, no local delivery): a waiter spinning on
    /// the stack may give the next poll that poll's time again instead of reading the clock (a sixth of an empty
    /// round on these VMs), for a few rounds at most.</summary>
    bool LastPollIdle => false;

    /// <summary>When true, a datagram send leaves its frame in the stack's transmit burst instead of handing it
    /// to the device at once; the caller promises <see cref="FlushOutput"/> within a bounded time (the POSIX
    /// layer's flush thread). Every poll and every other sending call flushes the burst too.</summary>
    bool BatchDatagrams { get => false; set { } }

    /// <summary>Frames wait in the transmit burst (<see cref="BatchDatagrams"/>).</summary>
    bool OutputPending => false;

    /// <summary>Hands the transmit burst to the device now.</summary>
    void FlushOutput() { }

    /// <summary>Some connection owes its peer an ACK that waits for a reply to carry it.</summary>
    bool AcksOwed => false;

    /// <summary>Sends the ACKs that wait for a reply to carry them now (the program is about to wait for input,
    /// so no reply is coming first).</summary>
    void SendOwedAcks() { }

    /// <summary>Writes the sockets whose <see cref="GetEvents"/> numbers moved since the previous call into
    /// <paramref name="into"/> (repeats possible) and forgets them. False when the stack cannot tell (it keeps
    /// no such record, or more moved than it or <paramref name="into"/> holds): then any socket may have changed.</summary>
    bool TakeEventedSockets(Span<SocketHandle> into, out int count)
    {
        count = 0;
        return false;
    }
}

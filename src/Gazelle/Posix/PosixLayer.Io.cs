using System.Buffers;
using Gazelle.Sockets;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Posix;

public sealed unsafe partial class PosixLayer
{
    private const int MaxIov = 1024; // UIO_MAXIOV
    private const int StackFlagMask = MSG_PEEK | MSG_DONTWAIT | MSG_WAITALL | MSG_NOSIGNAL | 0x8000 /* MSG_MORE */;

    // ---- public entry points: each builds iovecs and goes through one send or receive core ----

    public long Read(int fd, void* buf, nuint n)
    {
        IoVec v = new() { Base = (byte*)buf, Length = n };
        return ReceiveCore(fd, &v, 1, 0, null, null, null, isRead: true);
    }

    public long ReadV(int fd, IoVec* iov, int count) => ReceiveCore(fd, iov, count, 0, null, null, null, isRead: true);

    public long Recv(int fd, void* buf, nuint n, int flags) => RecvFrom(fd, buf, n, flags, null, null);

    public long RecvFrom(int fd, void* buf, nuint n, int flags, void* addr, uint* len)
    {
        // A datagram socket the stack alone serves (sockperf's throughput server: every call) goes straight to the
        // datagram receive: no iovec, no routing of the call (ReceiveCore), a small frame.
        if (n <= int.MaxValue && StackFileOf(fd) is { Kind: SocketKind.Udp } s)
            return ReceiveDatagram(fd, s, Volatile.Read(ref s.Generation), new Span<byte>(buf, (int)n), flags, addr, len, null);
        IoVec v = new() { Base = (byte*)buf, Length = n };
        return ReceiveCore(fd, &v, 1, flags, addr, len, null, isRead: false);
    }

    public long RecvMsg(int fd, MsgHdr* msg, int flags)
    {
        if (msg == null) return -(int)Errno.EFAULT;
        if (msg->IovLength > MaxIov) return -(int)Errno.EMSGSIZE;
        uint nameLen = msg->NameLength;
        int outFlags = 0;
        long r = ReceiveCore(fd, msg->Iov, (int)msg->IovLength, flags, msg->Name, msg->Name != null ? &nameLen : null, &outFlags, isRead: false, kernelMsg: msg);
        if (r >= 0 && outFlags != -1)
        {
            msg->NameLength = msg->Name != null ? nameLen : 0;
            msg->ControlLength = 0;
            msg->Flags = outFlags;
        }
        return r;
    }

    /// <summary>recvmmsg as Linux's do_recvmmsg: each message is a recvmsg with the call's flags (so on a
    /// blocking socket every one waits; MSG_WAITFORONE makes those after the first non-blocking); the
    /// timeout is checked after each datagram only, and the time left is written back.</summary>
    public int RecvMMsg(int fd, MMsgHdr* vec, uint n, int flags, TimeSpec* timeout)
    {
        if (vec == null) return -(int)Errno.EFAULT;
        long end = 0;
        if (timeout != null)
        {
            if (timeout->Seconds < 0 || timeout->Nanoseconds is < 0 or >= 1_000_000_000) return -(int)Errno.EINVAL;
            end = _clock().Microseconds + Math.Min(timeout->Seconds, long.MaxValue / 4_000_000) * 1_000_000 + (timeout->Nanoseconds + 999) / 1000;
        }
        int each = flags & ~MSG_WAITFORONE;
        int i = 0;
        long left = 0, error = 0;
        while (i < n)
        {
            long r = RecvMsg(fd, &vec[i].Header, each);
            if (r < 0)
            {
                error = r;
                break;
            }
            vec[i++].Length = (uint)r;
            if ((flags & MSG_WAITFORONE) != 0) each |= MSG_DONTWAIT;
            if (timeout != null)
            {
                // The clock reads whole microseconds: up to one more than the difference of two readings has passed
                // (a queued datagram is taken in well under one, and the kernel's nanosecond clock always sees time pass).
                left = end - _clock().Microseconds - 1;
                if (left <= 0)
                {
                    left = 0;
                    break;
                }
            }
        }
        if (i == 0) return (int)error;
        if (timeout != null)
        {
            timeout->Seconds = left / 1_000_000;
            timeout->Nanoseconds = left % 1_000_000 * 1000;
        }
        return i;
    }

    public long Write(int fd, void* buf, nuint n)
    {
        IoVec v = new() { Base = (byte*)buf, Length = n };
        return SendCore(fd, &v, 1, 0, null, 0, isWrite: true);
    }

    public long WriteV(int fd, IoVec* iov, int count) => SendCore(fd, iov, count, 0, null, 0, isWrite: true);

    public long Send(int fd, void* buf, nuint n, int flags) => SendTo(fd, buf, n, flags, null, 0);

    public long SendTo(int fd, void* buf, nuint n, int flags, void* addr, uint len)
    {
        // A datagram on a socket the stack alone serves (sockperf's throughput client: every call) goes straight to
        // the one-datagram path: no iovec, no routing of the call (SendCore), a small frame.
        if (n <= int.MaxValue && StackFileOf(fd) is { Kind: SocketKind.Udp } s)
            return SendDatagram(fd, s, Volatile.Read(ref s.Generation), new ReadOnlySpan<byte>(buf, (int)n), flags, addr, len);
        IoVec v = new() { Base = (byte*)buf, Length = n };
        return SendCore(fd, &v, 1, flags, addr, len, isWrite: false);
    }

    public long SendMsg(int fd, MsgHdr* msg, int flags)
    {
        if (msg == null) return -(int)Errno.EFAULT;
        if (msg->IovLength > MaxIov) return -(int)Errno.EMSGSIZE;
        return SendCore(fd, msg->Iov, (int)msg->IovLength, flags, msg->Name, msg->NameLength, isWrite: false, kernelMsg: msg);
    }

    public int SendMMsg(int fd, MMsgHdr* vec, uint n, int flags)
    {
        if (vec == null) return -(int)Errno.EFAULT;
        int i = 0;
        for (; i < n; i++)
        {
            long r = SendMsg(fd, &vec[i].Header, flags);
            if (r < 0)
            {
                if (i == 0) return (int)r;
                break;
            }
            vec[i].Length = (uint)r;
        }
        return i;
    }

    /// <summary>sendfile(out = a stack socket, in = a file): read from the file, send on the stack.</summary>
    public long SendFile(int outFd, int inFd, long* offset, nuint count)
    {
        SocketFile? f;
        using (_lock.Hold())
        {
            f = FileOf(outFd);
            if (f is not null && Materialize(f) is < 0 and var failed) return failed;
        }
        if (f is null || f.Placement != Placement.Stack) return Libc2.SendFile(outFd, inFd, offset, count);
        const int Chunk = 64 * 1024;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Chunk);
        long done = 0;
        try
        {
            fixed (byte* b = buffer)
            {
                while ((ulong)done < count)
                {
                    nuint want = (nuint)Math.Min((ulong)Chunk, count - (ulong)done);
                    long got = offset != null ? Libc.PRead(inFd, b, want, *offset) : Libc.Read(inFd, b, want);
                    if (got < 0) return done > 0 ? done : got;
                    if (got == 0) break;
                    IoVec v = new() { Base = b, Length = (nuint)got };
                    // After the first chunk never block: sendfile returns what it could send.
                    long sent = SendCore(outFd, &v, 1, done > 0 ? MSG_DONTWAIT : 0, null, 0, isWrite: true);
                    if (sent < 0)
                    {
                        if (offset == null) Libc.LSeek(inFd, -got, 1 /* SEEK_CUR */);
                        return done > 0 ? done : sent;
                    }
                    done += sent;
                    if (offset != null) *offset += sent;
                    else if (sent < got) Libc.LSeek(inFd, sent - got, 1);
                    if (sent < got) break;
                }
            }
            return done;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // ---- the cores ---------------------------------------------------------------------------

    private static long KernelRecv(int fd, IoVec* iov, int count, int flags, void* addr, uint* len, MsgHdr* kernelMsg)
    {
        if (kernelMsg != null) return Libc.RecvMsg(fd, kernelMsg, flags);
        MsgHdr m = new() { Name = addr, NameLength = len != null ? *len : 0, Iov = iov, IovLength = (nuint)count };
        long r = Libc.RecvMsg(fd, &m, flags);
        if (r >= 0 && addr != null && len != null) *len = m.NameLength;
        return r;
    }

    private static long KernelSend(int fd, IoVec* iov, int count, int flags, void* addr, uint len, MsgHdr* kernelMsg)
    {
        if (kernelMsg != null) return Libc.SendMsg(fd, kernelMsg, flags);
        MsgHdr m = new() { Name = addr, NameLength = len, Iov = iov, IovLength = (nuint)count };
        return Libc.SendMsg(fd, &m, flags);
    }

    private static long TotalLength(IoVec* iov, int count)
    {
        long total = 0;
        for (int i = 0; i < count; i++)
        {
            total += (long)iov[i].Length;
            if (total > int.MaxValue) return -(int)Errno.EINVAL;
        }
        return total;
    }

    /// <summary>Receives into the iovecs. <paramref name="outFlags"/> is set to -1 when the kernel served the call
    /// (it filled the msghdr itself).</summary>
    private long ReceiveCore(int fd, IoVec* iov, int count, int flags, void* addr, uint* len, int* outFlags, bool isRead, MsgHdr* kernelMsg = null)
    {
        if (count < 0 || count > MaxIov) return -(int)Errno.EINVAL;
        if (count > 0 && iov == null) return -(int)Errno.EFAULT;
        var f = StackFileOf(fd);
        long generation = f is null ? 0 : Volatile.Read(ref f.Generation);
        if (f is null)
        {
            _lock.Enter();
            f = FileOf(fd);
            if (f is not null) generation = f.Generation;
            if (f is null || f.Placement == Placement.Pending || (f.Placement == Placement.Dual && f.Kind == SocketKind.Tcp))
            {
                int m = f is null ? 0 : Materialize(f);
                _lock.Exit();
                if (m < 0) return m;
                if (outFlags != null) *outFlags = -1;
                return isRead ? (count == 1 ? Libc.Read(fd, iov->Base, iov->Length) : KernelRecv(fd, iov, count, 0, null, null, null))
                    : KernelRecv(fd, iov, count, flags, addr, len, kernelMsg);
            }
            _lock.Exit();
        }
        long total = TotalLength(iov, count);
        if (total < 0) return total;
        byte[]? rented = null;
        try
        {
            Span<byte> target;
            if (count == 1) target = new Span<byte>(iov->Base, (int)total);
            else
            {
                rented = ArrayPool<byte>.Shared.Rent((int)total);
                target = rented.AsSpan(0, (int)total);
            }
            long r = f.Kind == SocketKind.Tcp ? ReceiveStream(fd, f, generation, target, flags)
                : ReceiveDatagram(fd, f, generation, target, flags, addr, len, outFlags);
            if (f.Kind == SocketKind.Tcp && addr != null && len != null) *len = 0;
            if (r > 0 && rented is not null) Scatter(rented.AsSpan(0, (int)r), iov, count);
            return r;
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static void Scatter(ReadOnlySpan<byte> data, IoVec* iov, int count)
    {
        for (int i = 0; i < count && !data.IsEmpty; i++)
        {
            int n = (int)Math.Min((ulong)data.Length, iov[i].Length);
            data[..n].CopyTo(new Span<byte>(iov[i].Base, n));
            data = data[n..];
        }
    }

    private long ReceiveStream(int fd, SocketFile f, long generation, Span<byte> target, int flags)
    {
        if (target.IsEmpty) return 0;
        var wait = new BlockingWait(this);
        var mflags = (MessageFlags)(flags & (StackFlagMask | MSG_OOB) & ~MSG_WAITALL);
        bool waitAll = (flags & MSG_WAITALL) != 0 && (flags & (MSG_PEEK | MSG_OOB)) == 0;
        long got = 0;
        bool waited = false;
        while (true)
        {
            Errno e;
            int n;
            bool nonBlocking;
            long timeout;
            using (_lock.Hold())
            {
                if (!Names(fd, f, generation)) return got > 0 ? got : -(int)Errno.EBADF;
                // What is already buffered is taken without polling first (a program usually reads because epoll
                // just said so); only an empty socket polls for news and looks again. Not polling also lets an ACK
                // the stack owes (TcpLayer.AckSoonEnabled) ride on the reply the program is about to send.
                // After a waiting round the socket was empty at the last look, so the round polls and looks once
                // (a look before the poll was a sixth of a spinning round, perf of a TCP ping-pong).
                n = 0;
                e = waited ? Errno.EAGAIN : _stack.Receive(f.Handle, target[(int)got..], mflags, out n); // transmits a window update itself
                if (e == Errno.EAGAIN)
                {
                    PollStack(wait.TakeTimeReuse());
                    e = _stack.Receive(f.Handle, target[(int)got..], mflags, out n);
                }
                if (n > 0 && _stack.LocalDeliveryPending) PollStack(); // ... except to itself: delivered by a poll
                nonBlocking = f.NonBlocking || (flags & (MSG_DONTWAIT | MSG_OOB)) != 0; // MSG_OOB never blocks (Linux)
                timeout = f.ReceiveTimeoutMicros;
            }
            if (e == Errno.Ok)
            {
                if (n == 0) return got; // end of stream
                got += n;
                if (got == target.Length || !waitAll) return got;
                continue;
            }
            if (e != Errno.EAGAIN) return got > 0 ? got : -(int)e;
            if (nonBlocking) return got > 0 ? got : -(int)Errno.EAGAIN;
            int w = wait.Wait(timeout, -1, 0);
            if (w < 0) return got > 0 ? got : w;
            waited = true;
        }
    }

    /// <summary>One datagram: a first look in a small frame (a busy socket's receives end there), the waiting loop
    /// apart (<see cref="ReceiveDatagramWaiting"/>: its wait state made the JIT zero a 240-byte frame in every call,
    /// a third of this method's own time in sockperf's throughput server, perf annotate).</summary>
    private long ReceiveDatagram(int fd, SocketFile f, long generation, Span<byte> target, int flags, void* addr, uint* len, int* outFlags)
    {
        var mflags = (MessageFlags)(flags & StackFlagMask & ~MSG_WAITALL);
        Errno e;
        int n;
        Ipv4Endpoint remote;
        using (_lock.Hold())
        {
            if (!Names(fd, f, generation)) return -(int)Errno.EBADF;
            // A queued datagram is taken without polling first (as TCP takes buffered data): a poll per datagram
            // took in a burst of 32 frames each time while the queue was full (sockperf's throughput server
            // delivered a quarter of the frames it polled in, ReceiveQueueFull the rest); only an empty queue
            // polls for news. Datagrams batched for sending still leave at every receive, and a stream of
            // sends that follows holds nothing until a send follows a send again, as after a poll.
            e = _stack.ReceiveFrom(f.Handle, target, mflags, out n, out remote);
            if (e == Errno.Ok)
            {
                if (_stack.OutputPending) _stack.FlushOutput();
                _sendsSincePoll = 0;
                ResetEdges(f, EPOLLIN);
            }
        }
        if (e == Errno.Ok) return ReceivedDatagram(addr, len, outFlags, remote, n);
        return ReceiveDatagramWaiting(fd, f, generation, target, flags, addr, len, outFlags);
    }

    private static long ReceivedDatagram(void* addr, uint* len, int* outFlags, Ipv4Endpoint remote, int n)
    {
        if (addr != null && len != null)
        {
            int w = WriteEndpoint(addr, len, remote);
            if (w < 0) return w;
        }
        if (outFlags != null) *outFlags = 0;
        return n;
    }

    /// <summary>A datagram receive that found the queue empty: polls, and waits unless non-blocking.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private long ReceiveDatagramWaiting(int fd, SocketFile f, long generation, Span<byte> target, int flags, void* addr, uint* len, int* outFlags)
    {
        var wait = new BlockingWait(this);
        var mflags = (MessageFlags)(flags & StackFlagMask & ~MSG_WAITALL);
        while (true)
        {
            Errno e;
            int n;
            Ipv4Endpoint remote;
            bool nonBlocking, dual;
            long timeout;
            using (_lock.Hold())
            {
                if (!Names(fd, f, generation)) return -(int)Errno.EBADF;
                PollStack(wait.TakeTimeReuse());
                e = _stack.ReceiveFrom(f.Handle, target, mflags, out n, out remote);
                ResetEdges(f, EPOLLIN);
                nonBlocking = f.NonBlocking || (flags & MSG_DONTWAIT) != 0;
                dual = f.Placement == Placement.Dual;
                timeout = f.ReceiveTimeoutMicros;
            }
            if (e == Errno.Ok) return ReceivedDatagram(addr, len, outFlags, remote, n);
            if (e != Errno.EAGAIN) return -(int)e;
            if (dual)
            {
                fixed (byte* b = target)
                {
                    IoVec v = new() { Base = b, Length = (nuint)target.Length };
                    MsgHdr m = new() { Name = addr, NameLength = len != null ? *len : 0, Iov = &v, IovLength = 1 };
                    long k = Libc.RecvMsg(fd, &m, flags | MSG_DONTWAIT);
                    if (k != -(int)Errno.EAGAIN)
                    {
                        if (k >= 0 && len != null) *len = m.NameLength;
                        if (k >= 0 && outFlags != null) *outFlags = m.Flags;
                        return k;
                    }
                }
            }
            if (nonBlocking) return -(int)Errno.EAGAIN;
            int r = wait.Wait(timeout, dual ? fd : -1, EPOLLIN);
            if (r < 0) return r;
        }
    }

    private long SendCore(int fd, IoVec* iov, int count, int flags, void* addr, uint addrLen, bool isWrite, MsgHdr* kernelMsg = null)
    {
        if (count < 0 || count > MaxIov) return -(int)Errno.EINVAL;
        if (count > 0 && iov == null) return -(int)Errno.EFAULT;
        if (StackFileOf(fd) is { } s)
        {
            long g = Volatile.Read(ref s.Generation);
            long n = TotalLength(iov, count);
            if (n < 0) return n;
            return s.Kind == SocketKind.Tcp ? SendStream(fd, s, g, iov, count, flags) : SendDatagram(fd, s, g, iov, count, n, flags, addr, addrLen);
        }
        _lock.Enter();
        var f = FileOf(fd);
        long generation = f?.Generation ?? 0;
        bool toStack = false;
        if (f is not null && f.Placement != Placement.Stack && f.Kind == SocketKind.Udp && addr != null
            && ReadEndpoint(addr, addrLen, out var dest) == 0)
        {
            // An unconnected UDP socket's destination decides (pending: for good; dual: per datagram).
            toStack = _territory.IsStackDestination(dest.Address);
            if (f.Placement == Placement.Pending)
            {
                int r = toStack ? ToStack(f, Placement.Stack) : Release(f);
                if (r < 0)
                {
                    _lock.Exit();
                    return r;
                }
            }
        }
        if (f is null || (f.Placement != Placement.Stack && !toStack))
        {
            int m = f is null ? 0 : Materialize(f);
            _lock.Exit();
            if (m < 0) return m;
            if (isWrite && count == 1) return Libc2.Write(fd, iov->Base, iov->Length);
            long k = KernelSend(fd, iov, count, isWrite ? 0 : flags, isWrite ? null : addr, isWrite ? 0 : addrLen, isWrite ? null : kernelMsg);
            return k;
        }
        _lock.Exit();
        long total = TotalLength(iov, count);
        if (total < 0) return total;
        return f.Kind == SocketKind.Tcp ? SendStream(fd, f, generation, iov, count, flags)
            : SendDatagram(fd, f, generation, iov, count, total, flags, addr, addrLen);
    }

    private long SendStream(int fd, SocketFile f, long generation, IoVec* iov, int count, int flags)
    {
        var wait = new BlockingWait(this);
        var mflags = (MessageFlags)(flags & (StackFlagMask | MSG_OOB));
        long sent = 0;
        int i = 0;
        nuint off = 0;
        bool first = true;
        while (true)
        {
            Errno e;
            bool nonBlocking;
            long timeout;
            using (_lock.Hold())
            {
                if (!Names(fd, f, generation)) return sent > 0 ? sent : -(int)Errno.EBADF;
                if (first) PrepareSend(needsTime: true);
                else PollStack();
                e = SendChunks(f, iov, count, mflags, ref i, ref off, ref sent);
                if (first && e == Errno.EAGAIN)
                {
                    // Out of room without a poll: ACKs that freed space may be waiting in the NIC.
                    PollStack();
                    e = SendChunks(f, iov, count, mflags, ref i, ref off, ref sent);
                }
                if (_stack.LocalDeliveryPending) PollStack(); // to itself: delivered now, as loopback does
                first = false;
                nonBlocking = f.NonBlocking || (flags & MSG_DONTWAIT) != 0;
                timeout = f.SendTimeoutMicros;
            }
            if (i >= count) return sent;
            if (e == Errno.EPIPE)
            {
                if (sent > 0) return sent;
                RaiseSigPipe(flags);
                return -(int)Errno.EPIPE;
            }
            if (e != Errno.EAGAIN) return sent > 0 ? sent : -(int)e;
            if (nonBlocking) return sent > 0 ? sent : -(int)Errno.EAGAIN;
            int w = wait.Wait(timeout, -1, 0);
            if (w < 0) return sent > 0 ? sent : w;
        }
    }

    /// <summary>Sends the iovecs from (<paramref name="i"/>, <paramref name="off"/>) on until done or the stack
    /// refuses (EAGAIN when it took only part). Every chunk but the last goes with MSG_MORE, so the iovecs of
    /// one writev leave as one stream of full segments, as Linux sends them (nginx's header and body were two
    /// segments, the second held by Nagle until the close). Caller holds the lock.</summary>
    private Errno SendChunks(SocketFile f, IoVec* iov, int count, MessageFlags mflags, ref int i, ref nuint off, ref long sent)
    {
        bool held = false; // the last chunk the stack took went with MSG_MORE that the caller did not ask for
        Errno e = Errno.Ok;
        while (i < count)
        {
            nuint left = iov[i].Length - off;
            if (left == 0)
            {
                i++;
                off = 0;
                continue;
            }
            int chunk = (int)Math.Min(left, (nuint)int.MaxValue);
            bool more = (nuint)chunk == left && MoreFollows(iov, i + 1, count);
            var flags = more ? mflags | MessageFlags.More : mflags;
            e = _stack.Send(f.Handle, new ReadOnlySpan<byte>(iov[i].Base + off, chunk), flags, out int n);
            if (e != Errno.Ok) break;
            held = more && (mflags & MessageFlags.More) == 0;
            sent += n;
            off += (nuint)n;
            if (n < chunk)
            {
                e = Errno.EAGAIN;
                break;
            }
        }
        if (held && e != Errno.Ok) _stack.Send(f.Handle, default, mflags, out _); // stopped early: push what MSG_MORE held
        return e;
    }

    private static bool MoreFollows(IoVec* iov, int from, int count)
    {
        for (int k = from; k < count; k++)
            if (iov[k].Length != 0) return true;
        return false;
    }

    private long SendDatagram(int fd, SocketFile f, long generation, IoVec* iov, int count, long total, int flags, void* addr, uint addrLen)
    {
        if (count == 1) return SendDatagram(fd, f, generation, new ReadOnlySpan<byte>(iov->Base, (int)total), flags, addr, addrLen);
        byte[] rented = ArrayPool<byte>.Shared.Rent((int)total);
        try
        {
            int at = 0;
            for (int i = 0; i < count; i++)
            {
                new ReadOnlySpan<byte>(iov[i].Base, (int)iov[i].Length).CopyTo(rented.AsSpan(at));
                at += (int)iov[i].Length;
            }
            return SendDatagram(fd, f, generation, rented.AsSpan(0, (int)total), flags, addr, addrLen);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>One datagram: a first attempt in a small frame (most sends end there), the waiting loop apart
    /// (<see cref="SendDatagramWaiting"/>).</summary>
    private long SendDatagram(int fd, SocketFile f, long generation, ReadOnlySpan<byte> data, int flags, void* addr, uint addrLen)
    {
        Ipv4Endpoint dest = default;
        if (addr != null)
        {
            int r = ReadEndpoint(addr, addrLen, out dest);
            if (r < 0) return r;
        }
        var mflags = (MessageFlags)(flags & StackFlagMask);
        Errno e;
        int n;
        using (_lock.Hold()) e = TrySendDatagram(fd, f, generation, data, addr != null, dest, mflags, first: true, out n);
        if (e == Errno.Ok) return n;
        return SendDatagramFailed(fd, f, generation, data, flags, addr != null, dest, e);
    }

    /// <summary>One try at sending a datagram. Caller holds the lock.</summary>
    private Errno TrySendDatagram(int fd, SocketFile f, long generation, ReadOnlySpan<byte> data, bool hasDest, Ipv4Endpoint dest,
        MessageFlags mflags, bool first, out int n)
    {
        n = 0;
        if (!Names(fd, f, generation)) return Errno.EBADF;
        if (first) PrepareSend(needsTime: false); // UDP stamps nothing with the time
        else PollStack();
        // Held only when it follows another send with no poll between (a stream of datagrams): the
        // first send after a poll leaves at once, so a request/response exchange never holds a frame
        // and never keeps the flush thread looking every period.
        if (_batching) _stack.BatchDatagrams = _sendsSincePoll > 1;
        ResetEdges(f, EPOLLOUT);
        var e = hasDest ? _stack.SendTo(f.Handle, data, dest, mflags, out n) : _stack.Send(f.Handle, data, mflags, out n);
        if (_stack.LocalDeliveryPending) PollStack(); // to itself: delivered now, as loopback does
        if (_batching) NoteHeldOutput();
        return e;
    }

    /// <summary>A datagram send that did not succeed at once: SIGPIPE, errors, and the wait for room (retried after
    /// each round with a poll).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private long SendDatagramFailed(int fd, SocketFile f, long generation, ReadOnlySpan<byte> data, int flags, bool hasDest, Ipv4Endpoint dest, Errno e)
    {
        var mflags = (MessageFlags)(flags & StackFlagMask);
        var wait = new BlockingWait(this);
        while (true)
        {
            if (e == Errno.EPIPE) RaiseSigPipe(flags);
            if (e != Errno.EAGAIN) return -(int)e;
            bool nonBlocking;
            long timeout;
            using (_lock.Hold())
            {
                nonBlocking = f.NonBlocking || (flags & MSG_DONTWAIT) != 0;
                timeout = f.SendTimeoutMicros;
            }
            if (nonBlocking) return -(int)e;
            int w = wait.Wait(timeout, -1, 0);
            if (w < 0) return w;
            // Room comes only as the peer drains the device: with cores to share (2 here, the peer's among them),
            // spinning on would take the peer's time; Linux's sender sleeps until its datagrams leave the qdisc.
            Thread.Yield();
            int n;
            using (_lock.Hold()) e = TrySendDatagram(fd, f, generation, data, hasDest, dest, mflags, first: false, out n);
            if (e == Errno.Ok) return n;
        }
    }
}

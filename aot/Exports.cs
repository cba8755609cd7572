using System.Runtime.InteropServices;
using Gazelle.Posix;

namespace Gazelle.Native;

/// <summary>
/// The entry points libgazelle.so (shim/) calls, one per member of <c>struct gz_stack_api</c>, named
/// gz_&lt;call&gt; with the same C signatures. Each returns a result &gt;= 0 or -errno and never lets an
/// exception cross the native boundary: an exception is logged once and answered with -EIO. The
/// process-wide root (<see cref="Process"/>) is the one piece of static state: the native boundary
/// has no object to hang it on. The stack itself (src/) has none.
/// </summary>
internal static unsafe class Exports
{
    private const int EIO = 5, EBADF = 9;
    private static PreloadProcess? s_process;
    private static int s_loggedFailure;

    internal static PreloadProcess? Process => s_process;

    /// <summary>The POSIX layer, or null when this process runs everything on the kernel (then the shim
    /// never routes an fd here: none is marked).</summary>
    private static PosixLayer? Layer => s_process?.Layer;

    private static int Failed(Exception e)
    {
        if (Interlocked.Exchange(ref s_loggedFailure, 1) == 0)
            Console.Error.WriteLine($"gazelle: internal error ({e.GetType().Name}: {e.Message}); the call failed with EIO (logged once)");
        return -EIO;
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_init")]
    private static int Init(ShimInfo* info)
    {
        try
        {
            if (info == null || info->AbiVersion != ShimAbi.AbiVersion)
            {
                Console.Error.WriteLine($"gazelle: shim/stack ABI mismatch (stack {ShimAbi.AbiVersion}): sockets run on the kernel");
                return -(int)Sockets.Errno.EINVAL;
            }
            s_process = PreloadProcess.Start(new FdKindTable(info->FdTable, info->FdLimit), info->SignalCounts, (nint)info->EpollKernelFds);
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"gazelle: stack failed to start ({e.GetType().Name}: {e.Message}): sockets run on the kernel");
            return -(int)Sockets.Errno.EIO;
        }
    }

    /// <summary>How long an exiting process keeps driving its stack so that closed connections deliver
    /// their data and FIN (<see cref="PosixLayer.FlushAtExit"/>): over memif or a veth that takes
    /// milliseconds; the bound only matters when a peer stopped reading or vanished.</summary>
    private static readonly Time.TimeSpanMicros ExitFlushBound = Time.TimeSpanMicros.FromSeconds(3);

    [UnmanagedCallersOnly(EntryPoint = "gz_exit_flush")]
    private static void ExitFlush()
    {
        try
        {
            if (s_process is not { Layer: { } layer } process) return;
            int leftOpen = process.WantsExitStats ? process.OpenStackSockets() : 0;
            bool delivered = layer.FlushAtExit(ExitFlushBound);
            process.WriteExitStats(leftOpen, delivered);
        }
        catch (Exception e) { Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_socket")]
    private static int Socket(int domain, int type, int protocol)
    {
        try
        {
            var layer = Layer;
            return layer is null ? ShimAbi.Pass : layer.Socket(domain, type, protocol);
        }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_bind")]
    private static int Bind(int fd, void* addr, uint len)
    {
        try { return Layer is { } l ? l.Bind(fd, addr, len) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_listen")]
    private static int Listen(int fd, int backlog)
    {
        try { return Layer is { } l ? l.Listen(fd, backlog) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_accept")]
    private static int Accept(int fd, void* addr, uint* len)
    {
        try { return Layer is { } l ? l.Accept4(fd, addr, len, 0) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_accept4")]
    private static int Accept4(int fd, void* addr, uint* len, int flags)
    {
        try { return Layer is { } l ? l.Accept4(fd, addr, len, flags) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_connect")]
    private static int Connect(int fd, void* addr, uint len)
    {
        try { return Layer is { } l ? l.Connect(fd, addr, len) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_getsockname")]
    private static int GetSockName(int fd, void* addr, uint* len)
    {
        try { return Layer is { } l ? l.GetSockName(fd, addr, len) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_getpeername")]
    private static int GetPeerName(int fd, void* addr, uint* len)
    {
        try { return Layer is { } l ? l.GetPeerName(fd, addr, len) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_getsockopt")]
    private static int GetSockOpt(int fd, int level, int name, void* val, uint* len)
    {
        try { return Layer is { } l ? l.GetSockOpt(fd, level, name, val, len) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_setsockopt")]
    private static int SetSockOpt(int fd, int level, int name, void* val, uint len)
    {
        try { return Layer is { } l ? l.SetSockOpt(fd, level, name, val, len) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_shutdown")]
    private static int Shutdown(int fd, int how)
    {
        try { return Layer is { } l ? l.Shutdown(fd, how) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_close")]
    private static int Close(int fd)
    {
        try { return Layer is { } l ? l.Close(fd) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_read")]
    private static nint Read(int fd, void* buf, nuint n)
    {
        try { return Layer is { } l ? (nint)l.Read(fd, buf, n) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_readv")]
    private static nint ReadV(int fd, IoVec* iov, int count)
    {
        try { return Layer is { } l ? (nint)l.ReadV(fd, iov, count) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_write")]
    private static nint Write(int fd, void* buf, nuint n)
    {
        try { return Layer is { } l ? (nint)l.Write(fd, buf, n) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_writev")]
    private static nint WriteV(int fd, IoVec* iov, int count)
    {
        try { return Layer is { } l ? (nint)l.WriteV(fd, iov, count) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_recv")]
    private static nint Recv(int fd, void* buf, nuint n, int flags)
    {
        try { return Layer is { } l ? (nint)l.Recv(fd, buf, n, flags) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_recvfrom")]
    private static nint RecvFrom(int fd, void* buf, nuint n, int flags, void* addr, uint* len)
    {
        try { return Layer is { } l ? (nint)l.RecvFrom(fd, buf, n, flags, addr, len) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_recvmsg")]
    private static nint RecvMsg(int fd, MsgHdr* msg, int flags)
    {
        try { return Layer is { } l ? (nint)l.RecvMsg(fd, msg, flags) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_recvmmsg")]
    private static int RecvMMsg(int fd, MMsgHdr* vec, uint n, int flags, TimeSpec* timeout)
    {
        try { return Layer is { } l ? l.RecvMMsg(fd, vec, n, flags, timeout) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_send")]
    private static nint Send(int fd, void* buf, nuint n, int flags)
    {
        try { return Layer is { } l ? (nint)l.Send(fd, buf, n, flags) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_sendto")]
    private static nint SendTo(int fd, void* buf, nuint n, int flags, void* addr, uint len)
    {
        try { return Layer is { } l ? (nint)l.SendTo(fd, buf, n, flags, addr, len) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_sendmsg")]
    private static nint SendMsg(int fd, MsgHdr* msg, int flags)
    {
        try { return Layer is { } l ? (nint)l.SendMsg(fd, msg, flags) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_sendmmsg")]
    private static int SendMMsg(int fd, MMsgHdr* vec, uint n, int flags)
    {
        try { return Layer is { } l ? l.SendMMsg(fd, vec, n, flags) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_sendfile")]
    private static nint SendFile(int fd, int inFd, long* offset, nuint n)
    {
        try { return Layer is { } l ? (nint)l.SendFile(fd, inFd, offset, n) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_sendfile64")]
    private static nint SendFile64(int fd, int inFd, long* offset, nuint n)
    {
        try { return Layer is { } l ? (nint)l.SendFile(fd, inFd, offset, n) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_dup")]
    private static int Dup(int fd)
    {
        try { return Layer is { } l ? l.Dup(fd) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_epoll_wait")]
    private static int EpollWait(int fd, EpollEvent* events, int max, int timeout)
    {
        try { return Layer is { } l ? l.EpollWait(fd, events, max, timeout, null) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_epoll_pwait")]
    private static int EpollPWait(int fd, EpollEvent* events, int max, int timeout, void* mask)
    {
        try { return Layer is { } l ? l.EpollWait(fd, events, max, timeout, mask) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_fcntl")]
    private static int Fcntl(int fd, int cmd, long arg)
    {
        try { return Layer is { } l ? l.Fcntl(fd, cmd, arg) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_ioctl")]
    private static int Ioctl(int fd, nuint request, void* arg)
    {
        try { return Layer is { } l ? l.Ioctl(fd, request, arg) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_dup2")]
    private static int Dup2(int oldfd, int newfd)
    {
        try { return Layer is { } l ? l.Dup2(oldfd, newfd) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_dup3")]
    private static int Dup3(int oldfd, int newfd, int flags)
    {
        try { return Layer is { } l ? l.Dup3(oldfd, newfd, flags) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_epoll_ctl")]
    private static int EpollCtl(int epfd, int op, int fd, EpollEvent* ev)
    {
        try { return Layer is { } l ? l.EpollCtl(epfd, op, fd, ev) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_poll")]
    private static int Poll(PollFd* fds, nuint n, int timeout)
    {
        try { return Layer is { } l ? l.Poll(fds, n, timeout) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_ppoll")]
    private static int PPoll(PollFd* fds, nuint n, TimeSpec* timeout, void* mask)
    {
        try { return Layer is { } l ? l.PPoll(fds, n, timeout, mask) : -EBADF; }
        catch (Exception e) { return Failed(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_select")]
    private static int Select(int nfds, ulong* r, ulong* w, ulong* e, TimeVal* timeout)
    {
        try { return Layer is { } l ? l.Select(nfds, r, w, e, timeout) : -EBADF; }
        catch (Exception ex) { return Failed(ex); }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_pselect")]
    private static int PSelect(int nfds, ulong* r, ulong* w, ulong* e, TimeSpec* timeout, void* mask)
    {
        try { return Layer is { } l ? l.PSelect(nfds, r, w, e, timeout, mask) : -EBADF; }
        catch (Exception ex) { return Failed(ex); }
    }

    /// <summary>Called by the shim in the parent just before fork(): the child of a fork never enters .NET (only
    /// the forking thread survives there; the shim answers its stack sockets itself, see gazelle_shim.c), so
    /// what the child inherits must be whole first (<see cref="PosixLayer.BeforeFork"/>).</summary>
    [UnmanagedCallersOnly(EntryPoint = "gz_before_fork")]
    private static void BeforeFork()
    {
        try { Layer?.BeforeFork(); }
        catch (Exception e) { Failed(e); }
    }

    /// <summary>close_range/closefrom, before the shim lets the kernel close the range (<see cref="PosixLayer.CloseRange"/>).</summary>
    [UnmanagedCallersOnly(EntryPoint = "gz_close_range")]
    private static int CloseRange(uint first, uint last, int flags)
    {
        try { return Layer is { } l ? l.CloseRange(first, last, flags) : 0; }
        catch (Exception e) { return Failed(e); }
    }

    /// <summary>
    /// The process's stats ("name value" lines, docs/stats.md) into <paramref name="buf"/> (NUL-terminated,
    /// cut at <paramref name="size"/> - 1 bytes). Returns the full length, as snprintf does, or -ENOTCONN when
    /// the stack serves nothing in this process.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "gz_stats")]
    private static long Stats(byte* buf, nuint size)
    {
        try
        {
            if (s_process?.Stats() is not { } text) return -(int)Sockets.Errno.ENOTCONN;
            var bytes = System.Text.Encoding.UTF8.GetBytes(text);
            if (buf != null && size > 0)
            {
                int n = (int)Math.Min((nuint)bytes.Length, size - 1);
                bytes.AsSpan(0, n).CopyTo(new Span<byte>(buf, n));
                buf[n] = 0;
            }
            return bytes.Length;
        }
        catch (Exception e) { return Failed(e); }
    }

    /// <summary>Forces a full blocking collection (diagnostics and the preload tests).</summary>
    [UnmanagedCallersOnly(EntryPoint = "gz_debug_collect")]
    private static long DebugCollect()
    {
        try
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            return GC.CollectionCount(2);
        }
        catch (Exception e) { return Failed(e); }
    }
}

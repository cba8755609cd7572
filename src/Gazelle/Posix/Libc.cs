using System.Runtime.InteropServices;

namespace Gazelle.Posix;

/// <summary>
/// The kernel side, straight from libc. In the preloaded process the stack library is loaded with
/// RTLD_DEEPBIND and these resolve through dlopen("libc.so.6")/dlsym, so they reach libc itself and
/// never the shim's interposed definitions. Each returns -errno on failure (never sets anything global).
/// </summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc.so.6";

    private static int R(int r) => r >= 0 ? r : -Marshal.GetLastPInvokeError();
    private static long R(nint r) => r >= 0 ? r : -Marshal.GetLastPInvokeError();

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)] private static partial int socket_(int d, int t, int p);
    public static int Socket(int domain, int type, int protocol) => R(socket_(domain, type, protocol));

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)] private static partial int close_(int fd);
    public static int Close(int fd) => R(close_(fd));

    [LibraryImport(Lib, EntryPoint = "bind", SetLastError = true)] private static partial int bind_(int fd, void* a, uint l);
    public static int Bind(int fd, void* addr, uint len) => R(bind_(fd, addr, len));

    [LibraryImport(Lib, EntryPoint = "listen", SetLastError = true)] private static partial int listen_(int fd, int b);
    public static int Listen(int fd, int backlog) => R(listen_(fd, backlog));

    [LibraryImport(Lib, EntryPoint = "accept4", SetLastError = true)] private static partial int accept4_(int fd, void* a, uint* l, int f);
    public static int Accept4(int fd, void* addr, uint* len, int flags) => R(accept4_(fd, addr, len, flags));

    [LibraryImport(Lib, EntryPoint = "connect", SetLastError = true)] private static partial int connect_(int fd, void* a, uint l);
    public static int Connect(int fd, void* addr, uint len) => R(connect_(fd, addr, len));

    [LibraryImport(Lib, EntryPoint = "getsockname", SetLastError = true)] private static partial int getsockname_(int fd, void* a, uint* l);
    public static int GetSockName(int fd, void* addr, uint* len) => R(getsockname_(fd, addr, len));

    [LibraryImport(Lib, EntryPoint = "getpeername", SetLastError = true)] private static partial int getpeername_(int fd, void* a, uint* l);
    public static int GetPeerName(int fd, void* addr, uint* len) => R(getpeername_(fd, addr, len));

    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)] private static partial int setsockopt_(int fd, int lv, int n, void* v, uint l);
    public static int SetSockOpt(int fd, int level, int name, void* val, uint len) => R(setsockopt_(fd, level, name, val, len));

    [LibraryImport(Lib, EntryPoint = "getsockopt", SetLastError = true)] private static partial int getsockopt_(int fd, int lv, int n, void* v, uint* l);
    public static int GetSockOpt(int fd, int level, int name, void* val, uint* len) => R(getsockopt_(fd, level, name, val, len));

    [LibraryImport(Lib, EntryPoint = "shutdown", SetLastError = true)] private static partial int shutdown_(int fd, int how);
    public static int Shutdown(int fd, int how) => R(shutdown_(fd, how));

    // fcntl and ioctl are variadic in C; every argument we pass is one integer-class register, which
    // the x86-64 SysV convention passes identically for variadic and fixed parameters.
    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)] private static partial int fcntl_(int fd, int cmd, nint arg);
    public static int Fcntl(int fd, int cmd, nint arg) => R(fcntl_(fd, cmd, arg));

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)] private static partial int ioctl_(int fd, nuint req, void* arg);
    public static int Ioctl(int fd, ulong request, void* arg) => R(ioctl_(fd, (nuint)request, arg));

    [LibraryImport(Lib, EntryPoint = "dup", SetLastError = true)] private static partial int dup_(int fd);
    public static int Dup(int fd) => R(dup_(fd));

    [LibraryImport(Lib, EntryPoint = "dup2", SetLastError = true)] private static partial int dup2_(int o, int n);
    public static int Dup2(int oldfd, int newfd) => R(dup2_(oldfd, newfd));

    [LibraryImport(Lib, EntryPoint = "dup3", SetLastError = true)] private static partial int dup3_(int o, int n, int f);
    public static int Dup3(int oldfd, int newfd, int flags) => R(dup3_(oldfd, newfd, flags));

    [LibraryImport(Lib, EntryPoint = "eventfd", SetLastError = true)] private static partial int eventfd_(uint init, int flags);
    public static int EventFd(uint initial, int flags) => R(eventfd_(initial, flags));

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)] private static partial nint read_(int fd, void* b, nuint n);
    public static long Read(int fd, void* buf, nuint n) => R(read_(fd, buf, n));

    [LibraryImport(Lib, EntryPoint = "pread64", SetLastError = true)] private static partial nint pread_(int fd, void* b, nuint n, long off);
    public static long PRead(int fd, void* buf, nuint n, long offset) => R(pread_(fd, buf, n, offset));

    [LibraryImport(Lib, EntryPoint = "lseek64", SetLastError = true)] private static partial long lseek_(int fd, long off, int whence);
    public static long LSeek(int fd, long offset, int whence)
    {
        long r = lseek_(fd, offset, whence);
        return r >= 0 ? r : -Marshal.GetLastPInvokeError();
    }

    [LibraryImport(Lib, EntryPoint = "recvfrom", SetLastError = true)] private static partial nint recvfrom_(int fd, void* b, nuint n, int f, void* a, uint* l);
    public static long RecvFrom(int fd, void* buf, nuint n, int flags, void* addr, uint* len) => R(recvfrom_(fd, buf, n, flags, addr, len));

    [LibraryImport(Lib, EntryPoint = "recvmsg", SetLastError = true)] private static partial nint recvmsg_(int fd, MsgHdr* m, int f);
    public static long RecvMsg(int fd, MsgHdr* msg, int flags) => R(recvmsg_(fd, msg, flags));

    [LibraryImport(Lib, EntryPoint = "sendto", SetLastError = true)] private static partial nint sendto_(int fd, void* b, nuint n, int f, void* a, uint l);
    public static long SendTo(int fd, void* buf, nuint n, int flags, void* addr, uint len) => R(sendto_(fd, buf, n, flags, addr, len));

    [LibraryImport(Lib, EntryPoint = "sendmsg", SetLastError = true)] private static partial nint sendmsg_(int fd, MsgHdr* m, int f);
    public static long SendMsg(int fd, MsgHdr* msg, int flags) => R(sendmsg_(fd, msg, flags));

    [LibraryImport(Lib, EntryPoint = "poll", SetLastError = true)] private static partial int poll_(PollFd* f, nuint n, int t);
    public static int Poll(PollFd* fds, nuint n, int timeoutMs) => R(poll_(fds, n, timeoutMs));

    [LibraryImport(Lib, EntryPoint = "ppoll", SetLastError = true)] private static partial int ppoll_(PollFd* f, nuint n, TimeSpec* t, void* m);
    public static int PPoll(PollFd* fds, nuint n, TimeSpec* timeout, void* sigmask) => R(ppoll_(fds, n, timeout, sigmask));

    [LibraryImport(Lib, EntryPoint = "pselect", SetLastError = true)] private static partial int pselect_(int n, void* r, void* w, void* e, TimeSpec* t, void* m);
    public static int PSelect(int nfds, void* r, void* w, void* e, TimeSpec* timeout, void* sigmask) => R(pselect_(nfds, r, w, e, timeout, sigmask));

    [LibraryImport(Lib, EntryPoint = "epoll_ctl", SetLastError = true)] private static partial int epoll_ctl_(int ep, int op, int fd, EpollEvent* e);
    public static int EpollCtl(int epfd, int op, int fd, EpollEvent* ev) => R(epoll_ctl_(epfd, op, fd, ev));

    [LibraryImport(Lib, EntryPoint = "epoll_pwait", SetLastError = true)] private static partial int epoll_pwait_(int ep, EpollEvent* e, int max, int t, void* m);
    public static int EpollPWait(int epfd, EpollEvent* events, int max, int timeoutMs, void* sigmask) => R(epoll_pwait_(epfd, events, max, timeoutMs, sigmask));

    [LibraryImport(Lib, EntryPoint = "epoll_pwait2", SetLastError = true)] private static partial int epoll_pwait2_(int ep, EpollEvent* e, int max, TimeSpec* t, void* m);
    /// <summary>epoll_pwait with a timeout finer than a millisecond (Linux 5.11, glibc 2.35).</summary>
    public static int EpollPWait2(int epfd, EpollEvent* events, int max, TimeSpec* timeout, void* sigmask) => R(epoll_pwait2_(epfd, events, max, timeout, sigmask));

    [LibraryImport(Lib, EntryPoint = "epoll_create1", SetLastError = true)] private static partial int epoll_create1_(int flags);
    public static int EpollCreate1(int flags) => R(epoll_create1_(flags));

    // futex(2) through syscall(2) (glibc has no wrapper); x86-64 numbers: the stack is built for linux-x64 only.
    private const long SysFutex = 202;
    private const int FutexWaitPrivate = 0 | 128, FutexWakePrivate = 1 | 128;
    [LibraryImport(Lib, EntryPoint = "syscall")] private static partial long syscall_futex(long n, int* addr, int op, int val, void* timeout, void* addr2, int val3);
    /// <summary>Sleeps while <c>*addr == expected</c> (returns at once otherwise, on a wake-up or on a signal).</summary>
    public static void FutexWait(int* addr, int expected) => syscall_futex(SysFutex, addr, FutexWaitPrivate, expected, null, null, 0);
    /// <summary>Wakes up to <paramref name="count"/> threads sleeping on <paramref name="addr"/>.</summary>
    public static void FutexWake(int* addr, int count) => syscall_futex(SysFutex, addr, FutexWakePrivate, count, null, null, 0);

    [LibraryImport(Lib, EntryPoint = "getpid")] public static partial int GetPid();
    [LibraryImport(Lib, EntryPoint = "gettid")] public static partial int GetTid();
    [LibraryImport(Lib, EntryPoint = "tgkill", SetLastError = true)] private static partial int tgkill_(int tgid, int tid, int sig);
    public static int TgKill(int tgid, int tid, int sig) => R(tgkill_(tgid, tid, sig));
}

internal static unsafe partial class Libc2
{
    private const string Lib = "libc.so.6";

    [LibraryImport(Lib, EntryPoint = "sendfile64", SetLastError = true)] private static partial nint sendfile_(int o, int i, long* off, nuint n);
    public static long SendFile(int outFd, int inFd, long* offset, nuint n)
    {
        nint r = sendfile_(outFd, inFd, offset, n);
        return r >= 0 ? r : -Marshal.GetLastPInvokeError();
    }

    [LibraryImport(Lib, EntryPoint = "readlink", SetLastError = true)] private static partial nint readlink_(byte* path, byte* buf, nuint n);
    /// <summary>True when <paramref name="fd"/> is an epoll instance (its /proc link names "anon_inode:[eventpoll]").</summary>
    public static bool IsEpoll(int fd)
    {
        byte* path = stackalloc byte[40];
        byte* buf = stackalloc byte[64];
        var p = new Span<byte>(path, 40);
        if (!System.Text.Unicode.Utf8.TryWrite(p, $"/proc/self/fd/{fd}\0", out _)) return false;
        nint n = readlink_(path, buf, 64);
        return n > 0 && new ReadOnlySpan<byte>(buf, (int)n).SequenceEqual("anon_inode:[eventpoll]"u8);
    }
}

internal static unsafe partial class Libc2
{
    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)] private static partial nint write_(int fd, void* b, nuint n);
    public static long Write(int fd, void* buf, nuint n)
    {
        nint r = write_(fd, buf, n);
        return r >= 0 ? r : -Marshal.GetLastPInvokeError();
    }
}

internal static unsafe partial class Libc2
{
    [LibraryImport(Lib, EntryPoint = "pthread_sigmask")] private static partial int pthread_sigmask_(int how, ulong* set, ulong* old);
    /// <summary>pthread_sigmask over glibc sigset_t buffers (<see cref="LinuxAbi.SigSetWords"/> words); returns 0 or -errno.</summary>
    public static int PthreadSigmask(int how, ulong* set, ulong* old) => -pthread_sigmask_(how, set, old);
}

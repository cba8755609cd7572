using System.Runtime.InteropServices;

namespace Gazelle.Posix;

/// <summary>Linux x86-64 constants the POSIX layer speaks (values from the kernel's uapi headers).</summary>
public static class LinuxAbi
{
    public const int AF_UNSPEC = 0, AF_INET = 2;
    public const int SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
    public const int IPPROTO_TCP = 6, IPPROTO_UDP = 17;
    public const int SOL_SOCKET = 1;
    public const int SO_TYPE = 3, SO_ERROR = 4, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21, SO_ACCEPTCONN = 30,
        SO_PROTOCOL = 38, SO_DOMAIN = 39;
    public const int O_NONBLOCK = 0x800, O_RDWR = 2, O_CLOEXEC = 0x80000;
    /// <summary>F_SETFL flags besides O_NONBLOCK that Linux takes or refuses per file: O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME.</summary>
    public const int KernelOnlyStatusFlags = 0x400 | 0x2000 | 0x4000 | 0x40000;
    public const int F_DUPFD = 0, F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;
    public const int FD_CLOEXEC = 1;
    public const ulong FIONREAD = 0x541B, FIONBIO = 0x5421, SIOCATMARK = 0x8905;
    public const int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;
    public const int EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 0x1, EPOLLPRI = 0x2, EPOLLOUT = 0x4, EPOLLERR = 0x8, EPOLLHUP = 0x10,
        EPOLLRDHUP = 0x2000, EPOLLEXCLUSIVE = 1u << 28, EPOLLWAKEUP = 1u << 29, EPOLLONESHOT = 1u << 30, EPOLLET = 1u << 31;
    public const short POLLNVAL = 0x20;
    public const int MSG_OOB = 0x1, MSG_PEEK = 0x2, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_WAITALL = 0x100,
        MSG_NOSIGNAL = 0x4000, MSG_WAITFORONE = 0x10000;
    public const int SIGPIPE = 13;
    public const int SIG_BLOCK = 0, SIG_SETMASK = 2;
    /// <summary>Words of glibc's sigset_t (1024 bits); the kernel uses the first (signals 1..64).</summary>
    public const int SigSetWords = 16;
    public const int FD_SETSIZE = 1024;
    public const int SizeOfSockAddrIn = 16;
}

/// <summary><c>struct sockaddr_in</c>: port and address in network order.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct SockAddrIn
{
    public ushort Family;
    public ushort PortNetworkOrder;
    public uint AddressNetworkOrder;
    public ulong Zero;
}

/// <summary><c>struct iovec</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct IoVec
{
    public byte* Base;
    public nuint Length;
}

/// <summary><c>struct msghdr</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary><c>struct mmsghdr</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct MMsgHdr
{
    public MsgHdr Header;
    public uint Length;
}

/// <summary><c>struct epoll_event</c>: packed on x86-64 (12 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct EpollEvent
{
    public uint Events;
    public ulong Data;
}

/// <summary><c>struct pollfd</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PollFd
{
    public int Fd;
    public short Events;
    public short Revents;
}

/// <summary><c>struct timespec</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct TimeSpec
{
    public long Seconds;
    public long Nanoseconds;

    public static TimeSpec FromMicros(long micros) => new() { Seconds = micros / 1_000_000, Nanoseconds = micros % 1_000_000 * 1000 };
}

/// <summary><c>struct timeval</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct TimeVal
{
    public long Seconds;
    public long Microseconds;
}

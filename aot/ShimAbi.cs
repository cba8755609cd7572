using System.Runtime.InteropServices;

namespace Gazelle.Native;

/// <summary>The C side of the shim contract; keep in step with shim/gazelle_abi.h.</summary>
internal static class ShimAbi
{
    public const int AbiVersion = 3;
    /// <summary>Returned by gz_socket when the socket is not the stack's: the shim calls libc.</summary>
    public const int Pass = 1 << 30;

    public const byte FdKernel = 0;
    public const byte FdSocket = 1;
    public const byte FdPending = 2;
    public const byte FdEpoll = 3;
    public const byte FdPooled = 4;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct ShimInfo
{
    public byte* FdTable;
    public int FdLimit;
    public int AbiVersion;
    /// <summary>struct gz_signal_counts *(*)(void): the calling thread's signal-handler counts.</summary>
    public nint SignalCounts;
    /// <summary>int[FdLimit]: per fd number, the kernel fds registered in the epoll there as the shim counts them
    /// (shim/gazelle_abi.h, epoll_kernel_fds).</summary>
    public int* EpollKernelFds;
}

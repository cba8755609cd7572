namespace Gazelle.Posix;

/// <summary>What the shim's one-byte-per-fd ownership table says (shim/gazelle_abi.h, enum gz_fd_kind).</summary>
public enum FdKind : byte
{
    /// <summary>Not ours: the shim calls libc without entering .NET.</summary>
    Kernel = 0,
    /// <summary>A socket served by the stack (its number is held by a kernel fd, the reservation).</summary>
    Socket = 1,
    /// <summary>An IPv4 socket not yet placed, or one served by both sides (a listen on INADDR_ANY).</summary>
    Pending = 2,
    /// <summary>An epoll instance that watches stack sockets.</summary>
    Epoll = 3,
    /// <summary>A number the program closed that the layer keeps reserved for its next socket (PosixLayer.FdNumbers.cs):
    /// the shim answers every call on it as on a closed fd (EBADF) and routes dup2/dup3 onto it to the layer.</summary>
    Pooled = 4,
}

/// <summary>
/// A view of the shim's fd-ownership table (native memory the shim owns; in tests a buffer the test
/// allocates). Every non-zero kind routes the fd's calls to the POSIX layer.
/// </summary>
public readonly unsafe struct FdKindTable(byte* table, int limit)
{
    public int Limit => limit;

    public FdKind this[int fd]
    {
        get => (uint)fd < (uint)limit ? (FdKind)table[fd] : FdKind.Kernel;
        set
        {
            if ((uint)fd < (uint)limit) table[fd] = (byte)value;
        }
    }

    /// <summary>True when <paramref name="fd"/> can be marked (fds at or above the limit always stay the kernel's).</summary>
    public bool CanMark(int fd) => (uint)fd < (uint)limit;
}

namespace Gazelle.Native;

/// <summary>The shim's fd-ownership table (one byte per fd): the stack marks the fds it serves.</summary>
internal readonly unsafe struct FdTable(byte* table, int limit)
{
    public int Limit => limit;
    public byte this[int fd]
    {
        get => (uint)fd < (uint)limit ? table[fd] : ShimAbi.FdKernel;
        set
        {
            if ((uint)fd < (uint)limit) table[fd] = value;
        }
    }
}

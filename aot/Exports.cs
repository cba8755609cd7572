using System.Runtime.InteropServices;

namespace Gazelle.Native;

/// <summary>
/// The entry points libgazelle.so (shim/) calls. Each returns a result &gt;= 0 or -errno and never lets
/// an exception cross the native boundary. The process-wide root (<see cref="Process"/>) is the one
/// piece of static state: the native boundary has no object to hang it on. The stack itself (src/)
/// has none.
/// </summary>
internal static unsafe class Exports
{
    private static PreloadProcess? s_process;

    internal static PreloadProcess? Process => s_process;

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
            s_process = PreloadProcess.Start(new FdTable(info->FdTable, info->FdLimit));
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"gazelle: stack failed to start ({e.GetType().Name}: {e.Message}): sockets run on the kernel");
            return -(int)Sockets.Errno.EIO;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "gz_socket")]
    private static int Socket(int domain, int type, int protocol)
    {
        var process = s_process;
        return process is null ? ShimAbi.Pass : process.Socket(domain, type, protocol);
    }

    /// <summary>Forces a full blocking collection (diagnostics and the preload tests).</summary>
    [UnmanagedCallersOnly(EntryPoint = "gz_debug_collect")]
    private static long DebugCollect()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.CollectionCount(2);
    }
}

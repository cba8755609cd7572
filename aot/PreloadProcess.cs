namespace Gazelle.Native;

/// <summary>
/// Everything the preload library keeps for one process: its configuration, its stacks and the fd
/// table it shares with the shim. Without a usable configuration it serves nothing and every socket
/// stays on the kernel.
/// </summary>
internal sealed class PreloadProcess
{
    private readonly FdTable _fds;

    private PreloadProcess(FdTable fds) => _fds = fds;

    public static PreloadProcess Start(FdTable fds)
    {
        string? path = Environment.GetEnvironmentVariable("GAZELLE_CONF") ?? Environment.GetEnvironmentVariable("LSTACK_CONF_PATH");
        if (string.IsNullOrEmpty(path))
            Console.Error.WriteLine("gazelle: no configuration (set GAZELLE_CONF to an lstack.conf): sockets run on the kernel");
        return new PreloadProcess(fds);
    }

    /// <summary>socket(2) for AF_INET stream/datagram sockets.</summary>
    public int Socket(int domain, int type, int protocol) => ShimAbi.Pass;
}

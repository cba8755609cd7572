namespace Gazelle.Sockets;

/// <summary>SO_SNDBUF / SO_RCVBUF values as Linux's sock_setsockopt stores and getsockopt reports them.</summary>
public static class SocketBufferSize
{
    /// <summary>Linux's SOCK_MIN_SNDBUF / SOCK_MIN_RCVBUF on x86-64 (2 and 1 times 2048 plus an aligned
    /// struct sk_buff), what getsockopt reports after a tiny request.</summary>
    public const int MinSend = 4608, MinReceive = 2304;

    /// <summary>Linux's net.core.wmem_default: SO_SNDBUF of a UDP socket never set.</summary>
    public const int DefaultDatagramSend = 212992;

    /// <summary>The request read as unsigned, clamped to <paramref name="max"/> (net.core.[wr]mem_max) and
    /// INT_MAX/2, doubled for bookkeeping overhead, at least <paramref name="min"/>. A stack that keeps
    /// payload only sizes its buffer at half of it.</summary>
    public static int FromRequest(int request, int max, int min)
    {
        long v = Math.Min((uint)request, Math.Min((uint)Math.Max(max, 0), int.MaxValue / 2));
        return (int)Math.Max(2 * v, min);
    }
}

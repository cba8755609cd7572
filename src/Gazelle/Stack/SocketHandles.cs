using Gazelle.Sockets;

namespace Gazelle.Stack;

/// <summary>
/// The one place that encodes which transport a <see cref="SocketHandle"/> belongs to: UDP handles carry
/// <see cref="UdpTag"/> (bit 30) over the UDP slot index; every other valid handle is the TCP layer's
/// own (which must stay below 2^30).
/// </summary>
public static class SocketHandles
{
    public const int UdpTag = 1 << 30;

    public static SocketHandle Udp(int index) => new(UdpTag | index);
    public static bool IsUdp(SocketHandle h) => h.Value >= 0 && (h.Value & UdpTag) != 0;
    public static int UdpIndex(SocketHandle h) => h.Value & ~UdpTag;
    public static bool IsTcp(SocketHandle h) => h.Value >= 0 && (h.Value & UdpTag) == 0;
}

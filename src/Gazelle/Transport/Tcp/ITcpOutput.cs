using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// What TCP needs from the IP layer below it. The IP layer implements it: it rents a packet buffer,
/// writes the TCP header (checksum with the pseudo-header, RFC 9293 §3.1), the IPv4 header and the
/// Ethernet header in the buffer's headroom, resolves the next hop through ARP, and transmits.
/// </summary>
public interface ITcpOutput
{
    /// <summary>Emits one segment. Its payload is <paramref name="payload1"/> followed by
    /// <paramref name="payload2"/> (a send ring may wrap). Returns false when it could not be queued
    /// (no buffer, ARP queue full): TCP treats that as a loss and relies on retransmission.</summary>
    bool Send(Ipv4Address local, Ipv4Address remote, in TcpRepr header,
              ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2, byte tos);

    /// <summary>Path MTU toward <paramref name="remote"/> in IP bytes (link MTU, lowered by RFC 1191
    /// fragmentation-needed messages); TCP derives its MSS from it.</summary>
    int PathMtu(Ipv4Address remote);
}

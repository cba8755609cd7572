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
    /// (no buffer, ARP queue full): TCP treats that as a loss and relies on retransmission. The payload lies in the
    /// connection's send ring: pinned memory (<see cref="RingPool"/>) that nothing writes before the stack's next
    /// flush (it ends every socket call and poll), so the IP layer may hand it to the device by reference.</summary>
    bool Send(Ipv4Address local, Ipv4Address remote, in TcpRepr header,
              ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2, byte tos);

    /// <summary>As <see cref="Send"/>, with the payload's folded one's complement sum already known (RFC 1071; the send
    /// ring keeps the sums of the bytes it holds, taken as they were copied in): the payload is then copied or handed
    /// to the device without another pass to sum it. An output that cannot use the sum sends as <see cref="Send"/>.</summary>
    bool SendSummed(Ipv4Address local, Ipv4Address remote, in TcpRepr header,
                    ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2, uint payloadSum, byte tos) =>
        Send(local, remote, header, payload1, payload2, tos);

    /// <summary>Path MTU toward <paramref name="remote"/> in IP bytes (link MTU, lowered by RFC 1191
    /// fragmentation-needed messages); TCP derives its MSS from it.</summary>
    int PathMtu(Ipv4Address remote);
}

using Gazelle.Sockets;
using Gazelle.Wire;

namespace Gazelle.Network;

/// <summary>What a datagram needs from the IP layer.</summary>
public readonly record struct Ipv4SendParams(Ipv4Address Source, Ipv4Address Destination, byte Protocol, byte Ttl = 64, byte Tos = 0, bool DontFragment = false);

/// <summary>The IP layer as seen by transports.</summary>
public interface IIpOutput
{
    Ipv4Address LocalAddress { get; }
    /// <summary>True for the limited broadcast and our subnet's broadcast address.</summary>
    bool IsBroadcast(Ipv4Address address);
    /// <summary>Sends one datagram whose upper-layer bytes are <paramref name="header"/> (checksum already
    /// filled in) then <paramref name="payload1"/> then <paramref name="payload2"/>; fragments it when it
    /// exceeds the path MTU (unless DF). Ok also when the packet waits for ARP.</summary>
    Errno Send(in Ipv4SendParams p, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2);
    /// <summary>As <see cref="Send"/>, the transport checksum still to be written: <paramref name="headerSum"/> is the
    /// folded sum of the pseudo-header and of <paramref name="header"/> (its checksum field zero); the payload is
    /// summed while it is copied and the checksum goes at <paramref name="checksumOffset"/> in the header.</summary>
    Errno SendChecksummed(in Ipv4SendParams p, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2,
        int checksumOffset, uint headerSum);
    /// <summary>Path MTU toward <paramref name="destination"/> in IP bytes.</summary>
    int PathMtu(Ipv4Address destination);
    /// <summary>Whether a datagram of <paramref name="length"/> bytes (IP payload) to <paramref name="destination"/> can
    /// be queued for the device now. False while the device refuses frames and the link's queue is full: the sender
    /// waits (a non-blocking one gets EAGAIN) until the link regains room (EthernetLink.RoomRegained).</summary>
    bool TryMakeRoom(Ipv4Address destination, int length) => true;
}

/// <summary>An ICMP error about a datagram we sent, as handed to the transport that sent it.</summary>
/// <remarks><see cref="QuotedSequence"/> is bytes 4..7 of the quoted transport header (TCP's sequence
/// number, RFC 5927 §4.1 checks it), or 0 when the quote is shorter.</remarks>
public readonly record struct IcmpError(Icmpv4Type Type, byte Code, byte Protocol, Ipv4Endpoint Local, Ipv4Endpoint Remote, int NextHopMtu, SeqNum QuotedSequence);

/// <summary>Receives ICMP errors for transport endpoints.</summary>
public interface IIcmpErrorSink
{
    /// <summary>Returns true when an endpoint matched.</summary>
    bool OnIcmpError(in IcmpError error);
}

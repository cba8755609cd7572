using Gazelle.Buffers;
using Gazelle.Wire;

namespace Gazelle.Devices;

/// <summary>
/// A network interface in poll mode: the one interface through which protocol code reaches any
/// device (DPDK port, in-memory user-veth, and decorators such as impairment and pcap capture).
/// Protocol code never names a concrete device.
/// </summary>
public interface INic
{
    MacAddress MacAddress { get; }
    /// <summary>Largest IP packet (L3 bytes) the link carries.</summary>
    int Mtu { get; }
    int QueueCount { get; }
    NicOffloads Offloads { get; }
    /// <summary>Pool to rent transmit buffers from (headroom reserved for every header).</summary>
    IPacketPool TxPool { get; }

    /// <summary>Receives up to <c>frames.Length</c> frames from <paramref name="queue"/>; the caller owns
    /// (and must release) each returned buffer, whose data starts at the Ethernet header.</summary>
    int Receive(int queue, Span<PacketBuffer> frames);

    /// <summary>Queues frames for transmission on <paramref name="queue"/>. The device takes ownership of
    /// the first N frames it returns; the caller still owns (and releases or retries) the rest.</summary>
    int Transmit(int queue, ReadOnlySpan<PacketBuffer> frames);
}

/// <summary>Offloads a device offers. Callers ask, never assume; software does the rest.</summary>
[Flags]
public enum NicOffloads
{
    None = 0,
    Ipv4ChecksumRx = 1 << 0,
    TcpUdpChecksumRx = 1 << 1,
    Ipv4ChecksumTx = 1 << 2,
    TcpUdpChecksumTx = 1 << 3,
    TcpSegmentation = 1 << 4,
    RssHash = 1 << 5,
    /// <summary>Received frames never crossed a medium that could corrupt them (frames copied between processes'
    /// memory, as Linux's loopback and veth declare with CHECKSUM_UNNECESSARY): the stack does not verify their
    /// TCP checksums. A decorator that alters frames (impairment) must not pass it on.</summary>
    RxChecksumUnnecessary = 1 << 6,
    /// <summary>Transmit copies every frame out of its buffers before it returns (net_memif's copy mode), so a frame may
    /// carry its payload by reference (<see cref="Buffers.PacketBuffer.ExternalData1"/>) to memory that its producer
    /// leaves unchanged only until then: TCP's segments go from the send ring to the device without a copy into a packet
    /// buffer. A decorator that keeps frames past Transmit (impairment, capture) must not pass it on.</summary>
    TxPayloadByReference = 1 << 7,
}

using System.Runtime.CompilerServices;

namespace Gazelle.Wire;

/// <summary>TCP header flags (RFC 9293 §3.1, RFC 3168 for ECE/CWR).</summary>
[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
    Ece = 0x40,
    Cwr = 0x80,
}

/// <summary>One SACK block (RFC 2018 §3): the left edge and the sequence number just past the right edge.</summary>
public readonly record struct SackBlock(SeqNum Left, SeqNum Right);

/// <summary>Room for the at most 4 SACK blocks a 40-byte option space can carry (RFC 2018 §3).</summary>
[InlineArray(MaxBlocks)]
public struct SackBlockArray
{
    public const int MaxBlocks = 4;
    private SackBlock _first;
}

/// <summary>The TCP options this stack understands (RFC 9293 §3.2, RFC 7323, RFC 2018). Absent options
/// are marked by <see cref="Mss"/> = 0, <see cref="WindowScale"/> = <see cref="NoWindowScale"/>,
/// <see cref="HasTimestamp"/> = false, <see cref="SackCount"/> = 0.</summary>
public struct TcpOptions
{
    public const byte NoWindowScale = 0xFF;

    public ushort Mss;
    public byte WindowScale;
    public bool SackPermitted;
    public bool HasTimestamp;
    public uint TsVal;
    public uint TsEcr;
    public byte SackCount;
    public SackBlockArray Sack;

    public static TcpOptions None => new() { WindowScale = NoWindowScale };
    public readonly bool HasWindowScale => WindowScale != NoWindowScale;
}

/// <summary>
/// A parsed TCP header: what TCP state machines consume and produce. The wire view (TcpHeader) parses
/// it from bytes and emits it into bytes; the payload travels beside it, never inside it.
/// </summary>
public struct TcpRepr
{
    public ushort SrcPort;
    public ushort DstPort;
    public SeqNum Seq;
    public SeqNum Ack;
    public TcpFlags Flags;
    /// <summary>The raw 16-bit window field (unscaled).</summary>
    public ushort Window;
    public ushort UrgentPointer;
    public TcpOptions Options;

    public readonly bool Has(TcpFlags f) => (Flags & f) == f;

    /// <summary>Sequence space the segment occupies: payload + 1 for SYN + 1 for FIN (RFC 9293 §3.4).</summary>
    public readonly int SegmentLength(int payloadLength) =>
        payloadLength + ((Flags & TcpFlags.Syn) != 0 ? 1 : 0) + ((Flags & TcpFlags.Fin) != 0 ? 1 : 0);
}

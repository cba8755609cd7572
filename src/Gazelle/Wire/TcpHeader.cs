using System.Buffers.Binary;

namespace Gazelle.Wire;

/// <summary>TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).</summary>
public static class TcpOptionKind
{
    public const byte EndOfList = 0;
    public const byte Nop = 1;
    public const byte Mss = 2;
    public const byte WindowScale = 3;
    public const byte SackPermitted = 4;
    public const byte Sack = 5;
    public const byte Timestamp = 8;
}

/// <summary>
/// A view over a TCP segment (RFC 9293 §3.1): source port (0..1), destination port (2..3), sequence
/// (4..7), acknowledgment (8..11), data offset (12, high nibble), flags (13), window (14..15),
/// checksum (16..17), urgent pointer (18..19), options (20..offset*4), payload.
/// </summary>
public readonly ref struct TcpHeader
{
    public const int SourcePortOffset = 0;
    public const int DestinationPortOffset = 2;
    public const int SeqOffset = 4;
    public const int AckOffset = 8;
    public const int DataOffsetOffset = 12;
    public const int FlagsOffset = 13;
    public const int WindowOffset = 14;
    public const int ChecksumOffset = 16;
    public const int UrgentOffset = 18;
    public const int MinHeaderLength = 20;
    public const int MaxHeaderLength = 60;
    public const int MaxOptionsLength = 40;

    private readonly ReadOnlySpan<byte> _bytes;

    private TcpHeader(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>Validates the data offset against the bytes present (the segment is all of <paramref name="bytes"/>).</summary>
    public static bool TryCreate(ReadOnlySpan<byte> bytes, out TcpHeader header)
    {
        header = default;
        if (bytes.Length < MinHeaderLength) return false;
        int off = (bytes[DataOffsetOffset] >> 4) * 4;
        if (off < MinHeaderLength || off > bytes.Length) return false;
        header = new TcpHeader(bytes);
        return true;
    }

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[SourcePortOffset..]);
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[DestinationPortOffset..]);
    public SeqNum Seq => new(BinaryPrimitives.ReadUInt32BigEndian(_bytes[SeqOffset..]));
    public SeqNum Ack => new(BinaryPrimitives.ReadUInt32BigEndian(_bytes[AckOffset..]));
    public int HeaderLength => (_bytes[DataOffsetOffset] >> 4) * 4;
    public TcpFlags Flags => (TcpFlags)_bytes[FlagsOffset];
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_bytes[WindowOffset..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumOffset..]);
    public ushort UrgentPointer => BinaryPrimitives.ReadUInt16BigEndian(_bytes[UrgentOffset..]);
    public ReadOnlySpan<byte> Options => _bytes[MinHeaderLength..HeaderLength];
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>Verifies the checksum over the pseudo-header and the whole segment (RFC 9293 §3.1).</summary>
    public bool VerifyChecksum(Ipv4Address source, Ipv4Address destination)
    {
        uint s = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(source, destination, IpProtocol.Tcp, _bytes.Length), InternetChecksum.Sum(_bytes));
        return s == 0xFFFF;
    }

    /// <summary>Parses the header and its options into <paramref name="repr"/>; fails on malformed options.</summary>
    public bool TryParse(out TcpRepr repr)
    {
        repr = new TcpRepr
        {
            SrcPort = SourcePort,
            DstPort = DestinationPort,
            Seq = Seq,
            Ack = Ack,
            Flags = Flags,
            Window = Window,
            UrgentPointer = UrgentPointer,
            Options = TcpOptions.None,
        };
        return TryParseOptions(Options, ref repr.Options);
    }

    /// <summary>
    /// Parses an option list. EOL ends it; NOP is skipped; unknown kinds are skipped by their length.
    /// Fails when a length byte is missing, below 2, runs past the end, or does not fit a known kind
    /// (MSS 4, WS 3, SACK-permitted 2, SACK 2+8n with n in 1..4, timestamps 10).
    /// </summary>
    public static bool TryParseOptions(ReadOnlySpan<byte> options, ref TcpOptions parsed)
    {
        // The layout nearly every data segment and ACK carries (RFC 7323 Appendix A: NOP, NOP, TS):
        // read it in one step (header prediction, as BSD and Linux do).
        if (options.Length == 12 && BinaryPrimitives.ReadUInt32BigEndian(options) == 0x0101_080A)
        {
            parsed.HasTimestamp = true;
            parsed.TsVal = BinaryPrimitives.ReadUInt32BigEndian(options[4..]);
            parsed.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(options[8..]);
            return true;
        }
        int i = 0;
        while (i < options.Length)
        {
            byte kind = options[i];
            if (kind == TcpOptionKind.EndOfList) break;
            if (kind == TcpOptionKind.Nop)
            {
                i++;
                continue;
            }
            if (i + 1 >= options.Length) return false;
            int len = options[i + 1];
            if (len < 2 || i + len > options.Length) return false;
            var body = options.Slice(i + 2, len - 2);
            switch (kind)
            {
                case TcpOptionKind.Mss:
                    if (len != 4) return false;
                    parsed.Mss = BinaryPrimitives.ReadUInt16BigEndian(body);
                    break;
                case TcpOptionKind.WindowScale:
                    if (len != 3) return false;
                    // RFC 7323 §2.3: a shift above 14 is used as 14.
                    parsed.WindowScale = Math.Min(body[0], (byte)14);
                    break;
                case TcpOptionKind.SackPermitted:
                    if (len != 2) return false;
                    parsed.SackPermitted = true;
                    break;
                case TcpOptionKind.Sack:
                {
                    int n = (len - 2) / 8;
                    if ((len - 2) % 8 != 0 || n < 1 || n > SackBlockArray.MaxBlocks) return false;
                    for (int b = 0; b < n; b++)
                    {
                        parsed.Sack[b] = new SackBlock(
                            new SeqNum(BinaryPrimitives.ReadUInt32BigEndian(body[(b * 8)..])),
                            new SeqNum(BinaryPrimitives.ReadUInt32BigEndian(body[(b * 8 + 4)..])));
                    }
                    parsed.SackCount = (byte)n;
                    break;
                }
                case TcpOptionKind.Timestamp:
                    if (len != 10) return false;
                    parsed.HasTimestamp = true;
                    parsed.TsVal = BinaryPrimitives.ReadUInt32BigEndian(body);
                    parsed.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                    break;
            }
            i += len;
        }
        return true;
    }

    /// <summary>How many SACK blocks of <paramref name="options"/> fit in the 40-byte option space
    /// beside the other options.</summary>
    public static int SackBlocksThatFit(in TcpOptions options)
    {
        if (options.SackCount == 0) return 0;
        int room = MaxOptionsLength - FixedOptionsLength(options) - 4;
        return Math.Clamp(room / 8, 0, Math.Min((int)options.SackCount, SackBlockArray.MaxBlocks));
    }

    private static int FixedOptionsLength(in TcpOptions o)
    {
        int len = 0;
        if (o.Mss != 0) len += 4;
        if (o.HasWindowScale) len += 4;
        if (o.HasTimestamp) len += 12;
        else if (o.SackPermitted) len += 4;
        return len;
    }

    /// <summary>Header length (20 + options, a multiple of 4, at most 60) that <see cref="Emit"/> writes.</summary>
    public static int EmittedLength(in TcpRepr repr)
    {
        int sack = SackBlocksThatFit(repr.Options);
        return MinHeaderLength + FixedOptionsLength(repr.Options) + (sack > 0 ? 4 + sack * 8 : 0);
    }

    /// <summary>
    /// Writes the header and options (NOP-padded to 4-byte words; SACK blocks that do not fit are left
    /// out) into <paramref name="buffer"/> with a zero checksum; returns the header length. Fill the
    /// checksum with <see cref="WriteChecksum"/> once the payload is in place.
    /// </summary>
    public static int Emit(in TcpRepr repr, Span<byte> buffer)
    {
        int hlen = EmittedLength(repr);
        var h = buffer[..hlen];
        BinaryPrimitives.WriteUInt16BigEndian(h[SourcePortOffset..], repr.SrcPort);
        BinaryPrimitives.WriteUInt16BigEndian(h[DestinationPortOffset..], repr.DstPort);
        BinaryPrimitives.WriteUInt32BigEndian(h[SeqOffset..], repr.Seq.Value);
        BinaryPrimitives.WriteUInt32BigEndian(h[AckOffset..], repr.Ack.Value);
        h[DataOffsetOffset] = (byte)((hlen / 4) << 4);
        h[FlagsOffset] = (byte)repr.Flags;
        BinaryPrimitives.WriteUInt16BigEndian(h[WindowOffset..], repr.Window);
        BinaryPrimitives.WriteUInt16BigEndian(h[ChecksumOffset..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(h[UrgentOffset..], repr.UrgentPointer);

        ref readonly var o = ref repr.Options;
        var p = h[MinHeaderLength..];
        int i = 0;
        if (o.Mss != 0)
        {
            p[i] = TcpOptionKind.Mss; p[i + 1] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(p[(i + 2)..], o.Mss);
            i += 4;
        }
        if (o.HasWindowScale)
        {
            p[i] = TcpOptionKind.Nop; p[i + 1] = TcpOptionKind.WindowScale; p[i + 2] = 3; p[i + 3] = o.WindowScale;
            i += 4;
        }
        if (o.HasTimestamp)
        {
            // SACK-permitted rides in the two bytes that would otherwise be NOP padding.
            if (o.SackPermitted) { p[i] = TcpOptionKind.SackPermitted; p[i + 1] = 2; }
            else { p[i] = TcpOptionKind.Nop; p[i + 1] = TcpOptionKind.Nop; }
            p[i + 2] = TcpOptionKind.Timestamp; p[i + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(p[(i + 4)..], o.TsVal);
            BinaryPrimitives.WriteUInt32BigEndian(p[(i + 8)..], o.TsEcr);
            i += 12;
        }
        else if (o.SackPermitted)
        {
            p[i] = TcpOptionKind.Nop; p[i + 1] = TcpOptionKind.Nop; p[i + 2] = TcpOptionKind.SackPermitted; p[i + 3] = 2;
            i += 4;
        }
        int sack = SackBlocksThatFit(o);
        if (sack > 0)
        {
            p[i] = TcpOptionKind.Nop; p[i + 1] = TcpOptionKind.Nop; p[i + 2] = TcpOptionKind.Sack; p[i + 3] = (byte)(2 + 8 * sack);
            i += 4;
            for (int b = 0; b < sack; b++)
            {
                BinaryPrimitives.WriteUInt32BigEndian(p[i..], o.Sack[b].Left.Value);
                BinaryPrimitives.WriteUInt32BigEndian(p[(i + 4)..], o.Sack[b].Right.Value);
                i += 8;
            }
        }
        return hlen;
    }

    /// <summary>Computes and stores the checksum of <paramref name="segment"/> (header + payload in place).</summary>
    public static void WriteChecksum(Span<byte> segment, Ipv4Address source, Ipv4Address destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(segment[ChecksumOffset..], 0);
        uint s = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(source, destination, IpProtocol.Tcp, segment.Length), InternetChecksum.Sum(segment));
        BinaryPrimitives.WriteUInt16BigEndian(segment[ChecksumOffset..], InternetChecksum.Finish(s));
    }
}

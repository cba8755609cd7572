using System.Buffers.Binary;
using Gazelle.Time;

namespace Gazelle.Devices.Capture;

/// <summary>
/// Writes the classic libpcap file format (magic 0xa1b2c3d4, version 2.4, microsecond timestamps) with link
/// type LINKTYPE_ETHERNET (1), readable by tshark/Wireshark/tcpdump. Fields are written little-endian; readers
/// detect byte order from the magic. Allocation-free per frame (a fixed record-header buffer and
/// <see cref="Stream.Write(ReadOnlySpan{byte})"/>). Not thread-safe.
/// </summary>
public sealed class PcapWriter : IDisposable
{
    public const uint Magic = 0xA1B2C3D4;
    public const ushort VersionMajor = 2;
    public const ushort VersionMinor = 4;
    public const uint LinkTypeEthernet = 1;
    public const int FileHeaderLength = 24;
    public const int RecordHeaderLength = 16;

    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private readonly byte[] _record = new byte[RecordHeaderLength];

    /// <param name="stream">Destination (a file, or memory in tests).</param>
    /// <param name="snapLength">Longest part of a frame kept; longer frames are cut and keep their original length.</param>
    /// <param name="ownsStream">Whether <see cref="Dispose"/> closes the stream.</param>
    public PcapWriter(Stream stream, int snapLength = 65535, bool ownsStream = true)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (snapLength <= 0) throw new ArgumentOutOfRangeException(nameof(snapLength));
        _stream = stream;
        _ownsStream = ownsStream;
        SnapLength = snapLength;
        Span<byte> h = stackalloc byte[FileHeaderLength];
        BinaryPrimitives.WriteUInt32LittleEndian(h, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], VersionMajor);
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], VersionMinor);
        BinaryPrimitives.WriteInt32LittleEndian(h[8..], 0);   // thiszone: timestamps are UTC/virtual
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 0); // sigfigs
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], (uint)snapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], LinkTypeEthernet);
        _stream.Write(h);
    }

    /// <summary>Opens (creating or truncating) a capture file.</summary>
    public static PcapWriter Create(string path, int snapLength = 65535) =>
        new(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16), snapLength);

    public int SnapLength { get; }
    /// <summary>Records written.</summary>
    public long Records { get; private set; }

    /// <summary>Appends one frame stamped with <paramref name="timestamp"/> (microseconds since the epoch or since
    /// the virtual clock's origin).</summary>
    public void Write(Instant timestamp, ReadOnlySpan<byte> frame)
    {
        long us = Math.Max(0, timestamp.Microseconds);
        int captured = Math.Min(frame.Length, SnapLength);
        var r = _record.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(r, (uint)(us / 1_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(r[4..], (uint)(us % 1_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(r[8..], (uint)captured);
        BinaryPrimitives.WriteUInt32LittleEndian(r[12..], (uint)frame.Length);
        _stream.Write(r);
        _stream.Write(frame[..captured]);
        Records++;
    }

    public void Flush() => _stream.Flush();

    public void Dispose()
    {
        _stream.Flush();
        if (_ownsStream) _stream.Dispose();
    }
}

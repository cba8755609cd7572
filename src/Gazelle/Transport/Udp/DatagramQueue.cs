using Gazelle.Wire;

namespace Gazelle.Transport.Udp;

/// <summary>
/// A socket's receive queue: datagrams stored back to back in one byte ring (a datagram never wraps:
/// when it does not fit at the end it starts again at 0), bounded both in count and in bytes.
/// </summary>
public sealed class DatagramQueue
{
    private struct Entry
    {
        public int Offset;
        public int Length;
        public Ipv4Endpoint Remote;
        /// <summary>Placed at 0 because it did not fit at the end of the ring.</summary>
        public bool Wrapped;
    }

    private byte[] _ring;
    private readonly Entry[] _entries;
    private int _first;
    private int _count;
    private int _head;
    private int _tail;
    private bool _wrapped;

    public DatagramQueue(int bytes, int maxDatagrams)
    {
        _ring = new byte[bytes];
        _entries = new Entry[maxDatagrams];
    }

    public int Count => _count;
    public int CapacityBytes => _ring.Length;
    /// <summary>Payload bytes queued.</summary>
    public int Bytes { get; private set; }
    /// <summary>Length of the oldest datagram, or 0.</summary>
    public int NextLength => _count == 0 ? 0 : _entries[_first].Length;

    /// <summary>Queues a copy of <paramref name="data"/>; false when it does not fit (count or bytes).</summary>
    public bool TryEnqueue(ReadOnlySpan<byte> data, Ipv4Endpoint remote)
    {
        if (_count == _entries.Length) return false;
        int len = data.Length;
        int pos;
        bool wrappedStart = false;
        if (_count == 0)
        {
            if (len > _ring.Length) return false;
            _head = _tail = 0;
            _wrapped = false;
            pos = 0;
            _tail = len;
        }
        else if (!_wrapped)
        {
            if (_tail + len <= _ring.Length)
            {
                pos = _tail;
                _tail += len;
            }
            else if (len <= _head)
            {
                pos = 0;
                _tail = len;
                _wrapped = true;
                wrappedStart = true;
            }
            else return false;
        }
        else
        {
            if (_tail + len > _head) return false;
            pos = _tail;
            _tail += len;
        }
        data.CopyTo(_ring.AsSpan(pos, len));
        int slot = _first + _count; // the ring's index without a division (two per datagram were 3% of a UDP server)
        if (slot >= _entries.Length) slot -= _entries.Length;
        _entries[slot] = new Entry { Offset = pos, Length = len, Remote = remote, Wrapped = wrappedStart };
        _count++;
        Bytes += len;
        return true;
    }

    /// <summary>Copies the oldest datagram into <paramref name="buffer"/> (truncating); removes it unless
    /// <paramref name="peek"/>. Returns its full length, or -1 when empty.</summary>
    public int Dequeue(Span<byte> buffer, bool peek, out int copied, out Ipv4Endpoint remote)
    {
        copied = 0;
        remote = default;
        if (_count == 0) return -1;
        ref var e = ref _entries[_first];
        copied = Math.Min(buffer.Length, e.Length);
        _ring.AsSpan(e.Offset, copied).CopyTo(buffer);
        remote = e.Remote;
        int length = e.Length;
        if (!peek) Drop();
        return length;
    }

    private void Drop()
    {
        Bytes -= _entries[_first].Length;
        _entries[_first] = default;
        if (++_first == _entries.Length) _first = 0;
        _count--;
        if (_count == 0)
        {
            _first = 0;
            _head = _tail = 0;
            _wrapped = false;
            return;
        }
        ref var next = ref _entries[_first];
        _head = next.Offset;
        if (next.Wrapped)
        {
            next.Wrapped = false;
            _wrapped = false;
        }
    }

    public void Clear()
    {
        while (_count > 0) Drop();
    }

    /// <summary>Changes the byte bound (SO_RCVBUF); only while empty, so no data moves.</summary>
    public bool TryResize(int bytes)
    {
        if (_count != 0) return false;
        if (bytes != _ring.Length) _ring = new byte[bytes];
        return true;
    }
}

using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

/// <summary>Sorted, disjoint [left, right) sequence intervals in two fixed arrays (out-of-order map and SACK
/// scoreboard). No allocation.</summary>
internal static class IntervalList
{
    /// <summary>Merges [l, r) into the list. Returns the index of the interval holding it, or -1 when the
    /// list is full and the range touches no existing interval.</summary>
    public static int Add(SeqNum[] left, SeqNum[] right, ref int count, SeqNum l, SeqNum r)
    {
        int i = 0;
        while (i < count && right[i] < l) i++;
        if (i < count && left[i] <= r)
        {
            // Overlaps or touches interval i: extend it and swallow the following ones it reaches.
            if (l < left[i]) left[i] = l;
            if (r > right[i]) right[i] = r;
            int j = i + 1;
            while (j < count && left[j] <= right[i])
            {
                if (right[j] > right[i]) right[i] = right[j];
                j++;
            }
            int removed = j - (i + 1);
            if (removed > 0)
            {
                for (int k = j; k < count; k++) { left[k - removed] = left[k]; right[k - removed] = right[k]; }
                count -= removed;
            }
            return i;
        }
        if (count == left.Length) return -1;
        for (int k = count; k > i; k--) { left[k] = left[k - 1]; right[k] = right[k - 1]; }
        left[i] = l; right[i] = r;
        count++;
        return i;
    }

    /// <summary>Drops everything below <paramref name="seq"/>; returns the number of bytes removed.</summary>
    public static int TrimBelow(SeqNum[] left, SeqNum[] right, ref int count, SeqNum seq)
    {
        int bytes = 0;
        int drop = 0;
        while (drop < count && right[drop] <= seq) { bytes += right[drop] - left[drop]; drop++; }
        if (drop > 0)
        {
            for (int k = drop; k < count; k++) { left[k - drop] = left[k]; right[k - drop] = right[k]; }
            count -= drop;
        }
        if (count > 0 && left[0] < seq) { bytes += seq - left[0]; left[0] = seq; }
        return bytes;
    }

    public static int TotalBytes(SeqNum[] left, SeqNum[] right, int count)
    {
        int b = 0;
        for (int i = 0; i < count; i++) b += right[i] - left[i];
        return b;
    }
}

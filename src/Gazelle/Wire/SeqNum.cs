namespace Gazelle.Wire;

/// <summary>
/// A TCP sequence number: arithmetic modulo 2^32, comparisons per RFC 9293 §3.4 (a &lt; b iff
/// (int)(a - b) &lt; 0). Never throws.
/// </summary>
public readonly record struct SeqNum(uint Value)
{
    public static SeqNum operator +(SeqNum s, int n) => new(unchecked(s.Value + (uint)n));
    public static SeqNum operator +(SeqNum s, uint n) => new(unchecked(s.Value + n));
    public static SeqNum operator -(SeqNum s, int n) => new(unchecked(s.Value - (uint)n));
    /// <summary>Signed distance a - b (valid while |a - b| &lt; 2^31).</summary>
    public static int operator -(SeqNum a, SeqNum b) => unchecked((int)(a.Value - b.Value));
    public static bool operator <(SeqNum a, SeqNum b) => unchecked((int)(a.Value - b.Value)) < 0;
    public static bool operator >(SeqNum a, SeqNum b) => unchecked((int)(a.Value - b.Value)) > 0;
    public static bool operator <=(SeqNum a, SeqNum b) => unchecked((int)(a.Value - b.Value)) <= 0;
    public static bool operator >=(SeqNum a, SeqNum b) => unchecked((int)(a.Value - b.Value)) >= 0;
    public static SeqNum Max(SeqNum a, SeqNum b) => a >= b ? a : b;
    public static SeqNum Min(SeqNum a, SeqNum b) => a <= b ? a : b;
    /// <summary>lo &lt;= this &lt; hi, modulo 2^32.</summary>
    public bool InRange(SeqNum lo, SeqNum hi) => this >= lo && this < hi;
    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

using Gazelle.Wire;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// HyStart++ (RFC 9406): the initial slow start of a connection watches the minimum RTT of each round
/// and, when it rises by a threshold (the queue at the bottleneck starts to fill), leaves slow start
/// before a loss for Conservative Slow Start (CSS: a quarter of the growth); CSS ends in congestion
/// avoidance after <see cref="CssRounds"/> rounds (ssthresh = cwnd), or goes back to slow start if
/// the RTT falls below the baseline again (the rise was jitter). Used by NewReno and CUBIC alike
/// (RFC 9406 §4; RFC 9438 §4.10). Only the initial slow start uses it (§4.3): once ssthresh is set
/// by a loss or by CSS, later slow starts stop at ssthresh as usual.
/// </summary>
internal sealed class HyStart
{
    // RFC 9406 §4.3 constants.
    public const long MinRttThreshMicros = 4_000;
    public const long MaxRttThreshMicros = 16_000;
    public const int MinRttDivisor = 8;
    public const int NRttSample = 8;
    public const int CssGrowthDivisor = 4;
    public const int CssRounds = 5;
    /// <summary>Growth limit per ACK in segments: 8 for a sender without pacing (§4.2).</summary>
    public const int L = 8;

    private const long Infinite = long.MaxValue;
    private long _lastRoundMinRtt, _currentRoundMinRtt, _cssBaselineMinRtt;
    private int _rttSampleCount, _cssRoundCount;
    private SeqNum _windowEnd;
    private bool _roundOpen;

    /// <summary>In the initial slow start with HyStart++ on.</summary>
    public bool Active { get; private set; }
    /// <summary>In Conservative Slow Start.</summary>
    public bool InCss { get; private set; }

    public void Reset(bool enabled)
    {
        Active = enabled;
        InCss = false;
        _lastRoundMinRtt = _currentRoundMinRtt = _cssBaselineMinRtt = Infinite;
        _rttSampleCount = _cssRoundCount = 0;
        _windowEnd = default;
        _roundOpen = false;
    }

    /// <summary>A loss or timeout ended slow start: the rest of the connection uses standard slow start.</summary>
    public void Stop()
    {
        Active = false;
        InCss = false;
    }

    /// <summary>
    /// The cwnd increase (bytes) for an ACK of <paramref name="ackedBytes"/> new bytes in slow start,
    /// given the RTT sample that ACK produced (-1: none). May end slow start (sets ssthresh = cwnd).
    /// </summary>
    public int OnSlowStartAck(Tcb t, int ackedBytes, long rttMicros, TcpCounters counters)
    {
        int mss = t.EffectiveMss;
        if (!Active) return Math.Min(ackedBytes, 2 * mss); // RFC 5681 §3.1 with RFC 3465 L=2
        int growth = Math.Min(ackedBytes, L * mss);
        if (!_roundOpen || t.SndUna >= _windowEnd)
        {
            // A round ends when the ACK for windowEnd arrives; the next one ends at SND.NXT (§4.2).
            _lastRoundMinRtt = _currentRoundMinRtt;
            _currentRoundMinRtt = Infinite;
            _rttSampleCount = 0;
            _windowEnd = t.SndMax;
            _roundOpen = true;
            if (InCss && ++_cssRoundCount >= CssRounds)
            {
                counters.HyStartExits++;
                t.Ssthresh = t.Cwnd; // congestion avoidance from here
                Stop();
                return 0;
            }
        }
        if (rttMicros >= 0)
        {
            _currentRoundMinRtt = Math.Min(_currentRoundMinRtt, rttMicros);
            _rttSampleCount++;
        }
        bool enough = _rttSampleCount >= NRttSample && _currentRoundMinRtt != Infinite;
        if (!InCss)
        {
            if (enough && _lastRoundMinRtt != Infinite)
            {
                long thresh = Math.Clamp(_lastRoundMinRtt / MinRttDivisor, MinRttThreshMicros, MaxRttThreshMicros);
                if (_currentRoundMinRtt >= _lastRoundMinRtt + thresh)
                {
                    counters.HyStartCssEntered++;
                    _cssBaselineMinRtt = _currentRoundMinRtt;
                    _cssRoundCount = 0;
                    InCss = true;
                }
            }
            return growth;
        }
        if (enough && _currentRoundMinRtt < _cssBaselineMinRtt)
        {
            // The RTT rise was not a queue: back to slow start (§4.2).
            counters.HyStartCssSpurious++;
            _cssBaselineMinRtt = Infinite;
            InCss = false;
            return growth;
        }
        return growth / CssGrowthDivisor;
    }
}

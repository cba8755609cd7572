using Gazelle.Time;

namespace Gazelle.Transport.Tcp;

/// <summary>
/// Window growth and reduction of one connection. Loss detection and recovery (fast retransmit, SACK
/// scoreboard, RTO) live in the TCB; the algorithm only decides cwnd and ssthresh (bytes).
/// </summary>
internal interface ICongestionControl
{
    /// <summary>Linux name, for TCP_CONGESTION.</summary>
    string Name { get; }
    void Reset();
    /// <summary>New data acknowledged outside recovery: grow cwnd (slow start below ssthresh, RFC 5681 §3.1,
    /// the initial one with HyStart++, RFC 9406, through <see cref="Tcb.HyStart"/>).</summary>
    void OnAck(Tcb t, int ackedBytes, Instant now);
    /// <summary>Loss detected by duplicate ACKs / SACK: returns the new ssthresh.</summary>
    int OnCongestionEvent(Tcb t, Instant now);
    /// <summary>Retransmission timeout: returns the new ssthresh (cwnd becomes one segment).</summary>
    int OnRetransmitTimeout(Tcb t, Instant now);
}

/// <summary>NewReno window management (RFC 5681 §3.1, with appropriate byte counting, RFC 3465 L=2).</summary>
internal sealed class RenoCongestion : ICongestionControl
{
    private int _bytesAcked;
    public string Name => "reno";
    public void Reset() => _bytesAcked = 0;

    public void OnAck(Tcb t, int ackedBytes, Instant now)
    {
        int mss = t.EffectiveMss;
        if (t.Cwnd < t.Ssthresh)
        {
            t.Cwnd += t.HyStart.OnSlowStartAck(t, ackedBytes, t.AckRttMicros, t.Counters);
            return;
        }
        // Congestion avoidance: one MSS per cwnd of acknowledged bytes (RFC 5681 eq. 3, RFC 3465).
        _bytesAcked += ackedBytes;
        if (_bytesAcked >= t.Cwnd)
        {
            _bytesAcked -= t.Cwnd;
            t.Cwnd += mss;
        }
    }

    public int OnCongestionEvent(Tcb t, Instant now)
    {
        _bytesAcked = 0;
        return Math.Max(t.FlightSize / 2, 2 * t.EffectiveMss); // RFC 5681 eq. 4
    }

    public int OnRetransmitTimeout(Tcb t, Instant now) => OnCongestionEvent(t, now);
}

/// <summary>CUBIC (RFC 9438): cubic window growth around W_max, Reno-friendly region, fast convergence.</summary>
internal sealed class CubicCongestion : ICongestionControl
{
    private const double C = 0.4;         // RFC 9438 §4.2
    private const double Beta = 0.7;      // RFC 9438 §4.6
    private const double AlphaCubic = 3.0 * (1 - Beta) / (1 + Beta); // RFC 9438 §4.3

    private double _wMax;        // segments
    private double _wLastMax;
    private double _k;           // seconds
    private double _wEst;        // Reno-friendly estimate, segments
    private long _epochStart;    // microseconds, -1 = none
    private double _cwndFrac;    // sub-segment growth carried between ACKs

    public string Name => "cubic";

    public void Reset()
    {
        _wMax = 0; _wLastMax = 0; _k = 0; _wEst = 0; _epochStart = -1; _cwndFrac = 0;
    }

    public void OnAck(Tcb t, int ackedBytes, Instant now)
    {
        int mss = t.EffectiveMss;
        if (t.Cwnd < t.Ssthresh)
        {
            t.Cwnd += t.HyStart.OnSlowStartAck(t, ackedBytes, t.AckRttMicros, t.Counters);
            return;
        }
        double cwnd = (double)t.Cwnd / mss;
        if (_epochStart < 0)
        {
            _epochStart = now.Microseconds;
            if (_wMax <= cwnd) { _k = 0; _wMax = cwnd; }
            else _k = Math.Cbrt((_wMax - cwnd) / C); // RFC 9438 eq. 2
            _wEst = cwnd;
        }
        double rtt = Math.Max(t.SrttMicros, 1000) / 1e6;
        double elapsed = (now.Microseconds - _epochStart) / 1e6;
        // Reno-friendly estimate (RFC 9438 §4.3, eq. 4).
        _wEst += AlphaCubic * ackedBytes / mss / cwnd;
        double x = elapsed + rtt - _k;
        double target = _wMax + C * x * x * x; // W_cubic(t + RTT), eq. 1
        if (target < cwnd) target = cwnd;
        if (target > 1.5 * cwnd) target = 1.5 * cwnd; // RFC 9438 §4.4
        double increment;
        if (_wEst > target)
            increment = (_wEst - cwnd) / cwnd * ackedBytes / mss; // Reno-friendly region
        else
            increment = (target - cwnd) / cwnd * ackedBytes / mss;
        if (increment < 0) increment = 0;
        _cwndFrac += increment * mss;
        if (_cwndFrac >= 1)
        {
            int add = (int)_cwndFrac;
            t.Cwnd += add;
            _cwndFrac -= add;
        }
    }

    public int OnCongestionEvent(Tcb t, Instant now)
    {
        int mss = t.EffectiveMss;
        double cwnd = (double)t.Cwnd / mss;
        // Fast convergence (RFC 9438 §4.7).
        if (cwnd < _wLastMax) { _wLastMax = cwnd; _wMax = cwnd * (1 + Beta) / 2; }
        else { _wLastMax = cwnd; _wMax = cwnd; }
        _epochStart = -1;
        _cwndFrac = 0;
        int flight = Math.Max(t.FlightSize, t.Cwnd);
        return Math.Max((int)(Math.Min(flight, t.Cwnd) * Beta), 2 * mss); // RFC 9438 §4.6
    }

    public int OnRetransmitTimeout(Tcb t, Instant now)
    {
        int ss = OnCongestionEvent(t, now);
        return ss;
    }
}

namespace Gazelle.Transport.Tcp;

/// <summary>Connection states of RFC 9293 §3.3.2, numbered as Linux's TCP_* states (so TCP_INFO's
/// tcpi_state passes through unchanged).</summary>
public enum TcpState : byte
{
    Established = 1,
    SynSent = 2,
    SynReceived = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Closed = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
}

namespace Gazelle.Transport.Tcp;

/// <summary>
/// Moves whenever any connection's event sequence numbers (<see cref="Gazelle.Sockets.SocketEvents"/>) move:
/// one number that tells a waiter "nothing arrived anywhere since you last looked" without visiting every
/// socket (<see cref="TcpLayer.EventEpoch"/>). Shared by the TCBs of one layer; wraps around freely.
/// </summary>
internal sealed class EventEpoch
{
    public uint Value;
}

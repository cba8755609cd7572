using Gazelle.Time;

namespace Gazelle.Devices;

/// <summary>
/// A device whose behaviour depends on time (delayed frames, capture timestamps). Devices never read a clock:
/// the caller's poll loop passes the current instant before polling, and decorators forward it to the device
/// they wrap.
/// </summary>
public interface ITimedNic
{
    /// <summary>Moves the device's notion of "now" forward and releases whatever became due.</summary>
    void AdvanceTo(Instant now);

    /// <summary>Earliest instant at which the device has something to do (<see cref="Instant.Never"/> if none):
    /// a simulation may jump its virtual clock there.</summary>
    Instant NextDeadline { get; }
}

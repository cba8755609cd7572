using Gazelle.Devices.Capture;
using Gazelle.Devices.Impairment;
using Gazelle.Time;

namespace Gazelle.Devices.InMemory;

/// <summary>
/// A ready-made hardware-free network for simulations: user-veths on one <see cref="UserVbridge"/>, each
/// optionally wrapped in an <see cref="ImpairedNic"/> and a <see cref="CaptureNic"/>. The simulation loop calls
/// <see cref="Poll"/> with its virtual time (which releases delayed frames, then switches everything the hosts
/// transmitted) and may jump its clock to <see cref="NextDeadline"/> when nothing else is due.
/// Single-threaded like its parts; allocation-free in <see cref="Poll"/>.
/// </summary>
public sealed class InMemoryNetwork : IDisposable
{
    private readonly List<UserVeth> _veths = [];
    private readonly List<INic> _nics = [];
    private ITimedNic[] _timed = [];
    private readonly List<IDisposable> _owned = [];

    public InMemoryNetwork(TimeSpanMicros? macAging = null) => Bridge = new UserVbridge(agingTime: macAging);

    public UserVbridge Bridge { get; }
    public int HostCount => _veths.Count;
    /// <summary>The bare veth of host <paramref name="index"/> (for counters and wire-side injection).</summary>
    public UserVeth Veth(int index) => _veths[index];
    /// <summary>The device host <paramref name="index"/> should use (the outermost decorator).</summary>
    public INic Nic(int index) => _nics[index];

    /// <summary>
    /// Adds a host port. Returns the device the host's stack uses: the veth, wrapped (inside out) by an impairment
    /// when <paramref name="transmit"/> or <paramref name="receive"/> is given, and by a capture when
    /// <paramref name="capture"/> is given (the network disposes neither the writer nor anything it did not create).
    /// </summary>
    public INic AddHost(UserVethOptions options, ImpairmentProfile? transmit = null, ImpairmentProfile? receive = null,
        ulong seed = 0, PcapWriter? capture = null)
    {
        var veth = new UserVeth(options);
        _owned.Add(veth);
        _veths.Add(veth);
        Bridge.AddPort(veth);
        INic nic = veth;
        if (transmit is not null || receive is not null)
        {
            var impaired = new ImpairedNic(veth, seed, transmit ?? ImpairmentProfile.None, receive ?? ImpairmentProfile.None);
            _owned.Add(impaired);
            nic = impaired;
        }
        if (capture is not null) nic = new CaptureNic(nic, capture);
        _nics.Add(nic);
        if (nic is ITimedNic t)
        {
            var timed = new ITimedNic[_timed.Length + 1];
            _timed.CopyTo(timed, 0);
            timed[^1] = t;
            _timed = timed;
        }
        return nic;
    }

    /// <summary>Advances every timed device to <paramref name="now"/>, then switches all pending frames. Returns
    /// the number of frames the bridge took in.</summary>
    public int Poll(Instant now)
    {
        foreach (var t in _timed) t.AdvanceTo(now);
        return Bridge.Pump(now);
    }

    /// <summary>Earliest instant a device has a delayed frame due (<see cref="Instant.Never"/> if none).</summary>
    public Instant NextDeadline
    {
        get
        {
            var d = Instant.Never;
            foreach (var t in _timed) d = Instant.Min(d, t.NextDeadline);
            return d;
        }
    }

    /// <summary>Frames in flight: on TX rings waiting for the bridge, or held by impairments.</summary>
    public int InFlight
    {
        get
        {
            int n = 0;
            foreach (var v in _veths) n += v.PendingTransmit;
            foreach (var nic in _nics)
            {
                var inner = nic is CaptureNic c ? c.Inner : nic;
                if (inner is ImpairedNic i) n += i.HeldCount;
            }
            return n;
        }
    }

    /// <summary>Releases held and queued frames and frees every veth's pools (impairments first, since they hold
    /// buffers of the veths' pools).</summary>
    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }
}

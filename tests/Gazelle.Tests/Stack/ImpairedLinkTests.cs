using System.Buffers.Binary;
using Gazelle.Devices.Impairment;
using Gazelle.Devices.InMemory;
using Gazelle.Sockets;
using Gazelle.Stack;
using Gazelle.Time;
using Gazelle.Wire;
using static Gazelle.Tests.Stack.StackTestUtil;

namespace Gazelle.Tests.Stack;

/// <summary>Fragmented UDP through a lossy, duplicating, reordering, corrupting link (seeded, virtual time).</summary>
public class ImpairedLinkTests
{
    [TestCase(1UL)]
    [TestCase(2UL)]
    public void FragmentedDatagramsArriveIntactOrNotAtAll(ulong seed)
    {
        using var va = new UserVeth(new UserVethOptions { MacAddress = MacA });
        using var vb = new UserVeth(new UserVethOptions { MacAddress = MacB });
        var bridge = new UserVbridge();
        bridge.AddPort(va);
        bridge.AddPort(vb);
        var profile = new ImpairmentProfile { DropRate = 0.03, DuplicateRate = 0.1, ReorderRate = 0.2, CorruptRate = 0.03, Latency = new TimeSpanMicros(200), Jitter = new TimeSpanMicros(100) };
        using var ia = new ImpairedNic(va, seed, profile, ImpairmentProfile.None);
        var a = new NetStack(ConfigFor(IpA), ia);
        var b = new NetStack(ConfigFor(IpB), vb);
        var now = Instant.FromMilliseconds(1);

        void Run(int rounds)
        {
            for (int i = 0; i < rounds; i++)
            {
                a.Poll(now);
                b.Poll(now);
                bridge.Pump(now);
                now += TimeSpanMicros.FromMilliseconds(1);
            }
        }

        a.Open(SocketKind.Udp, out var sa);
        b.Open(SocketKind.Udp, out var sb);
        b.Bind(sb, new Ipv4Endpoint(Ipv4Address.Any, 9000));
        // Resolve ARP first (with retries: the link drops some requests too).
        a.SendTo(sa, new byte[1], new Ipv4Endpoint(IpB, 9000), MessageFlags.None, out _);
        Run(3000);

        const int Count = 300;
        var payload = new byte[3500];
        var got = new byte[4000];
        int intact = 0, broken = 0;
        for (int i = 0; i < Count; i++)
        {
            for (int k = 0; k < payload.Length; k += 4) BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(k), i * 7919 + k);
            Assert.That(a.SendTo(sa, payload, new Ipv4Endpoint(IpB, 9000), MessageFlags.None, out _), Is.EqualTo(Errno.Ok));
            Run(3);
            while (b.ReceiveFrom(sb, got, MessageFlags.None, out int n, out _) == Errno.Ok)
            {
                if (n == 1) continue;
                int id = BinaryPrimitives.ReadInt32LittleEndian(got) / 7919;
                bool ok = n == payload.Length;
                for (int k = 0; ok && k < n; k += 4) ok = BinaryPrimitives.ReadInt32LittleEndian(got.AsSpan(k)) == id * 7919 + k;
                if (ok) intact++; else broken++;
            }
        }
        Run(100);
        while (b.ReceiveFrom(sb, got, MessageFlags.None, out int n, out _) == Errno.Ok) if (n == payload.Length) intact++;

        Assert.That(broken, Is.Zero, "a corrupted datagram was delivered");
        Assert.That(intact, Is.InRange(Count / 2, Count), b.Counters.ToString());
        Assert.That(b.Counters.Ip.FragmentDuplicates + b.Counters.Ip.FragmentOverlaps, Is.GreaterThan(0), "duplicates reached reassembly");
        Assert.That(ia.TxCounters.Reordered, Is.GreaterThan(0));

        a.Close(sa);
        b.Close(sb);
        Run(40_000); // reassembly timeouts (30 s) release partial datagrams
        a.Shutdown();
        b.Shutdown();
        Run(5);
        Assert.That(b.Ip.Reassembler.InProgress, Is.Zero);
        Assert.That(va.TxPool.InUse + va.RxPool.InUse + vb.TxPool.InUse + vb.RxPool.InUse, Is.Zero);
        Assert.That(a.Counters.SumOfFrameOutcomes(), Is.EqualTo(a.Counters.Link.FramesReceived));
        Assert.That(b.Counters.SumOfFrameOutcomes(), Is.EqualTo(b.Counters.Link.FramesReceived));
    }
}

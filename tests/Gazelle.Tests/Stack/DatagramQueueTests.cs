using Gazelle.Transport.Udp;
using Gazelle.Wire;

namespace Gazelle.Tests.Stack;

public class DatagramQueueTests
{
    [Test]
    public void MatchesAModelUnderRandomTraffic()
    {
        var rng = new Random(42);
        var q = new DatagramQueue(1000, 8);
        var model = new Queue<byte[]>();
        int modelBytes = 0;
        var buf = new byte[1000];
        for (int step = 0; step < 50000; step++)
        {
            if (rng.Next(2) == 0)
            {
                var d = new byte[rng.Next(0, 400)];
                rng.NextBytes(d);
                bool ok = q.TryEnqueue(d, new Ipv4Endpoint(new Ipv4Address((uint)step), 1));
                if (ok)
                {
                    model.Enqueue(d);
                    modelBytes += d.Length;
                }
                else
                {
                    // An empty queue takes anything up to its size; otherwise a refusal needs the count bound
                    // or a byte total that a layout without wrapping waste (at most one datagram's worth) exceeds.
                    if (model.Count == 0 || !(model.Count == 8 || modelBytes + d.Length > 1000 - 400)) Assert.Fail($"refused at step {step}");
                }
            }
            else
            {
                int len = q.Dequeue(buf, peek: false, out int copied, out _);
                if (model.Count == 0)
                {
                    if (len != -1) Assert.Fail($"empty queue gave {len}");
                    continue;
                }
                var expect = model.Dequeue();
                modelBytes -= expect.Length;
                if (len != expect.Length || !buf.AsSpan(0, copied).SequenceEqual(expect)) Assert.Fail($"wrong datagram at step {step}");
            }
            if (q.Count != model.Count || q.Bytes != modelBytes) Assert.Fail($"count/bytes differ at step {step}");
        }
    }

    [Test]
    public void EmptyQueueAcceptsAFullSizeDatagramAndBoundsHold()
    {
        var q = new DatagramQueue(100, 2);
        Assert.That(q.TryEnqueue(new byte[100], default), Is.True);
        Assert.That(q.TryEnqueue(new byte[1], default), Is.False);
        q.Dequeue(new byte[10], false, out int copied, out _);
        Assert.That(copied, Is.EqualTo(10), "truncated to the buffer");
        Assert.That(q.TryEnqueue(new byte[101], default), Is.False);
        Assert.That(q.TryEnqueue(new byte[0], default) && q.TryEnqueue(new byte[0], default), Is.True);
        Assert.That(q.TryEnqueue(new byte[0], default), Is.False, "count bound");
        Assert.That(q.Dequeue(new byte[1], true, out _, out _), Is.EqualTo(0));
        Assert.That(q.Count, Is.EqualTo(2), "peek keeps it");
    }
}

using System.Diagnostics;
using Gazelle.Buffers;
using Gazelle.Devices.Dpdk;

namespace Gazelle.Tests.Dpdk;

/// <summary>
/// Two memif ports in one process, server and client on one socket: the PMD used between processes
/// (the design brief's 12.3 Mpps measurement). Both sides must keep polling: the client posts its
/// receive descriptors from its rx_burst, and until it does the server has nowhere to write.
/// </summary>
[NonParallelizable]
public sealed class DpdkMemifTests
{
    private static readonly string Socket = $"/tmp/gz-memif-{Environment.ProcessId}.sock";
    private const string Server = "net_memifgzs";
    private const string Client = "net_memifgzc";
#pragma warning disable NUnit1032 // not disposed at the end on purpose: see LeaveOpen
    private DpdkPort? _server, _client;
#pragma warning restore NUnit1032

    [OneTimeSetUp]
    public void Connect()
    {
        var options = new DpdkPortOptions { RxDescriptors = 256, TxDescriptors = 256, MbufsPerQueue = 1023, MbufCacheSize = 0 };
        try
        {
            DpdkFixture.Eal.ProbeDevice($"{Server},role=server,id=0,socket={Socket}");
            DpdkFixture.Eal.ProbeDevice($"{Client},role=client,id=0,socket={Socket}");
            _server = DpdkPort.Open(DpdkFixture.Eal, Server, options);
            _client = DpdkPort.Open(DpdkFixture.Eal, Client, options);
            var sw = Stopwatch.StartNew();
            while (!(_server.GetLink().Up && _client.GetLink().Up) && sw.Elapsed < TimeSpan.FromSeconds(60)) Thread.Yield();
            Assert.That(_server.GetLink().Up && _client.GetLink().Up, Is.True, "memif did not connect");
            // The link is marked up inside the last handshake handler, which may still be running.
            Assert.That(EalInterruptThread.Drain(TimeSpan.FromSeconds(60)), Is.True, "EAL's interrupt thread is stuck");
        }
        catch
        {
            Disconnect();
            throw;
        }
    }

    /// <summary>
    /// The two ports are left open until the test process (and its EAL) ends: closing a memif port
    /// in a live process is not safe with DPDK 22.11. memif's control channel runs on EAL's interrupt
    /// thread and its handlers race a stop or close of the same port from this one (closing the client
    /// makes that thread disconnect the server port while this one closes it: a double rte_free), and
    /// closing the last port of a socket frees the socket with its listener still registered there
    /// (memif_socket_remove_device). Both killed the test host with segfaults of eal-intr-thread
    /// (in malloc_elem_free_list_insert and rte_intr_fd_get) on a loaded machine, even with the ports
    /// closed one at a time while that thread was idle. Only a failed connect closes them, to fail cleanly.
    /// </summary>
    [OneTimeTearDown]
    public void LeaveOpen()
    {
        if (_server != null || _client != null) DpdkFixture.MemifPortsLeftOpen = true;
        if (_server != null && _client != null)
            Assert.That(_server.Pool(0).InUse + _client.Pool(0).InUse, Is.Zero, "buffers left out");
    }

    private void Disconnect()
    {
        _client?.Dispose();
        _server?.Dispose();
        _client = _server = null;
        DpdkFixture.Eal.RemoveDevice(Client);
        DpdkFixture.Eal.RemoveDevice(Server);
    }

    [Test]
    public void FramesCrossBothWays()
    {
        Assert.That(Exchange(_server!, _client!, 40, 0x11), Is.EqualTo(40), "server to client");
        Assert.That(Exchange(_client!, _server!, 40, 0x22), Is.EqualTo(40), "client to server");
        Assert.That(_server!.Pool(0).InUse + _client!.Pool(0).InUse, Is.Zero);
    }

    /// <summary>A frame whose payload is given by reference (TCP's send ring) arrives as one frame, headers then payload,
    /// in both halves of a wrapped ring; with the pool empty the glue copies the payload into the header's mbuf instead
    /// (counted), never a stall or a loss.</summary>
    [Test]
    public unsafe void PayloadByReferenceArrivesWholeAndIsCopiedWhenThePoolIsEmpty()
    {
        var from = _client!;
        var to = _server!;
        Assert.That(from.Offloads.HasFlag(Gazelle.Devices.NicOffloads.TxPayloadByReference), Is.True, "memif in copy mode takes references");
        var ring = GC.AllocateArray<byte>(3000, pinned: true);
        for (int i = 0; i < ring.Length; i++) ring[i] = (byte)(i * 7 + 3);
        fixed (byte* p = ring)
        {
            Assert.That(SendByReference(from, to, p, 700, p + 700, 701), Is.True, "two spans");
            long copiedBefore = from.Counters(0).TxReferencedPayloadCopied;
            // Take every mbuf but the header's: the segments have none to attach to.
            var held = new List<PacketBuffer>();
            while (from.Pool(0).Rent() is { } b) held.Add(b);
            var header = held[^1];
            held.RemoveAt(held.Count - 1);
            header.Release();
            try
            {
                Assert.That(SendByReference(from, to, p + 5, 1401, null, 0), Is.True, "copied into the header's mbuf");
            }
            finally
            {
                foreach (var b in held) b.Release();
            }
            Assert.That(from.Counters(0).TxReferencedPayloadCopied, Is.EqualTo(copiedBefore + 1));
        }
        Assert.That(from.Pool(0).InUse + to.Pool(0).InUse, Is.Zero, "every segment went back to the pool");
        GC.KeepAlive(ring);
    }

    private static unsafe bool SendByReference(DpdkPort from, DpdkPort to, byte* p1, int n1, byte* p2, int n2)
    {
        var b = from.Pool(0).Rent()!;
        b.Append(60).Fill(0x5A);
        b.SetExternal(p1, n1, p2, n2);
        var expected = new byte[60 + n1 + n2];
        expected.AsSpan(0, 60).Fill(0x5A);
        new ReadOnlySpan<byte>(p1, n1).CopyTo(expected.AsSpan(60));
        new ReadOnlySpan<byte>(p2, n2).CopyTo(expected.AsSpan(60 + n1));
        var rx = new PacketBuffer[32];
        bool sent = false, intact = false;
        int received = 0;
        var sw = Stopwatch.StartNew();
        while (received == 0 && sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (!sent && from.Transmit(0, [b]) == 1) sent = true;
            int n = to.Receive(0, rx);
            for (int i = 0; i < n; i++)
            {
                intact |= rx[i].Data.SequenceEqual(expected);
                received++;
                rx[i].Release();
            }
        }
        if (!sent) b.Release();
        return sent && received == 1 && intact;
    }

    /// <summary>Sends <paramref name="count"/> frames from one port while polling the other; returns how many arrived intact.</summary>
    private static int Exchange(DpdkPort from, DpdkPort to, int count, byte fill)
    {
        var pending = new Queue<PacketBuffer>();
        for (int i = 0; i < count; i++)
        {
            var b = from.Pool(0).Rent()!;
            b.Append(60 + i).Fill(fill);
            pending.Enqueue(b);
        }
        var rx = new PacketBuffer[32];
        int intact = 0, received = 0;
        var sw = Stopwatch.StartNew();
        while (received < count && sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (pending.Count > 0 && from.Transmit(0, [pending.Peek()]) == 1) pending.Dequeue();
            int n = to.Receive(0, rx);
            for (int i = 0; i < n; i++)
            {
                if (rx[i].Length == 60 + received && rx[i].Data.IndexOfAnyExcept(fill) < 0) intact++;
                received++;
                rx[i].Release();
            }
        }
        while (pending.Count > 0) pending.Dequeue().Release();
        return intact;
    }
}

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
    private DpdkPort? _server, _client;

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
    /// One side at a time, each while EAL's interrupt thread is idle. memif's control channel runs on
    /// that thread and its handlers are not safe against a stop or close of the same port from this
    /// one: closing the client makes the interrupt thread disconnect the server port (freeing its
    /// regions and queue fds), and stopping the server here at that moment runs a second, unlocked
    /// memif_disconnect beside it - a double rte_free, seen as segfaults of eal-intr-thread (in
    /// malloc_elem_free_list_insert, rte_intr_fd_get) that killed the test host on a loaded machine.
    /// So the server is closed only after the interrupt thread has finished (<see cref="EalInterruptThread.Drain"/>).
    /// </summary>
    [OneTimeTearDown]
    public void Disconnect()
    {
        bool serverWasUp = _server?.GetLink().Up == true;
        _client?.Dispose();
        DpdkFixture.Eal.RemoveDevice(Client);
        if (serverWasUp)
        {
            // memif_disconnect marks the link down first: from then on the interrupt thread is in it.
            var sw = Stopwatch.StartNew();
            while (_server!.GetLink().Up && sw.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(1);
            Assert.That(_server.GetLink().Up, Is.False, "the server never saw the client go");
        }
        Assert.That(EalInterruptThread.Drain(TimeSpan.FromSeconds(60)), Is.True, "EAL's interrupt thread is stuck");
        _server?.Dispose();
        DpdkFixture.Eal.RemoveDevice(Server);
        File.Delete(Socket);
    }

    [Test]
    public void FramesCrossBothWays()
    {
        Assert.That(Exchange(_server!, _client!, 40, 0x11), Is.EqualTo(40), "server to client");
        Assert.That(Exchange(_client!, _server!, 40, 0x22), Is.EqualTo(40), "client to server");
        Assert.That(_server!.Pool(0).InUse + _client!.Pool(0).InUse, Is.Zero);
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

using Gazelle.Posix;

namespace Gazelle.Native;

/// <summary>
/// Everything the preload library keeps for one process: its configuration, its stack and the POSIX
/// layer over them, which marks the fds it serves in the shim's table. Without a usable configuration
/// (or before the stack can be built from one) <see cref="Layer"/> is null: the process serves
/// nothing and every socket stays on the kernel.
/// </summary>
internal sealed class PreloadProcess
{
    private PreloadProcess(PosixLayer? layer) => Layer = layer;

    public PosixLayer? Layer { get; }

    public static PreloadProcess Start(FdKindTable fds)
    {
#if GAZELLE_FAKE_STACK
        if (Wire.Ipv4Address.TryParse(Environment.GetEnvironmentVariable("GAZELLE_FAKE_STACK_ADDR") ?? "", out var fake))
        {
            Console.Error.WriteLine($"gazelle: TEST BUILD: {fake}/24 is served by the in-memory stand-in stack");
            var territory = new Territory(fake.Value, new Wire.Ipv4Address(255, 255, 255, 0), Wire.Ipv4Address.Any);
            return new PreloadProcess(new PosixLayer(new Tests.Posix.FakeSocketApi(fake.Value), territory, fds,
                Time.MonotonicClock.Now, PollPolicy.FromEnvironment()));
        }
#endif
        string? path = Environment.GetEnvironmentVariable("GAZELLE_CONF") ?? Environment.GetEnvironmentVariable("LSTACK_CONF_PATH");
        if (string.IsNullOrEmpty(path))
        {
            Console.Error.WriteLine("gazelle: no configuration (set GAZELLE_CONF to an lstack.conf): sockets run on the kernel");
            return new PreloadProcess(null);
        }
        // The lstack.conf parser (src/Gazelle/Config) and the stack with its NIC (src/Gazelle/Stack,
        // src/Gazelle/Devices/Dpdk) are built on other branches; once merged, this builds them and a
        // PosixLayer(stack, Territory.From(config), fds, MonotonicClock.Now, PollPolicy.FromEnvironment()).
        Console.Error.WriteLine($"gazelle: {path}: this build has no stack to run it yet: sockets run on the kernel");
        return new PreloadProcess(null);
    }
}

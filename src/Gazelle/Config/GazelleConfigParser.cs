using System.Collections.Frozen;
using System.Globalization;
using Gazelle.Wire;

namespace Gazelle.Config;

/// <summary>
/// Gives lstack.conf text its meaning: every key is looked up in one table (name, expected type, how it binds);
/// unknown keys, duplicates, wrong types and bad values are reported with file, line and key, and nothing throws.
/// The parser reads no environment and no files: <see cref="ConfigLoader"/> does that and passes the text in.
/// </summary>
public static class GazelleConfigParser
{
    /// <summary>Parses <paramref name="text"/>, naming <paramref name="fileName"/> in errors.</summary>
    public static ConfigResult Parse(string text, string fileName)
    {
        var (settings, syntaxErrors) = ConfigSyntax.Parse(text, fileName);
        var errors = new List<ConfigError>(syntaxErrors);
        var b = new Builder();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in settings)
        {
            if (!Keys.TryGetValue(s.Key, out var def))
            {
                errors.Add(new ConfigError(fileName, s.Line, s.Key, "unknown key"));
                continue;
            }
            if (seen.TryGetValue(s.Key, out int firstLine))
            {
                errors.Add(new ConfigError(fileName, s.Line, s.Key, $"duplicate key (first set on line {firstLine})"));
                continue;
            }
            seen[s.Key] = s.Line;
            b.Lines[s.Key] = s.Line;
            string? problem = def.Bind(b, s.Value);
            if (problem is not null) errors.Add(new ConfigError(fileName, s.Line, s.Key, problem));
        }
        // Syntax and binding errors were found in two passes: present them in file order (a stable sort).
        errors = [.. errors.OrderBy(e => e.Line)];
        if (errors.Count == 0) Validate(b, fileName, errors);
        if (errors.Count > 0) return ConfigResult.Fail(errors);
        return ConfigResult.Ok(b.Build(fileName));
    }

    /// <summary>Names of every key the parser knows (for docs and tests).</summary>
    public static IEnumerable<string> KnownKeys => Keys.Keys;

    // ---------------------------------------------------------------------------------------------------------
    // Cross-key rules, checked once every key bound cleanly.

    private static void Validate(Builder b, string file, List<ConfigError> errors)
    {
        void Error(string key, string message) => errors.Add(new ConfigError(file, b.Lines.GetValueOrDefault(key), key, message));

        if (!b.Lines.ContainsKey("host_addr")) Error("host_addr", "required key missing");
        if (!b.Lines.ContainsKey("mask_addr")) Error("mask_addr", "required key missing");
        if (b.Backend == DeviceBackend.Dpdk && b.Devices is null) Error("devices", "required with backend \"dpdk\"");
        if (b.Backend == DeviceBackend.AfPacket && b.AfPacketInterface.Length == 0) Error("af_packet_iface", "required with backend \"af_packet\"");
        if (errors.Count > 0) return;

        uint mask = b.MaskAddr.Value;
        // A netmask is contiguous ones then zeros: its complement plus one is a power of two (RFC 950 allowed
        // otherwise, RFC 1519/4632 practice does not).
        if (mask == 0 || ((~mask + 1) & ~mask) != 0) Error("mask_addr", $"{b.MaskAddr} is not a contiguous netmask");
        var host = b.HostAddr;
        if (host.IsUnspecified || host.IsBroadcast || host.IsMulticast || host.IsLoopback)
            Error("host_addr", $"{host} cannot be a host address");
        else if (mask != 0xFFFF_FFFF && mask != 0xFFFF_FFFE && ((host.Value & ~mask) == 0 || (host.Value | mask) == 0xFFFF_FFFF))
            Error("host_addr", $"{host} is the network or broadcast address of its subnet");
        if (!b.GatewayAddr.IsUnspecified && !b.GatewayAddr.InSubnet(host, b.MaskAddr))
            Error("gateway_addr", $"{b.GatewayAddr} is not in {host}'s subnet");
        if (b.NumWakeup.Count > 0 && b.NumWakeup.Count != b.NumCpus.Count)
            Error("num_wakeup", $"has {b.NumWakeup.Count} CPUs but num_cpus has {b.NumCpus.Count}: one wake-up thread per stack");
        long pool = b.MbufPoolSize > 0 ? b.MbufPoolSize : (long)b.TcpConnCount * b.MbufCountPerConn;
        if (pool > int.MaxValue)
            Error(b.MbufPoolSize > 0 ? "mbuf_pool_size" : "mbuf_count_per_conn", $"packet pool of {pool} buffers is too large");
    }

    // ---------------------------------------------------------------------------------------------------------
    // The key table.

    private sealed class Builder
    {
        public readonly Dictionary<string, int> Lines = new(StringComparer.Ordinal);
        public DeviceBackend Backend = DeviceBackend.Dpdk;
        public IReadOnlyList<string> DpdkArgs = [];
        public MacAddress? Devices;
        public string MemifSocket = new GazelleConfig().MemifSocket;
        public string AfPacketInterface = "";
        public int NicRxQueueSize = 4096, NicTxQueueSize = 2048, NicReadNum = 128, NicVlanMode = -1, Mtu;
        public Ipv4Address HostAddr, MaskAddr, GatewayAddr;
        public IReadOnlyList<int> NumCpus = [], NumWakeup = [];
        public int TcpConnCount = 1500, MbufCountPerConn = 170, MbufPoolSize, UdpSocketCount = 1024;
        public int TcpSendBuffer = 1024 * 1024, TcpRecvBuffer = 1024 * 1024, TcpTimeWaitMs = 60_000;
        public bool UdpEnable = true, LowPowerMode, ListenShadow;
        public int SendConnectNumber = 4, ReadConnectNumber = 4, RpcNumber = 4;
        public LogLevel LogLevel = LogLevel.Info;

        public GazelleConfig Build(string source) => new()
        {
            Source = source,
            Backend = Backend,
            DpdkArgs = DpdkArgs,
            Devices = Devices,
            MemifSocket = MemifSocket,
            AfPacketInterface = AfPacketInterface,
            NicRxQueueSize = NicRxQueueSize,
            NicTxQueueSize = NicTxQueueSize,
            NicReadNum = NicReadNum,
            NicVlanMode = NicVlanMode,
            Mtu = Mtu,
            HostAddr = HostAddr,
            MaskAddr = MaskAddr,
            GatewayAddr = GatewayAddr,
            NumCpus = NumCpus,
            NumWakeup = NumWakeup,
            TcpConnCount = TcpConnCount,
            MbufCountPerConn = MbufCountPerConn,
            MbufPoolSize = MbufPoolSize,
            UdpSocketCount = UdpSocketCount,
            TcpSendBuffer = TcpSendBuffer,
            TcpRecvBuffer = TcpRecvBuffer,
            TcpTimeWaitMs = TcpTimeWaitMs,
            UdpEnable = UdpEnable,
            SendConnectNumber = SendConnectNumber,
            ReadConnectNumber = ReadConnectNumber,
            RpcNumber = RpcNumber,
            LowPowerMode = LowPowerMode,
            ListenShadow = ListenShadow,
            LogLevel = LogLevel,
        };
    }

    /// <summary>A key: binds a value into the builder, or returns what is wrong with it.</summary>
    private sealed record KeyDef(string Name, Func<Builder, ConfigValue, string?> Bind);

    private static readonly FrozenDictionary<string, KeyDef> Keys = new KeyDef[]
    {
        new("backend", (b, v) => OneOf(v, ["dpdk", "memif", "af_packet", "inmemory"], i => b.Backend = (DeviceBackend)i)),
        new("dpdk_args", (b, v) => StringList(v, l => b.DpdkArgs = l)),
        new("devices", (b, v) => Mac(v, m => b.Devices = m)),
        new("memif_socket", (b, v) => NonEmptyString(v, s => b.MemifSocket = s)),
        new("af_packet_iface", (b, v) => NonEmptyString(v, s => b.AfPacketInterface = s)),
        new("nic_rxqueue_size", (b, v) => PowerOfTwo(v, 512, 8192, i => b.NicRxQueueSize = i)),
        new("nic_txqueue_size", (b, v) => PowerOfTwo(v, 512, 8192, i => b.NicTxQueueSize = i)),
        new("nic_read_num", (b, v) => Int(v, 1, 1024, i => b.NicReadNum = i)),
        new("nic_vlan_mode", (b, v) => Int(v, -1, 4095, i => b.NicVlanMode = i)),
        new("mtu", (b, v) => Int(v, 0, MaxMtu, i => b.Mtu = i) ?? (b.Mtu is > 0 and < 68 ? "0 (the device's) or at least 68 (RFC 791)" : null)),
        new("host_addr", (b, v) => Ip(v, a => b.HostAddr = a)),
        new("mask_addr", (b, v) => Ip(v, a => b.MaskAddr = a)),
        new("gateway_addr", (b, v) => Ip(v, a => b.GatewayAddr = a)),
        new("num_cpus", (b, v) => CpuList(v, l => b.NumCpus = l)),
        new("num_wakeup", (b, v) => CpuList(v, l => b.NumWakeup = l)),
        new("tcp_conn_count", (b, v) => Int(v, 1, 1 << 20, i => b.TcpConnCount = i)),
        new("mbuf_count_per_conn", (b, v) => Int(v, 1, 1 << 16, i => b.MbufCountPerConn = i)),
        new("mbuf_pool_size", (b, v) => Int(v, 0, int.MaxValue, i => b.MbufPoolSize = i)),
        new("udp_socket_count", (b, v) => Int(v, 0, 1 << 20, i => b.UdpSocketCount = i)),
        new("tcp_send_buffer", (b, v) => Int(v, 4096, 1 << 30, i => b.TcpSendBuffer = i)),
        new("tcp_recv_buffer", (b, v) => Int(v, 4096, 1 << 30, i => b.TcpRecvBuffer = i)),
        new("tcp_time_wait_ms", (b, v) => Int(v, 100, 600_000, i => b.TcpTimeWaitMs = i)),
        new("udp_enable", (b, v) => Bool(v, x => b.UdpEnable = x)),
        new("send_connect_number", (b, v) => Int(v, 1, 1 << 16, i => b.SendConnectNumber = i)),
        new("read_connect_number", (b, v) => Int(v, 1, 1 << 16, i => b.ReadConnectNumber = i)),
        new("rpc_number", (b, v) => Int(v, 1, 1 << 16, i => b.RpcNumber = i)),
        new("low_power_mode", (b, v) => Bool(v, x => b.LowPowerMode = x)),
        new("listen_shadow", (b, v) => Bool(v, x => b.ListenShadow = x)),
        new("use_ltran", (b, v) => Bool(v, x => { }, mustBe: false, why: "ltran is not supported (Gazelle# has no forwarding process)")),
        new("kni_switch", (b, v) => Bool(v, x => { }, mustBe: false, why: "KNI is not supported")),
        new("log_level", (b, v) => OneOf(v, ["error", "warn", "info", "debug", "trace"], i => b.LogLevel = (LogLevel)i)),
    }.ToFrozenDictionary(k => k.Name, StringComparer.Ordinal);

    // ---------------------------------------------------------------------------------------------------------
    // Value binders: each returns null on success or a message naming what was expected.

    private static string TypeError(string expected, ConfigValue v) => $"expected {expected}, found {ConfigValue.KindName(v.Kind)}";

    /// <summary>Largest <c>mtu</c>: a whole frame in one mbuf, whose data room is 16 bits (DpdkPort.MaxLongFrameMtu).</summary>
    private const int MaxMtu = 65000;

    private static string? Int(ConfigValue v, long min, long max, Action<int> set)
    {
        if (v.Kind != ConfigValueKind.Integer) return TypeError("an integer", v);
        if (v.Integer < min || v.Integer > max) return $"{v.Integer} is out of range [{min}, {max}]";
        set((int)v.Integer);
        return null;
    }

    private static string? PowerOfTwo(ConfigValue v, long min, long max, Action<int> set)
    {
        string? e = Int(v, min, max, _ => { });
        if (e is not null) return e;
        if ((v.Integer & (v.Integer - 1)) != 0) return $"{v.Integer} is not a power of two";
        set((int)v.Integer);
        return null;
    }

    /// <summary>Booleans may be written true/false or, as Gazelle does, 0/1.</summary>
    private static string? Bool(ConfigValue v, Action<bool> set, bool? mustBe = null, string? why = null)
    {
        bool x;
        if (v.Kind == ConfigValueKind.Boolean) x = v.Boolean;
        else if (v.Kind == ConfigValueKind.Integer && v.Integer is 0 or 1) x = v.Integer == 1;
        else if (v.Kind == ConfigValueKind.Integer) return $"{v.Integer} is not a boolean (use 0/1 or true/false)";
        else return TypeError("a boolean (0/1 or true/false)", v);
        if (mustBe is { } m && x != m) return why ?? $"must be {m}";
        set(x);
        return null;
    }

    private static string? NonEmptyString(ConfigValue v, Action<string> set)
    {
        if (v.Kind != ConfigValueKind.String) return TypeError("a string", v);
        if (v.String.Length == 0) return "must not be empty";
        set(v.String);
        return null;
    }

    private static string? OneOf(ConfigValue v, string[] names, Action<int> set)
    {
        if (v.Kind != ConfigValueKind.String) return TypeError("a string", v);
        int i = Array.IndexOf(names, v.String);
        if (i < 0) return $"\"{v.String}\" is not one of {string.Join(", ", names.Select(n => $"\"{n}\""))}";
        set(i);
        return null;
    }

    private static string? Ip(ConfigValue v, Action<Ipv4Address> set)
    {
        if (v.Kind != ConfigValueKind.String) return TypeError("an IPv4 address string", v);
        if (!Ipv4Address.TryParse(v.String, out var a)) return $"\"{v.String}\" is not an IPv4 address";
        set(a.Value);
        return null;
    }

    private static string? Mac(ConfigValue v, Action<MacAddress> set)
    {
        if (v.Kind != ConfigValueKind.String) return TypeError("a MAC address string", v);
        if (!MacAddress.TryParse(v.String, out var m)) return $"\"{v.String}\" is not a MAC address";
        if (m.Value.IsMulticast || m.Value.Value == 0) return $"{m.Value} cannot be a port address (zero or group address)";
        set(m.Value);
        return null;
    }

    private static string? StringList(ConfigValue v, Action<IReadOnlyList<string>> set)
    {
        if (v.Kind != ConfigValueKind.List) return TypeError("a list of strings", v);
        var l = new string[v.Items.Count];
        for (int i = 0; i < l.Length; i++)
        {
            if (v.Items[i].Kind != ConfigValueKind.String) return TypeError("a list of strings", v.Items[i]) + $" at element {i}";
            l[i] = v.Items[i].String;
        }
        set(l);
        return null;
    }

    /// <summary>CPU lists as Gazelle writes them ("2,22", ranges "0-3" allowed) or as a list of integers.</summary>
    private static string? CpuList(ConfigValue v, Action<IReadOnlyList<int>> set)
    {
        var cpus = new List<int>();
        if (v.Kind == ConfigValueKind.List)
        {
            foreach (var item in v.Items)
            {
                if (item.Kind != ConfigValueKind.Integer) return TypeError("a list of CPU numbers", item);
                if (item.Integer is < 0 or > 4095) return $"CPU {item.Integer} is out of range [0, 4095]";
                cpus.Add((int)item.Integer);
            }
        }
        else if (v.Kind == ConfigValueKind.String)
        {
            foreach (var raw in v.String.Split(','))
            {
                var part = raw.Trim();
                int dash = part.IndexOf('-');
                if (dash > 0)
                {
                    if (!TryCpu(part[..dash], out int lo) || !TryCpu(part[(dash + 1)..], out int hi) || hi < lo)
                        return $"\"{part}\" is not a CPU range";
                    for (int c = lo; c <= hi; c++) cpus.Add(c);
                }
                else
                {
                    if (!TryCpu(part, out int c)) return $"\"{part}\" is not a CPU number";
                    cpus.Add(c);
                }
            }
        }
        else
        {
            return TypeError("a CPU list (\"0,2,4\")", v);
        }
        if (cpus.Count == 0) return "no CPU given";
        if (cpus.Distinct().Count() != cpus.Count) return "a CPU is listed twice";
        set(cpus);
        return null;
    }

    private static bool TryCpu(string s, out int cpu) =>
        int.TryParse(s.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out cpu) && cpu <= 4095;
}

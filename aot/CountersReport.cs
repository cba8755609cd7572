using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Text;
using Gazelle.Devices.Dpdk;
using Gazelle.Stack;

namespace Gazelle.Native;

/// <summary>The counters of a preloaded process's stack as text, one "name = value" per line (zero ones left
/// out): the stack's per-layer counters, TCP's (prefixed TcpLayer.), the DPDK queue's and the device's.</summary>
internal static class CountersReport
{
    public static string Format(NetStack stack, DpdkPort? port)
    {
        var sb = new StringBuilder();
        sb.Append(stack.Counters.ToString());
        AppendFields(sb, "TcpLayer", stack.Tcp.Counters);
        sb.Append("TcpLayer.LiveConnections = ").Append(stack.Tcp.LiveConnections).Append('\n');
        if (port is not null)
        {
            AppendProperties(sb, "DpdkQueue", port.Counters(0));
            var s = port.GetStats();
            sb.Append("Device.RxPackets = ").Append(s.RxPackets).Append('\n')
              .Append("Device.TxPackets = ").Append(s.TxPackets).Append('\n')
              .Append("Device.RxMissed = ").Append(s.RxMissed).Append('\n')
              .Append("Device.RxErrors = ").Append(s.RxErrors).Append('\n')
              .Append("Device.TxErrors = ").Append(s.TxErrors).Append('\n')
              .Append("Device.RxNoMbuf = ").Append(s.RxNoMbuf).Append('\n');
        }
        return sb.ToString();
    }

    private static void AppendFields<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields)] T>(StringBuilder sb, string prefix, T group)
        where T : class
    {
        foreach (var f in typeof(T).GetFields(BindingFlags.Public | BindingFlags.Instance))
            if (f.FieldType == typeof(long) && (long)f.GetValue(group)! is var v and not 0) sb.Append(prefix).Append('.').Append(f.Name).Append(" = ").Append(v).Append('\n');
    }

    private static void AppendProperties<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] T>(StringBuilder sb, string prefix, T group)
        where T : class
    {
        foreach (var p in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
            if (p.PropertyType == typeof(long) && (long)p.GetValue(group)! is var v and not 0) sb.Append(prefix).Append('.').Append(p.Name).Append(" = ").Append(v).Append('\n');
    }
}

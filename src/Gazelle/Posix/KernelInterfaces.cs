using System.Runtime.InteropServices;
using Gazelle.Wire;
using static Gazelle.Posix.LinuxAbi;

namespace Gazelle.Posix;

/// <summary>The IPv4 subnets of the kernel's own interfaces (getifaddrs): destinations there stay the
/// kernel's even when the stack has a gateway (see <see cref="Territory"/>).</summary>
public static unsafe partial class KernelInterfaces
{
    [StructLayout(LayoutKind.Sequential)]
    private struct IfAddrs
    {
        public IfAddrs* Next;
        public byte* Name;
        public uint Flags;
        public SockAddrIn* Address;
        public SockAddrIn* Netmask;
        public void* BroadcastOrDestination;
        public void* Data;
    }

    [LibraryImport("libc.so.6", EntryPoint = "getifaddrs")] private static partial int getifaddrs(IfAddrs** list);
    [LibraryImport("libc.so.6", EntryPoint = "freeifaddrs")] private static partial void freeifaddrs(IfAddrs* list);

    /// <summary>(network, mask) of every IPv4 address the kernel holds, loopback excepted.</summary>
    public static (Ipv4Address Network, Ipv4Address Mask)[] Ipv4Subnets()
    {
        IfAddrs* list;
        if (getifaddrs(&list) != 0) return [];
        var subnets = new List<(Ipv4Address, Ipv4Address)>();
        try
        {
            for (var p = list; p != null; p = p->Next)
            {
                if (p->Address == null || p->Netmask == null || p->Address->Family != AF_INET) continue;
                var address = Ipv4Address.FromNetworkOrder(p->Address->AddressNetworkOrder);
                var mask = Ipv4Address.FromNetworkOrder(p->Netmask->AddressNetworkOrder);
                if (address.IsLoopback) continue;
                subnets.Add((new Ipv4Address(address.Value & mask.Value), mask));
            }
        }
        finally
        {
            freeifaddrs(list);
        }
        return [.. subnets];
    }
}

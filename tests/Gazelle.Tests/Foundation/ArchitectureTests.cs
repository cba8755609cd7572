using System.Reflection;
using System.Runtime.CompilerServices;

namespace Gazelle.Tests.Foundation;

/// <summary>Rules of the design that the compiler does not enforce.</summary>
public class ArchitectureTests
{
    private static readonly Assembly Stack = typeof(Gazelle.Wire.SeqNum).Assembly;

    /// <summary>One stack object per core owns all its state: a static field that can be reassigned is
    /// shared state between stacks. (Static readonly lookup tables are constant data and allowed.)</summary>
    [Test]
    public void TheStackHasNoStaticMutableFields()
    {
        var offenders = new List<string>();
        foreach (var type in Stack.GetTypes())
        {
            if (type.IsDefined(typeof(CompilerGeneratedAttribute)) || type.Name.StartsWith('<')) continue;
            foreach (var f in type.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if (f.IsLiteral || f.IsInitOnly || f.IsDefined(typeof(CompilerGeneratedAttribute))) continue;
                offenders.Add($"{type.FullName}.{f.Name}");
            }
        }
        Assert.That(offenders, Is.Empty, "static mutable fields in src/ (move them into the stack object)");
    }

    /// <summary>Protocol code never names DPDK: only Devices/Dpdk may.</summary>
    [Test]
    public void OnlyTheDpdkDeviceNamesDpdk()
    {
        var offenders = Stack.GetTypes()
            .Where(t => t.Namespace is { } ns && !ns.StartsWith("Gazelle.Devices.Dpdk", StringComparison.Ordinal))
            .Where(t => t.Name.Contains("Dpdk", StringComparison.OrdinalIgnoreCase) || t.Name.Contains("Mbuf", StringComparison.OrdinalIgnoreCase))
            .Select(t => t.FullName)
            .ToList();
        Assert.That(offenders, Is.Empty);
    }
}

using System.Diagnostics;
using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;

// Micro-benchmarks of the stack's hot paths (MemoryDiagnoser on each: packet paths must show 0 B).
// Run: dotnet run -c Release --project bench/Gazelle.Bench -- --filter '*'
// Profile one body: `--loop Class.Method [seconds] [Param=value...]` calls it in a tight loop (for perf
// record, see README); the [Params] properties take the values given.
if (args.Length >= 2 && args[0] == "--loop")
{
    Loop(args[1], args.Length > 2 ? double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10, args.Skip(3).ToArray());
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

static void Loop(string name, double seconds, string[] parameters)
{
    int dot = name.LastIndexOf('.');
    var type = typeof(Program).Assembly.GetTypes().Single(t => t.Name == name[..dot]);
    var method = type.GetMethod(name[(dot + 1)..]) ?? throw new ArgumentException($"no method {name}");
    object instance = Activator.CreateInstance(type)!;
    foreach (var p in parameters)
    {
        var prop = type.GetProperty(p[..p.IndexOf('=')]) ?? throw new ArgumentException($"no parameter {p}");
        prop.SetValue(instance, Convert.ChangeType(p[(p.IndexOf('=') + 1)..], prop.PropertyType, System.Globalization.CultureInfo.InvariantCulture));
    }
    foreach (var m in type.GetMethods().Where(m => m.IsDefined(typeof(GlobalSetupAttribute)))) m.Invoke(instance, null);
    Func<long> body = method.ReturnType == typeof(int) ? Wrap(method.CreateDelegate<Func<int>>(instance))
        : method.ReturnType == typeof(uint) ? Wrap(method.CreateDelegate<Func<uint>>(instance))
        : throw new ArgumentException("benchmark must return int or uint");
    var sw = Stopwatch.StartNew();
    long calls = 0, sink = 0;
    while (sw.Elapsed.TotalSeconds < seconds)
    {
        for (int i = 0; i < 100_000; i++) sink += body();
        calls += 100_000;
    }
    Console.WriteLine($"{name} {string.Join(' ', parameters)}: {calls} calls, {sw.Elapsed.TotalNanoseconds / calls:F1} ns/call (checksum {sink})");
}

static Func<long> Wrap<T>(Func<T> f) where T : IConvertible => () => f().ToInt64(null);

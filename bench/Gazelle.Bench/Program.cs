using BenchmarkDotNet.Running;

// Micro-benchmarks of the stack's hot paths (MemoryDiagnoser on each: packet paths must show 0 B).
// Run: dotnet run -c Release --project bench/Gazelle.Bench -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Gazelle.Bench;

/// <summary>Adds <see cref="ThroughputColumn"/> to a benchmark class whose <c>Size</c> parameter is the
/// number of bytes one invocation processes.</summary>
public sealed class ThroughputConfig : ManualConfig
{
    public ThroughputConfig() => AddColumn(new ThroughputColumn());
}

/// <summary>GB/s (10^9 bytes per second) = the benchmark's <c>Size</c> parameter / its mean time.</summary>
public sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);
    public string ColumnName => "GB/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Throughput: Size bytes / mean time, in 10^9 bytes per second";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        var size = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == "Size")?.Value;
        if (report?.ResultStatistics is not { } stats || size is not int bytes) return "-";
        double nanoseconds = stats.Mean;
        return (bytes / nanoseconds).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture); // bytes/ns = GB/s
    }

    public override string ToString() => ColumnName;
}

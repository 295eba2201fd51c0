namespace Flint.Bench.Harness;

/// <summary>One measured (or not measurable) quantity for one subject.</summary>
public sealed class Series
{
    public string Section { get; set; } = "";
    public string Metric { get; set; } = "";
    /// <summary>"Flint" or "QEMU".</summary>
    public string Subject { get; set; } = "";
    public string Unit { get; set; } = "";
    public List<double> Samples { get; set; } = new();
    /// <summary>Set instead of samples when the quantity cannot be measured on this host (the reason).</summary>
    public string? NotMeasured { get; set; }
    /// <summary>Shown next to the numbers, e.g. "TCG: reference only".</summary>
    public string? Label { get; set; }
    /// <summary>"median" (default) or a percentile the table should show, e.g. "p99".</summary>
    public bool ShowP99 { get; set; }
}

public sealed class HarnessResults
{
    public bool Smoke { get; set; }
    /// <summary>The --only list the run was limited to, or null for every step.</summary>
    public string? Steps { get; set; }
    public string StartedUtc { get; set; } = "";
    public double TotalSeconds { get; set; }
    public Dictionary<string, string> Host { get; set; } = new();
    public List<Series> Series { get; set; } = new();
    public List<string> Notes { get; set; } = new();
}

public sealed class MicroResult
{
    public string Name { get; set; } = "";
    public string Description { get; set; } = "";
    public double MeanNs { get; set; }
    public double MedianNs { get; set; }
    public double MinNs { get; set; }
    public double MaxNs { get; set; }
    public double StdDevNs { get; set; }
    public long? AllocatedBytesPerOp { get; set; }
    public int Iterations { get; set; }
}

public static class Stats
{
    public static double Percentile(IReadOnlyList<double> xs, double p)
    {
        if (xs.Count == 0) return double.NaN;
        var s = xs.OrderBy(x => x).ToArray();
        // Nearest-rank on the sorted samples, interpolated.
        double rank = p / 100.0 * (s.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return s[lo] + (s[hi] - s[lo]) * (rank - lo);
    }

    public static double Median(IReadOnlyList<double> xs) => Percentile(xs, 50);
}

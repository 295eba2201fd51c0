using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Flint.Pool;

/// <summary>
/// An in-process exporter for the <c>Flint.Pool</c> meter: a <see cref="MeterListener"/> that keeps counter sums,
/// histogram buckets and the latest gauge values, and writes them as JSON (the daemon's <c>GET /metrics</c>) or the
/// Prometheus text format (<c>GET /metrics?format=prometheus</c>, for a scraper). Users of the library who run
/// OpenTelemetry instead subscribe to the meter by name and need none of this.
/// </summary>
public sealed class PoolMetricsExporter : IDisposable
{
    /// <summary>Bucket upper bounds in ms (durations are all in ms).</summary>
    public static readonly double[] Buckets = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

    private sealed class Series(string name, string unit, string kind, KeyValuePair<string, string>[] tags)
    {
        public readonly string Name = name, Unit = unit, Kind = kind;
        public readonly KeyValuePair<string, string>[] Tags = tags;
        public double Value;      // counter sum or last gauge value
        public long Count;        // histogram
        public double Sum;
        public readonly long[] BucketCounts = new long[Buckets.Length + 1];
    }

    private readonly MeterListener _listener = new();
    private readonly Dictionary<string, Series> _series = new(StringComparer.Ordinal);

    public PoolMetricsExporter()
    {
        _listener.InstrumentPublished = (inst, l) => { if (inst.Meter.Name == PoolMetrics.MeterName) l.EnableMeasurementEvents(inst); };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    private void Record(Instrument inst, double v, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        string kind = inst switch
        {
            Histogram<double> => "histogram",
            ObservableGauge<int> or ObservableGauge<long> or ObservableGauge<double> => "gauge",
            _ => "counter",
        };
        var sorted = new KeyValuePair<string, string>[tags.Length];
        for (int i = 0; i < tags.Length; i++) sorted[i] = new(tags[i].Key, Convert.ToString(tags[i].Value, CultureInfo.InvariantCulture) ?? "");
        Array.Sort(sorted, (a, b) => string.CompareOrdinal(a.Key, b.Key));
        var key = new StringBuilder(inst.Name);
        foreach (var t in sorted) key.Append('\0').Append(t.Key).Append('=').Append(t.Value);
        lock (_series)
        {
            if (!_series.TryGetValue(key.ToString(), out var s))
                _series[key.ToString()] = s = new Series(inst.Name, inst.Unit ?? "", kind, sorted);
            switch (kind)
            {
                case "gauge": s.Value = v; break;
                case "counter": s.Value += v; break;
                default:
                    s.Count++;
                    s.Sum += v;
                    int b = Array.FindIndex(Buckets, x => v <= x);
                    s.BucketCounts[b < 0 ? Buckets.Length : b]++;
                    break;
            }
        }
    }

    /// <summary>Reads the gauges now; a gauge series that no longer reports (a drained function) is dropped.</summary>
    private List<Series> Collect()
    {
        lock (_series) foreach (var k in _series.Where(kv => kv.Value.Kind == "gauge").Select(kv => kv.Key).ToArray()) _series.Remove(k);
        _listener.RecordObservableInstruments();
        lock (_series) return [.. _series.Values.OrderBy(s => s.Name, StringComparer.Ordinal).ThenBy(s => string.Join(",", s.Tags), StringComparer.Ordinal)];
    }

    public void WriteJson(Utf8JsonWriter w)
    {
        var all = Collect();
        w.WriteStartObject();
        foreach (var group in all.GroupBy(s => s.Kind))
        {
            w.WriteStartArray(group.Key + "s");
            foreach (var s in group)
            {
                w.WriteStartObject();
                w.WriteString("name", s.Name);
                w.WriteString("unit", s.Unit);
                w.WriteStartObject("tags");
                foreach (var t in s.Tags) w.WriteString(t.Key, t.Value);
                w.WriteEndObject();
                if (s.Kind == "histogram")
                {
                    w.WriteNumber("count", s.Count);
                    w.WriteNumber("sum", s.Sum);
                    w.WriteStartObject("buckets");
                    long cum = 0;
                    for (int i = 0; i <= Buckets.Length; i++)
                    {
                        cum += s.BucketCounts[i];
                        w.WriteNumber(i < Buckets.Length ? Buckets[i].ToString(CultureInfo.InvariantCulture) : "+Inf", cum);
                    }
                    w.WriteEndObject();
                }
                else w.WriteNumber("value", s.Value);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    /// <summary>The Prometheus text exposition format (0.0.4): dots become underscores, counters end in _total.</summary>
    public string ToPrometheus()
    {
        var sb = new StringBuilder();
        foreach (var group in Collect().GroupBy(s => s.Name))
        {
            var first = group.First();
            string name = first.Name.Replace('.', '_') + (first.Unit == "ms" ? "_milliseconds" : "");
            string type = first.Kind;
            if (type == "counter") name += "_total";
            sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            foreach (var s in group)
            {
                if (s.Kind != "histogram")
                {
                    sb.Append(name).Append(Labels(s.Tags, null)).Append(' ').Append(Num(s.Value)).Append('\n');
                    continue;
                }
                long cum = 0;
                for (int i = 0; i <= Buckets.Length; i++)
                {
                    cum += s.BucketCounts[i];
                    sb.Append(name).Append("_bucket").Append(Labels(s.Tags, i < Buckets.Length ? Num(Buckets[i]) : "+Inf")).Append(' ').Append(cum).Append('\n');
                }
                sb.Append(name).Append("_sum").Append(Labels(s.Tags, null)).Append(' ').Append(Num(s.Sum)).Append('\n');
                sb.Append(name).Append("_count").Append(Labels(s.Tags, null)).Append(' ').Append(s.Count).Append('\n');
            }
        }
        return sb.ToString();
    }

    private static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Labels(KeyValuePair<string, string>[] tags, string? le)
    {
        if (tags.Length == 0 && le == null) return "";
        var parts = tags.Select(t => $"{t.Key}=\"{Escape(t.Value)}\"").ToList();
        if (le != null) parts.Add($"le=\"{le}\"");
        return "{" + string.Join(",", parts) + "}";
    }

    private static string Escape(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    public void Dispose() => _listener.Dispose();
}

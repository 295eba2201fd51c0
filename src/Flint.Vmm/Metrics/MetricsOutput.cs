using Flint.Vmm.Config;

namespace Flint.Vmm.Metrics;

/// <summary>
/// The process's metrics destination, configured at most once (--metrics-path, the config file's "metrics" or
/// PUT /metrics) and flushed by the periodic timer, FlushMetrics and exit. One place for the three configuration
/// routes, so they open the same way and fail with the same words (Firecracker's MetricsConfigError and MetricsError).
/// </summary>
public sealed class MetricsOutput(MetricsRegistry registry) : IDisposable
{
    public const string Reinitialization = "Reinitialization of metrics not allowed.";

    public MetricsWriter? Writer { get; private set; }

    /// <summary>
    /// Opens the destination; <see cref="ConfigException"/> with Firecracker's message when it cannot. As Firecracker's
    /// init_metrics (vmm_config/metrics.rs), <paramref name="emitIdAs"/> (MetricsConfig.emit_id: the instance id) and
    /// <paramref name="properties"/> (MetricsConfig.properties) add top-level "id" and "properties" to every line.
    /// </summary>
    public void Configure(string path, string? emitIdAs = null, IReadOnlyDictionary<string, string>? properties = null)
    {
        if (Writer != null) throw new ConfigException($"Cannot initialize the metrics system due to bad user input: {Reinitialization}");
        try { Writer = new MetricsWriter(path, registry); }
        catch (IOException e)
        {
            throw new ConfigException($"Cannot initialize the metrics system due to bad user input: {e.Message}");
        }
        if (emitIdAs != null) registry.EmitInstanceId(emitIdAs);
        if (properties != null) registry.SetProperties(properties);
    }

    /// <summary>
    /// FlushMetrics: throws <see cref="IOException"/> ("Failed to write metrics: ...") when the line was not written,
    /// so a full disk is not reported as success. Without a destination there is nothing to write.
    /// </summary>
    public void FlushOrThrow()
    {
        if (Writer is { } w && !w.Flush()) throw new IOException($"Failed to write metrics: {w.LastError}");
    }

    /// <summary>The periodic and the final flush: a failure is counted by the writer and otherwise ignored.</summary>
    public void FlushQuietly() => Writer?.Flush();

    public void Dispose() => Writer?.Dispose();
}

using Flint.Vmm.Logging;

namespace Flint.Vmm.Metrics;

/// <summary>
/// Writes metrics lines to a file or FIFO (--metrics-path or PUT /metrics): every 60 s from the event loop's
/// timer, on FlushMetrics, and once more before exit. Opening a FIFO blocks until a reader is there, as in Firecracker.
/// </summary>
public sealed class MetricsWriter : IDisposable
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(60);

    private readonly FileStream _out;
    private readonly MetricsRegistry _registry;
    public long Fails;

    public MetricsWriter(string path, MetricsRegistry registry)
    {
        _registry = registry;
        _out = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
    }

    public bool Flush()
    {
        try
        {
            var line = _registry.Snapshot(DateTimeOffset.UtcNow);
            _out.Write(line);
            _out.WriteByte((byte)'\n');
            _out.Flush();
            return true;
        }
        catch (IOException e)
        {
            Fails++;
            Logger.Warn($"Failed to write metrics: {e.Message}");
            return false;
        }
    }

    public void Dispose() => _out.Dispose();
}

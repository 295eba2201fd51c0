using Flint.Vmm.Logging;

namespace Flint.Vmm.Metrics;

/// <summary>
/// Writes metrics lines to a file or FIFO (--metrics-path, PUT /metrics or the config file's "metrics"): every 60 s from
/// the event loop's timer, on FlushMetrics, and once more before exit. The destination is opened non-blocking as in
/// Firecracker, so a FIFO without a reader delays neither start-up nor the VMM thread: a line that cannot be written
/// is dropped and counted (logger.missed_metrics_count; logger.metrics_fails too when the write failed rather than
/// would block, e.g. a full disk).
/// </summary>
public sealed class MetricsWriter : IDisposable
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(60);

    private readonly NonBlockingFile _out;
    private readonly MetricsRegistry _registry;
    private long _missed, _fails;

    /// <summary>Lines dropped (logger.missed_metrics_count).</summary>
    public long MissedMetricsCount => Interlocked.Read(ref _missed);
    /// <summary>Lines whose write failed outright (logger.metrics_fails).</summary>
    public long Fails => Interlocked.Read(ref _fails);

    /// <summary>Why the last flush failed, in Firecracker's words ("No space left on device (os error 28)"); null after a success.</summary>
    public string? LastError { get; private set; }

    /// <summary>Opens <paramref name="path"/>; throws <see cref="IOException"/> with the system's reason.</summary>
    public MetricsWriter(string path, MetricsRegistry registry)
    {
        _registry = registry;
        _out = NonBlockingFile.Open(path);
        registry.Bind("logger", "missed_metrics_count", () => MissedMetricsCount);
        registry.Bind("logger", "metrics_fails", () => Fails);
    }

    /// <summary>Writes one line; false (and <see cref="LastError"/>) when it could not be written whole.</summary>
    public bool Flush()
    {
        var line = _registry.Snapshot(DateTimeOffset.UtcNow);
        var buf = new byte[line.Length + 1];
        line.CopyTo(buf, 0);
        buf[^1] = (byte)'\n';
        var outcome = _out.Write(buf);
        if (outcome == WriteOutcome.Written)
        {
            LastError = null;
            return true;
        }
        Interlocked.Increment(ref _missed);
        if (outcome == WriteOutcome.Failed) Interlocked.Increment(ref _fails);
        LastError = NonBlockingFile.OsError(_out.LastErrno);
        Logger.Warn($"Failed to write metrics: {LastError}");
        return false;
    }

    public void Dispose() => _out.Dispose();
}

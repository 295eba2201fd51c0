namespace Flint.Devices.Logging;

/// <summary>
/// A device's logger, rate limited per device: a guest that sends nothing but malformed requests gets
/// <see cref="Burst"/> lines, then one per <see cref="RefillSeconds"/> seconds, and a count of what was dropped when
/// lines flow again, so it can neither flood the log nor slow the event loop with writes. Firecracker logs device
/// errors with <c>error!</c> next to an <c>IncMetric</c>; every call here comes with its metric at the call site.
/// <para>
/// A suppressed line costs a few loads and no allocation: the message text is only built (the
/// <c>detail</c> overloads) once the line is allowed.
/// </para>
/// </summary>
public sealed class DeviceLog
{
    public const int Burst = 10;
    public const int RefillSeconds = 1;

    private static IDeviceLogSink? s_sink;

    private readonly Lock _lock = new();
    private readonly Func<long> _nowMs;
    private long _tokens = Burst;
    private long _lastRefillMs;
    private long _suppressed;

    /// <param name="device">Shown with every line (e.g. "VirtioBlock").</param>
    /// <param name="nowMs">Monotonic milliseconds; tests pass a fake.</param>
    public DeviceLog(string device, Func<long>? nowMs = null)
    {
        Device = device;
        _nowMs = nowMs ?? (() => Environment.TickCount64);
        _lastRefillMs = _nowMs();
    }

    /// <summary>The process-wide destination; null (nothing bound, as in unit tests) drops lines.</summary>
    public static IDeviceLogSink? Sink
    {
        get => Volatile.Read(ref s_sink);
        set => Volatile.Write(ref s_sink, value);
    }

    public string Device { get; }

    /// <summary>Lines dropped by the rate limit since the device was made.</summary>
    public long SuppressedTotal { get; private set; }

    public void Error(string message) => Write(DeviceLogLevel.Error, message, null, 0);

    /// <summary>"message: detail" (the number formatted only when the line is written).</summary>
    public void Error(string message, long detail) => Write(DeviceLogLevel.Error, message, null, detail, hasDetail: true);

    public void Error(string message, string detail) => Write(DeviceLogLevel.Error, message, detail, 0);

    public void Warn(string message) => Write(DeviceLogLevel.Warning, message, null, 0);

    /// <summary>"message: detail" at warning level (the number formatted only when the line is written).</summary>
    public void Warn(string message, long detail) => Write(DeviceLogLevel.Warning, message, null, detail, hasDetail: true);

    private void Write(DeviceLogLevel level, string message, string? text, long number, bool hasDetail = false)
    {
        long dropped;
        lock (_lock)
        {
            long now = _nowMs();
            long refill = (now - _lastRefillMs) / (RefillSeconds * 1000L);
            if (refill > 0)
            {
                _tokens = Math.Min(Burst, _tokens + refill);
                _lastRefillMs += refill * RefillSeconds * 1000L;
            }
            if (_tokens == 0)
            {
                _suppressed++;
                SuppressedTotal++;
                Interlocked.Increment(ref Metrics.RateLimitedLogMetrics.RateLimitedLogCount);
                return;
            }
            _tokens--;
            dropped = _suppressed;
            _suppressed = 0;
        }
        var sink = Sink;
        if (sink == null) return;
        string line = text != null ? $"{message}: {text}" : hasDetail ? $"{message}: {number}" : message;
        if (dropped > 0) line += $" ({dropped} similar lines suppressed)";
        try { sink.Write(level, Device, line); }
        catch (Exception) { } // logging must never take a device down
    }
}

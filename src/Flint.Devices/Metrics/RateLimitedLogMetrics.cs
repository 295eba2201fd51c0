namespace Flint.Devices.Metrics;

/// <summary>
/// Firecracker's <c>logger.rate_limited_log_count</c>: every log line dropped by a rate limit (its
/// logger/rate_limited.rs counts each denied line). In Flint these are the device loggers' lines
/// (<see cref="Logging.DeviceLog"/>). Process-wide, as Firecracker's is.
/// </summary>
public static class RateLimitedLogMetrics
{
    public static long RateLimitedLogCount;
}

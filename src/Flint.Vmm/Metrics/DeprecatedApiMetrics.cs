namespace Flint.Vmm.Metrics;

/// <summary>
/// Firecracker's <c>deprecated_api</c> group (src/vmm/src/logger/metrics.rs, DeprecatedApiMetrics): one counter,
/// incremented each time a request uses a deprecated part of the HTTP API (the answers that carry a Deprecation
/// header). Process-wide, as Firecracker's METRICS is.
/// </summary>
public static class DeprecatedApiMetrics
{
    public static long DeprecatedHttpApiCalls;
}

namespace Flint.Devices.Virtio.Rng;

/// <summary>virtio-rng counters under Firecracker's <c>entropy</c> metric names; single Interlocked updates.</summary>
public sealed class EntropyMetrics : IRateLimitedQueueMetrics
{
    public long ActivateFails;
    public long EntropyEventFails;
    public long EntropyEventCount;
    public long EntropyBytes;
    public long HostRngFails;
    public long EntropyRateLimiterThrottled;
    public long RateLimiterEventCount;

    // Firecracker's entropy device counts no plain queue events, and a kick while throttled as a limiter event.
    void IRateLimitedQueueMetrics.CountQueueEvent() { }
    void IRateLimitedQueueMetrics.CountEventFail() => Interlocked.Increment(ref EntropyEventFails);
    void IRateLimitedQueueMetrics.CountKickWhileThrottled() => Interlocked.Increment(ref RateLimiterEventCount);
    void IRateLimitedQueueMetrics.CountLimiterEvent() => Interlocked.Increment(ref RateLimiterEventCount);

    /// <summary>Current values keyed by the JSON names used in the metrics file. Allocates: call on flush only.</summary>
    public (string Name, long Value)[] Snapshot() =>
    [
        ("activate_fails", Interlocked.Read(ref ActivateFails)),
        ("entropy_event_fails", Interlocked.Read(ref EntropyEventFails)),
        ("entropy_event_count", Interlocked.Read(ref EntropyEventCount)),
        ("entropy_bytes", Interlocked.Read(ref EntropyBytes)),
        ("host_rng_fails", Interlocked.Read(ref HostRngFails)),
        ("entropy_rate_limiter_throttled", Interlocked.Read(ref EntropyRateLimiterThrottled)),
        ("rate_limiter_event_count", Interlocked.Read(ref RateLimiterEventCount)),
    ];
}

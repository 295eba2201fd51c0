namespace Flint.Devices.Virtio.Pmem;

/// <summary>virtio-pmem counters under Firecracker's <c>pmem_{id}</c> metric names (pmem/metrics.rs); single Interlocked updates.</summary>
public sealed class PmemMetrics : IRateLimitedQueueMetrics
{
    public long ActivateFails;
    public long CfgFails;
    public long EventFails;
    public long QueueEventCount;
    public long RateLimiterThrottledEvents;
    public long RateLimiterEventCount;

    void IRateLimitedQueueMetrics.CountQueueEvent() => Interlocked.Increment(ref QueueEventCount);
    void IRateLimitedQueueMetrics.CountEventFail() => Interlocked.Increment(ref EventFails);
    void IRateLimitedQueueMetrics.CountKickWhileThrottled() => Interlocked.Increment(ref RateLimiterThrottledEvents);
    void IRateLimitedQueueMetrics.CountLimiterEvent() => Interlocked.Increment(ref RateLimiterEventCount);

    /// <summary>Current values keyed by the JSON names used in the metrics file. Allocates: call on flush only.</summary>
    public (string Name, long Value)[] Snapshot() =>
    [
        ("activate_fails", Interlocked.Read(ref ActivateFails)),
        ("cfg_fails", Interlocked.Read(ref CfgFails)),
        ("event_fails", Interlocked.Read(ref EventFails)),
        ("queue_event_count", Interlocked.Read(ref QueueEventCount)),
        ("rate_limiter_throttled_events", Interlocked.Read(ref RateLimiterThrottledEvents)),
        ("rate_limiter_event_count", Interlocked.Read(ref RateLimiterEventCount)),
    ];
}

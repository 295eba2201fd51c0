namespace Flint.Devices.Virtio;

/// <summary>
/// Which of a device's own counters (under Firecracker's names, which differ per device) count the queue events
/// <see cref="RateLimitedQueueDevice"/> handles for it. Each is one Interlocked update; none allocates.
/// </summary>
public interface IRateLimitedQueueMetrics
{
    /// <summary>Every kick of the queue, before anything is checked.</summary>
    void CountQueueEvent();

    /// <summary>A kick on a queue the device does not have, or before activation.</summary>
    void CountEventFail();

    /// <summary>A kick while the limiter is blocked (the timer serves it later).</summary>
    void CountKickWhileThrottled();

    /// <summary>The limiter's timer fired and the queue is served again.</summary>
    void CountLimiterEvent();
}

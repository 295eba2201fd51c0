using Flint.Devices.RateLimiting;
using Flint.Memory;

namespace Flint.Devices.Virtio;

/// <summary>
/// A virtio device with one request queue served under an optional rate limiter (entropy, pmem): a kick on the queue
/// serves it unless the limiter is blocked, in which case the limiter's refill timer serves it later. That timer fires
/// outside the transport lock, so the queue work of both paths is serialised by a device lock, and
/// <see cref="VirtioDevice.Reset"/> waits for it. The device says what its requests are (<see cref="ServeQueue"/>) and
/// which of its metrics count each event (<see cref="IRateLimitedQueueMetrics"/>); this class holds the rest, once.
/// </summary>
public abstract class RateLimitedQueueDevice : VirtioDevice, IEventSources, IDisposable
{
    private readonly IRateLimitedQueueMetrics _metrics;
    private readonly Lock _lock = new();

    /// <param name="limiter">Optional; the device owns it from here on (sets its <see cref="RateLimiter.OnUnblocked"/>, disposes it).</param>
    /// <param name="metrics">The device's own counters, told of each queue event.</param>
    protected RateLimitedQueueDevice(RateLimiter? limiter, IRateLimitedQueueMetrics metrics)
    {
        _metrics = metrics;
        RateLimiter = limiter;
        if (limiter != null) limiter.OnUnblocked = OnLimiterUnblocked;
    }

    public RateLimiter? RateLimiter { get; }

    /// <summary>The limiter's refill timer (none without a limiter).</summary>
    public IReadOnlyList<EventSource> EventSources => RateLimiter?.EventSources ?? [];

    // A barrier: once Reset has passed here no limiter callback is inside the queue any more, and later ones see
    // the device inactive before touching the queue the transport is about to reset.
    protected override void OnReset() { lock (_lock) { } }

    public sealed override void ProcessQueue(int index)
    {
        _metrics.CountQueueEvent();
        if (index != 0 || !IsActivated)
        {
            _metrics.CountEventFail();
            return;
        }
        // Throttled: the limiter's timer will bring us back.
        if (RateLimiter is { IsBlocked: true })
        {
            _metrics.CountKickWhileThrottled();
            return;
        }
        lock (_lock) ProcessLocked();
    }

    private void OnLimiterUnblocked()
    {
        _metrics.CountLimiterEvent();
        lock (_lock) ProcessLocked();
    }

    private void ProcessLocked()
    {
        var irq = Interrupt;
        if (!IsActivated || irq == null || Queues.Length == 0 || Memory is not { } mem) return;
        ServeQueue(Queues[0], mem, irq);
    }

    /// <summary>Serves the queue's pending requests, under the device lock, with the device active. A request it cannot
    /// afford yet stays on the queue (<see cref="VirtQueue.UndoPop"/>, or not popped): the limiter's timer calls again.</summary>
    protected abstract void ServeQueue(VirtQueue q, GuestMemory mem, VirtioInterrupt irq);

    public void Dispose()
    {
        RateLimiter?.Dispose();
        GC.SuppressFinalize(this);
    }
}

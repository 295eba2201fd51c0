namespace Flint.Devices.Virtio.Net;

/// <summary>
/// What virtio-net needs from a rate limiter (one per direction). A token-bucket implementation lives elsewhere
/// (Flint.Devices.RateLimiting); an adapter implements this so the device does not depend on its shape.
/// Called on the event-loop thread only.
/// </summary>
public interface INetRateLimiter
{
    /// <summary>
    /// Takes one operation plus <paramref name="bytes"/> from the budget. False when the budget does not cover it:
    /// nothing is taken, the limiter is now <see cref="IsBlocked"/> and arms its timer (<see cref="EventFd"/>).
    /// </summary>
    bool Consume(ulong bytes);

    /// <summary>True while an earlier <see cref="Consume"/> failed and the budget has not been refilled yet.</summary>
    bool IsBlocked { get; }

    /// <summary>An fd (timerfd) that turns readable when budget may be back; -1 when the limiter never blocks.</summary>
    int EventFd { get; }

    /// <summary>The event loop saw <see cref="EventFd"/> readable: consume the event and refill. True when unblocked.</summary>
    bool OnEvent();
}

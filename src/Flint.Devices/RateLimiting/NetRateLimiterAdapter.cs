using Flint.Devices.Virtio.Net;

namespace Flint.Devices.RateLimiting;

/// <summary>
/// Presents a <see cref="RateLimiter"/> as virtio-net's <see cref="INetRateLimiter"/> (one per direction).
/// virtio-net registers the timer fd itself and calls <see cref="OnEvent"/>; do not also register the limiter's
/// own <see cref="RateLimiter.EventSources"/>. The fd is always reported (even with no buckets) so limits added
/// later by PATCH through <see cref="RateLimiter.Update(TokenBucketConfig?, TokenBucketConfig?)"/> still resume.
/// </summary>
public sealed class NetRateLimiterAdapter(RateLimiter limiter) : INetRateLimiter, IDisposable
{
    public RateLimiter Limiter { get; } = limiter;

    /// <summary>1 op + <paramref name="bytes"/>; when refused nothing is taken and the limiter blocks.</summary>
    public bool Consume(ulong bytes) => Limiter.ConsumeRequest(bytes);

    public bool IsBlocked => Limiter.IsBlocked;

    public int EventFd => Limiter.TimerFd;

    public bool OnEvent() => Limiter.HandleTimerEvent();

    public void Dispose() => Limiter.Dispose();
}

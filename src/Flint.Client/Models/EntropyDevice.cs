namespace Flint.Client.Models;

/// <summary>PUT /entropy: a virtio-rng device (swagger <c>EntropyDevice</c>). Pre-boot only.</summary>
public sealed record EntropyDevice
{
    /// <summary>Optional rate limiter.</summary>
    public RateLimiter? RateLimiter { get; init; }
}

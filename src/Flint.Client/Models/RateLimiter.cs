namespace Flint.Client.Models;

/// <summary>An I/O rate limiter: independent bytes/s and ops/s token buckets (swagger <c>RateLimiter</c>).</summary>
public sealed record RateLimiter
{
    /// <summary>Token bucket with bytes as tokens.</summary>
    public TokenBucket? Bandwidth { get; init; }

    /// <summary>Token bucket with operations as tokens.</summary>
    public TokenBucket? Ops { get; init; }
}

/// <summary>A token bucket (swagger <c>TokenBucket</c>).</summary>
public sealed record TokenBucket
{
    /// <summary>The initial extra budget, spent before refilling starts.</summary>
    public long? OneTimeBurst { get; init; }

    /// <summary>Milliseconds it takes to refill the whole bucket.</summary>
    public long RefillTime { get; init; }

    /// <summary>The number of tokens the bucket holds.</summary>
    public long Size { get; init; }
}

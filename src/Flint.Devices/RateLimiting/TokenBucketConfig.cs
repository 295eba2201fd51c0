namespace Flint.Devices.RateLimiting;

/// <summary>
/// One bucket as the API describes it: <c>size</c> tokens, refilled continuously over <c>refill_time</c> ms,
/// plus an optional <c>one_time_burst</c> spent first and never refilled. Size or refill time 0 disables it.
/// </summary>
public sealed record TokenBucketConfig(ulong Size, ulong? OneTimeBurst, ulong RefillTime)
{
    /// <summary>A bucket that limits nothing (Firecracker drops it, and so do we).</summary>
    public bool IsDisabled => Size == 0 || RefillTime == 0;
}

/// <summary>The <c>rate_limiter</c> object: each bucket null when the key is absent.</summary>
public sealed record RateLimiterConfig(TokenBucketConfig? Bandwidth, TokenBucketConfig? Ops)
{
    public static readonly RateLimiterConfig None = new(null, null);
}

/// <summary>A rate limiter body that does not have Firecracker's shape.</summary>
public sealed class RateLimiterConfigException(string message) : FormatException(message);

namespace Flint.Devices.RateLimiting;

/// <summary>What a <see cref="TokenBucket.Reduce(ulong)"/> did.</summary>
public enum BucketReduction
{
    /// <summary>Not enough tokens: nothing was taken; try again later.</summary>
    Failure,
    /// <summary>The tokens were taken.</summary>
    Success,
    /// <summary>
    /// The request was bigger than the whole bucket: it was allowed by emptying the bucket, and the rest is a
    /// debt the caller must wait out (<see cref="TokenBucket.RefillDurationNs"/> of the excess).
    /// </summary>
    OverConsumption,
}

/// <summary>
/// Firecracker's token bucket. It starts full (budget = size); <c>one_time_burst</c> extra tokens are spent before
/// the budget and never come back; the budget refills continuously at size / refill_time. Refill is integer math on
/// elapsed nanoseconds over the fraction size / refill_ns reduced by their gcd; the division's remainder carries to
/// the next refill, so no tokens are lost or invented by rounding. A request larger than the bucket is allowed by spending everything and
/// reporting <see cref="BucketReduction.OverConsumption"/>. Size or refill time 0: disabled, every request passes.
/// Not thread-safe: <see cref="RateLimiter"/> serialises access.
/// </summary>
public sealed class TokenBucket
{
    public const ulong NanosPerMilli = 1_000_000;

    private readonly IClock _clock;
    private readonly UInt128 _refillNs;
    // size / refillNs reduced by their gcd: tokens = elapsed * _cap / _period.
    private readonly UInt128 _cap;
    private readonly UInt128 _period;
    private ulong _lastUpdate;
    // Token-nanoseconds (in units of 1/period token) earned but not yet worth a whole token.
    private UInt128 _carry;

    public TokenBucket(ulong size, ulong oneTimeBurst, ulong refillTimeMs, IClock clock)
    {
        _clock = clock ?? throw new ArgumentNullException(nameof(clock));
        Size = size;
        RefillTimeMs = refillTimeMs;
        InitialOneTimeBurst = OneTimeBurst = oneTimeBurst;
        Budget = size;
        _lastUpdate = clock.NowNanoseconds;
        if (IsDisabled) return;
        _refillNs = (UInt128)refillTimeMs * NanosPerMilli;
        UInt128 g = Gcd(size, _refillNs);
        _cap = size / g;
        _period = _refillNs / g;
    }

    /// <summary>
    /// A bucket as a snapshot left it (<see cref="TokenBucketState"/>): its configuration, the tokens it still held,
    /// and its last update <paramref name="elapsedNs"/> before now, as Firecracker restores one (the time the VM spent
    /// saved does not count: the bucket earns from the moment it was saved, not from when it was written to disk).
    /// </summary>
    internal TokenBucket(TokenBucketState s, IClock clock) : this(s.Size, s.InitialOneTimeBurst, s.RefillTimeMs, clock)
    {
        OneTimeBurst = s.OneTimeBurst;
        Budget = s.Budget;
        ulong now = clock.NowNanoseconds;
        _lastUpdate = s.ElapsedNs < now ? now - s.ElapsedNs : 0;
    }

    /// <summary>What a snapshot keeps of this bucket (Firecracker's TokenBucketState, plus the initial burst).</summary>
    internal TokenBucketState State =>
        new(Size, InitialOneTimeBurst, OneTimeBurst, RefillTimeMs, Budget, SaturatingSub(_clock.NowNanoseconds, _lastUpdate));

    private static ulong SaturatingSub(ulong a, ulong b) => a > b ? a - b : 0;

    public TokenBucket(TokenBucketConfig config, IClock clock)
        : this(config.Size, config.OneTimeBurst ?? 0, config.RefillTime, clock) { }

    public ulong Size { get; }
    public ulong RefillTimeMs { get; }
    public ulong InitialOneTimeBurst { get; }

    /// <summary>One-time burst tokens left.</summary>
    public ulong OneTimeBurst { get; private set; }

    /// <summary>Regular tokens left, as of the last reduce or replenish (the clock is not read here).</summary>
    public ulong Budget { get; private set; }

    public bool IsDisabled => Size == 0 || RefillTimeMs == 0;

    public TokenBucketConfig Config => new(Size, InitialOneTimeBurst == 0 ? null : InitialOneTimeBurst, RefillTimeMs);

    public BucketReduction Reduce(ulong tokens) => Reduce(tokens, out _);

    /// <summary>
    /// Takes <paramref name="tokens"/>: burst first, then the (refilled) budget. On OverConsumption
    /// <paramref name="excess"/> is how many tokens beyond the emptied bucket were granted on credit.
    /// A Failure takes nothing, burst included, so the retried request is judged the same way.
    /// </summary>
    public BucketReduction Reduce(ulong tokens, out ulong excess)
    {
        excess = 0;
        if (IsDisabled) return BucketReduction.Success;
        Replenish();
        if (OneTimeBurst >= tokens)
        {
            OneTimeBurst -= tokens;
            return BucketReduction.Success;
        }
        ulong rest = tokens - OneTimeBurst;
        if (rest <= Budget)
        {
            OneTimeBurst = 0;
            Budget -= rest;
            return BucketReduction.Success;
        }
        if (rest > Size)
        {
            OneTimeBurst = 0;
            excess = rest - Budget;
            Budget = 0;
            return BucketReduction.OverConsumption;
        }
        return BucketReduction.Failure;
    }

    /// <summary>
    /// Gives tokens back (a request that took ops but then failed on bytes). While burst remains it goes back to
    /// the burst, up to its initial value; otherwise to the budget, up to the size.
    /// </summary>
    public void ForceReplenish(ulong tokens)
    {
        if (IsDisabled) return;
        if (OneTimeBurst > 0)
        {
            OneTimeBurst = Math.Min(SaturatingAdd(OneTimeBurst, tokens), InitialOneTimeBurst);
            return;
        }
        Budget = Math.Min(SaturatingAdd(Budget, tokens), Size);
    }

    /// <summary>Nanoseconds an empty bucket needs to regain <paramref name="tokens"/> (rounded up; saturates).</summary>
    public ulong RefillDurationNs(ulong tokens)
    {
        if (IsDisabled || tokens == 0) return 0;
        UInt128 ns = ((UInt128)tokens * _period + _cap - 1) / _cap;
        return ns > ulong.MaxValue ? ulong.MaxValue : (ulong)ns;
    }

    /// <summary>
    /// Adds what the time since the last update earned: elapsed * cap / period tokens, where the division's
    /// remainder (token-nanoseconds not yet worth a token) is kept and added next time, so the bucket hands out
    /// exactly size tokens per refill_time however often it is asked. A full refill period (or more) fills the
    /// bucket. Time spent with a full bucket earns nothing (tokens never bank beyond the size).
    /// </summary>
    private void Replenish()
    {
        ulong now = _clock.NowNanoseconds;
        if (Budget == Size)
        {
            // Nothing to earn: start counting from now.
            _lastUpdate = now;
            _carry = 0;
            return;
        }
        if (now <= _lastUpdate) return;
        ulong delta = now - _lastUpdate;
        _lastUpdate = now;
        if (delta >= _refillNs)
        {
            Budget = Size;
            _carry = 0;
            return;
        }
        // delta < 2^64 and cap <= size < 2^64: the product fits; remainder + carry < 2 * period fits too.
        UInt128 prod = (UInt128)delta * _cap;
        UInt128 rem = prod % _period + _carry;
        UInt128 tokens = prod / _period + rem / _period;
        _carry = rem % _period;
        // tokens <= delta * size / refillNs + 1 <= size: fits in 64 bits.
        if (tokens >= Size - Budget)
        {
            Budget = Size;
            _carry = 0;
            return;
        }
        Budget += (ulong)tokens;
    }

    private static ulong SaturatingAdd(ulong a, ulong b) => a + b < a ? ulong.MaxValue : a + b;

    private static UInt128 Gcd(UInt128 a, UInt128 b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}

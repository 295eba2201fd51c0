using Flint.Devices.RateLimiting;

namespace Flint.Devices.Tests.RateLimiting;

public sealed class TokenBucketTests
{
    private readonly FakeClock _clock = new();

    [Fact]
    public void Starts_full_and_fails_when_empty()
    {
        var b = new TokenBucket(1000, 0, 1000, _clock);
        Assert.Equal(1000UL, b.Budget);
        Assert.Equal(BucketReduction.Success, b.Reduce(600));
        Assert.Equal(BucketReduction.Success, b.Reduce(400));
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
        Assert.Equal(0UL, b.Budget);
    }

    [Fact]
    public void Refills_continuously_at_size_over_refill_time()
    {
        var b = new TokenBucket(1000, 0, 1000, _clock); // 1 token per ms
        Assert.Equal(BucketReduction.Success, b.Reduce(1000));
        _clock.AdvanceMs(1);
        Assert.Equal(BucketReduction.Success, b.Reduce(1));
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
        _clock.AdvanceMs(250);
        Assert.Equal(BucketReduction.Failure, b.Reduce(251));
        Assert.Equal(BucketReduction.Success, b.Reduce(250));
        Assert.Equal(0UL, b.Budget);
    }

    [Fact]
    public void Failure_takes_nothing()
    {
        var b = new TokenBucket(100, 0, 1000, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(70));
        Assert.Equal(BucketReduction.Failure, b.Reduce(31));
        Assert.Equal(30UL, b.Budget);
        Assert.Equal(BucketReduction.Success, b.Reduce(30));
    }

    [Fact]
    public void Fractional_refills_carry_the_remainder()
    {
        // 3 tokens per 10 ms: one every 3.33 ms. Asked at awkward moments, it must still hand out exactly 3 per 10 ms.
        var b = new TokenBucket(3, 0, 10, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(3));
        _clock.AdvanceMs(2); // 0.6 token
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
        _clock.AdvanceMs(2); // 1.2
        Assert.Equal(BucketReduction.Success, b.Reduce(1));
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
        _clock.AdvanceMs(3); // 2.1
        Assert.Equal(BucketReduction.Success, b.Reduce(1));
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
        _clock.AdvanceMs(3); // exactly 3.0 at 10 ms
        Assert.Equal(BucketReduction.Success, b.Reduce(1));
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
    }

    [Fact]
    public void Nanosecond_polling_loses_nothing()
    {
        // 1000 tokens per second, polled every 333 us: after exactly 1 s of polling, 1000 tokens were granted.
        var b = new TokenBucket(1000, 0, 1000, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(1000));
        ulong granted = 0;
        ulong elapsed = 0;
        while (elapsed + 333_333 <= 999_999_999)
        {
            _clock.AdvanceNs(333_333);
            elapsed += 333_333;
            while (b.Reduce(1) == BucketReduction.Success) granted++;
        }
        _clock.AdvanceNs(1_000_000_000 - elapsed);
        while (b.Reduce(1) == BucketReduction.Success) granted++;
        Assert.Equal(1000UL, granted);
    }

    [Fact]
    public void Full_refill_after_refill_time()
    {
        var b = new TokenBucket(100, 0, 100, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(100));
        _clock.AdvanceMs(5000);
        Assert.Equal(BucketReduction.Success, b.Reduce(100));
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
    }

    [Fact]
    public void Time_spent_full_does_not_bank_tokens()
    {
        var b = new TokenBucket(100, 0, 100, _clock);
        _clock.AdvanceMs(10_000); // idle and full
        Assert.Equal(BucketReduction.Success, b.Reduce(100));
        Assert.Equal(BucketReduction.Failure, b.Reduce(1)); // the idle time bought nothing beyond a full bucket
        _clock.AdvanceMs(50);
        Assert.Equal(BucketReduction.Success, b.Reduce(50));
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
    }

    [Fact]
    public void One_time_burst_is_spent_first_and_never_refilled()
    {
        var b = new TokenBucket(100, 50, 1000, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(30));
        Assert.Equal(20UL, b.OneTimeBurst);
        Assert.Equal(100UL, b.Budget);
        Assert.Equal(BucketReduction.Success, b.Reduce(70)); // 20 from burst, 50 from budget
        Assert.Equal(0UL, b.OneTimeBurst);
        Assert.Equal(50UL, b.Budget);
        _clock.AdvanceMs(10_000);
        Assert.Equal(BucketReduction.Success, b.Reduce(100));
        Assert.Equal(0UL, b.OneTimeBurst);
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
        Assert.Equal(50UL, b.InitialOneTimeBurst);
    }

    [Fact]
    public void Burst_and_budget_together_cover_a_request()
    {
        var b = new TokenBucket(100, 50, 1000, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(150));
        Assert.Equal(0UL, b.Budget);
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
    }

    [Theory]
    [InlineData(0UL, 1000UL)]
    [InlineData(1000UL, 0UL)]
    [InlineData(0UL, 0UL)]
    public void Zero_size_or_refill_time_disables(ulong size, ulong refill)
    {
        var b = new TokenBucket(size, 10, refill, _clock);
        Assert.True(b.IsDisabled);
        Assert.Equal(BucketReduction.Success, b.Reduce(ulong.MaxValue));
        Assert.Equal(BucketReduction.Success, b.Reduce(ulong.MaxValue));
        Assert.Equal(0UL, b.RefillDurationNs(100));
    }

    [Fact]
    public void Request_larger_than_the_bucket_empties_it_and_reports_the_debt()
    {
        var b = new TokenBucket(100, 0, 1000, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(60));
        Assert.Equal(BucketReduction.OverConsumption, b.Reduce(250, out ulong excess));
        Assert.Equal(210UL, excess); // 40 left in the bucket paid for part of it
        Assert.Equal(0UL, b.Budget);
        Assert.Equal(2_100_000_000UL, b.RefillDurationNs(excess)); // 2.1 bucket refills
        Assert.Equal(BucketReduction.Failure, b.Reduce(1));
    }

    [Fact]
    public void Request_exactly_the_size_is_not_over_consumption()
    {
        var b = new TokenBucket(100, 0, 1000, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(10));
        Assert.Equal(BucketReduction.Failure, b.Reduce(100));
        _clock.AdvanceMs(100);
        Assert.Equal(BucketReduction.Success, b.Reduce(100));
    }

    [Fact]
    public void Force_replenish_goes_to_burst_while_it_lasts_then_budget_capped()
    {
        var b = new TokenBucket(100, 10, 1000, _clock);
        b.Reduce(5);
        b.ForceReplenish(100);
        Assert.Equal(10UL, b.OneTimeBurst);
        b.Reduce(50);
        Assert.Equal(60UL, b.Budget);
        b.ForceReplenish(1000);
        Assert.Equal(100UL, b.Budget);
    }

    [Fact]
    public void Refill_duration_rounds_up()
    {
        var b = new TokenBucket(3, 0, 10, _clock);
        Assert.Equal(3_333_334UL, b.RefillDurationNs(1));
        Assert.Equal(10_000_000UL, b.RefillDurationNs(3));
    }

    [Fact]
    public void Huge_values_do_not_overflow()
    {
        var b = new TokenBucket(ulong.MaxValue, 0, ulong.MaxValue, _clock);
        Assert.Equal(BucketReduction.Success, b.Reduce(ulong.MaxValue));
        _clock.AdvanceMs(1_000_000);
        Assert.Equal(BucketReduction.Failure, b.Reduce(ulong.MaxValue));
        Assert.Equal(ulong.MaxValue, b.RefillDurationNs(ulong.MaxValue));
    }
}

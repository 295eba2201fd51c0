using Flint.Devices.RateLimiting;

namespace Flint.Devices.Tests.RateLimiting;

public sealed class RateLimiterTests
{
    private readonly FakeClock _clock = new();

    private static TokenBucketConfig Bucket(ulong size, ulong refillMs, ulong? burst = null) => new(size, burst, refillMs);

    /// <summary>Waits out the real refill timer and runs the event loop's handler for it.</summary>
    private static void FireTimer(RateLimiter rl, int waitMs = 150)
    {
        Thread.Sleep(waitMs);
        Assert.Single(rl.EventSources);
        rl.EventSources[0].OnReady(1);
    }

    [Fact]
    public void Without_buckets_everything_passes()
    {
        using var rl = new RateLimiter(null, null, _clock);
        Assert.True(rl.IsUnlimited);
        Assert.True(rl.Consume(ulong.MaxValue, TokenType.Bytes));
        Assert.True(rl.Consume(ulong.MaxValue, TokenType.Ops));
        Assert.False(rl.IsBlocked);
        Assert.False(rl.ManualReplenish(1, TokenType.Ops));
        Assert.Equal(rl.TimerFd, rl.EventSources[0].Fd);
    }

    [Fact]
    public void Disabled_configs_are_no_buckets()
    {
        using var rl = new RateLimiter(Bucket(0, 100), Bucket(100, 0), _clock);
        Assert.True(rl.IsUnlimited);
        Assert.True(rl.Consume(1_000_000, TokenType.Bytes));
    }

    [Fact]
    public void Failed_consume_blocks_until_the_timer_fires()
    {
        using var rl = new RateLimiter(null, Bucket(2, 1000), _clock);
        int resumed = 0;
        rl.OnUnblocked = () => resumed++;
        Assert.True(rl.Consume(1, TokenType.Ops));
        Assert.True(rl.Consume(1, TokenType.Ops));
        Assert.False(rl.Consume(1, TokenType.Ops));
        Assert.True(rl.IsBlocked);
        // While blocked every consume fails, even on a type without a bucket and even once tokens are back.
        Assert.False(rl.Consume(1, TokenType.Bytes));
        _clock.AdvanceMs(1000);
        Assert.False(rl.Consume(1, TokenType.Ops));
        FireTimer(rl);
        Assert.Equal(1, resumed);
        Assert.False(rl.IsBlocked);
        Assert.True(rl.Consume(2, TokenType.Ops));
        Assert.Equal(1, rl.TimerEventCount);
    }

    [Fact]
    public void Timer_is_armed_for_the_refill_interval()
    {
        using var rl = new RateLimiter(null, Bucket(1, 1000), _clock);
        rl.Consume(1, TokenType.Ops);
        Assert.False(rl.Consume(1, TokenType.Ops));
        // Not yet expired: a wake-up now is spurious and leaves the limiter blocked.
        Assert.False(rl.HandleTimerEvent());
        Assert.True(rl.IsBlocked);
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        Assert.True(rl.HandleTimerEvent());
        Assert.False(rl.IsBlocked);
    }

    [Fact]
    public void Spurious_timer_event_does_not_call_back()
    {
        using var rl = new RateLimiter(Bucket(10, 100), null, _clock);
        int resumed = 0;
        rl.OnUnblocked = () => resumed++;
        rl.EventSources[0].OnReady(1);
        Assert.Equal(0, resumed);
        Assert.False(rl.IsBlocked);
    }

    [Fact]
    public void Over_consumption_succeeds_and_blocks_for_the_debt()
    {
        // 1000 bytes per 100 ms; 1500 bytes leaves a 500-byte debt = 50 ms of refill.
        using var rl = new RateLimiter(Bucket(1000, 100), null, _clock);
        Assert.True(rl.Consume(1500, TokenType.Bytes));
        Assert.True(rl.IsBlocked);
        Assert.False(rl.Consume(1, TokenType.Bytes));
        Thread.Sleep(80);
        Assert.True(rl.HandleTimerEvent());
        Assert.False(rl.IsBlocked);
    }

    [Fact]
    public void Consume_request_gives_the_op_back_when_bytes_are_short()
    {
        using var rl = new RateLimiter(Bucket(100, 1000), Bucket(10, 1000), _clock);
        Assert.True(rl.ConsumeRequest(60));
        Assert.Equal((0UL, 9UL), rl.BucketState(TokenType.Ops));
        Assert.Equal((0UL, 40UL), rl.BucketState(TokenType.Bytes));
        Assert.False(rl.ConsumeRequest(50));
        Assert.Equal((0UL, 9UL), rl.BucketState(TokenType.Ops));
        Assert.Equal((0UL, 40UL), rl.BucketState(TokenType.Bytes));
        Assert.True(rl.IsBlocked);
    }

    [Fact]
    public void Consume_request_of_zero_bytes_charges_only_the_op()
    {
        using var rl = new RateLimiter(Bucket(1, 1000), Bucket(10, 1000), _clock);
        Assert.True(rl.Consume(1, TokenType.Bytes));
        Assert.True(rl.ConsumeRequest(0));
        Assert.Equal((0UL, 9UL), rl.BucketState(TokenType.Ops));
    }

    [Fact]
    public void Update_keeps_replaces_or_removes_each_bucket()
    {
        using var rl = new RateLimiter(Bucket(100, 1000), Bucket(10, 1000, 5), _clock);
        rl.Consume(100, TokenType.Bytes);
        rl.Consume(7, TokenType.Ops);
        // null: unchanged.
        rl.Update(null, null);
        Assert.Equal((0UL, 0UL), rl.BucketState(TokenType.Bytes));
        Assert.Equal((0UL, 8UL), rl.BucketState(TokenType.Ops));
        // A new config: a fresh, full bucket.
        rl.Update(Bucket(500, 1000, 20), null);
        Assert.Equal((20UL, 500UL), rl.BucketState(TokenType.Bytes));
        Assert.Equal((0UL, 8UL), rl.BucketState(TokenType.Ops));
        // A disabled config: the bucket is gone.
        rl.Update(null, Bucket(0, 0));
        Assert.Null(rl.BucketState(TokenType.Ops));
        Assert.True(rl.Consume(1_000_000, TokenType.Ops));
        Assert.Equal(new RateLimiterConfig(Bucket(500, 1000, 20), null), rl.Config);
    }

    [Fact]
    public void Uses_the_monotonic_clock_by_default()
    {
        using var rl = new RateLimiter(Bucket(1_000_000, 10), null);
        Assert.True(rl.Consume(1_000_000, TokenType.Bytes));
        Thread.Sleep(30);
        Assert.True(rl.Consume(1_000_000, TokenType.Bytes));
        ulong a = MonotonicClock.Instance.NowNanoseconds;
        Thread.Sleep(5);
        Assert.True(MonotonicClock.Instance.NowNanoseconds - a >= 4_000_000);
    }
}

using Flint.Devices.RateLimiting;
using Flint.Snapshot;

namespace Flint.Devices.Tests.Snapshot;

/// <summary>
/// A rate limiter saved in a snapshot and restored in another process (another clock origin): it goes on with the
/// tokens it had left and the time since its last update, as Firecracker's rate_limiter/persist.rs restores one,
/// instead of starting full again (which let a restored VM take a whole new burst and bucket at once).
/// </summary>
public sealed class RateLimiterStateTests
{
    private static readonly TokenBucketConfig Bandwidth = new(1000, 500, 1000); // 1000 bytes/s, 500 burst
    private static readonly TokenBucketConfig Ops = new(10, null, 1000);

    private static StateReader RoundTrip(Action<StateWriter> save)
    {
        var w = new StateWriter();
        save(w);
        return new StateReader("runtime/0", w.ToArray());
    }

    [Fact]
    public void A_restored_limiter_continues_from_its_saved_budget()
    {
        var clock = new FakeClock(5_000_000_000);
        using var before = new RateLimiter(Bandwidth, Ops, clock);
        Assert.True(before.Consume(700, TokenType.Bytes));   // the 500 burst, then 200 of the budget
        Assert.True(before.Consume(4, TokenType.Ops));
        clock.AdvanceMs(100);                                // 100 ms since the last update when saved
        var r = RoundTrip(before.SaveState);

        // The new process: its clock has another origin, and its limiter is built full from the configuration.
        var clock2 = new FakeClock(77_000_000_000);
        using var after = new RateLimiter(Bandwidth, Ops, clock2);
        Assert.Equal((500UL, 1000UL), after.BucketState(TokenType.Bytes)!.Value); // what a restore used to leave
        after.RestoreState(r);
        r.ExpectEnd();

        Assert.Equal((0UL, 800UL), after.BucketState(TokenType.Bytes)!.Value);
        Assert.Equal((0UL, 6UL), after.BucketState(TokenType.Ops)!.Value);
        // 800 left + 100 earned in the 100 ms before the save: 901 bytes is one too many...
        Assert.False(after.Consume(901, TokenType.Bytes));
        Assert.Equal((0UL, 900UL), after.BucketState(TokenType.Bytes)!.Value);
        Assert.True(after.IsBlocked);
    }

    [Fact]
    public void Exactly_the_saved_budget_plus_what_the_elapsed_time_earned_passes()
    {
        var clock = new FakeClock();
        using var before = new RateLimiter(Bandwidth, null, clock);
        Assert.True(before.Consume(1500, TokenType.Bytes));  // burst and the whole budget
        clock.AdvanceMs(250);
        var r = RoundTrip(before.SaveState);
        var clock2 = new FakeClock(60_000_000_000);
        using var after = new RateLimiter(Bandwidth, null, clock2);
        after.RestoreState(r);
        Assert.True(after.Consume(250, TokenType.Bytes));
        Assert.False(after.Consume(1, TokenType.Bytes));
        Assert.Null(after.BucketState(TokenType.Ops));
    }

    [Fact]
    public void The_saved_buckets_replace_the_configured_ones_including_a_removed_bucket()
    {
        // A PATCH before the snapshot changed the buckets: the saved ones win, as in Firecracker.
        var clock = new FakeClock();
        using var before = new RateLimiter(new TokenBucketConfig(50, null, 100), null, clock);
        var r = RoundTrip(before.SaveState);
        using var after = new RateLimiter(Bandwidth, Ops, new FakeClock());
        after.RestoreState(r);
        Assert.Equal((0UL, 50UL), after.BucketState(TokenType.Bytes)!.Value);
        Assert.Null(after.BucketState(TokenType.Ops));
        Assert.Equal(new RateLimiterConfig(new TokenBucketConfig(50, null, 100), null), after.Config);
    }

    [Fact]
    public void A_saved_limiter_for_a_device_without_one_is_read_and_dropped()
    {
        using var before = new RateLimiter(Bandwidth, Ops, new FakeClock());
        var r = RoundTrip(w => { RateLimiterSnapshot.Write(w, before); w.U8(42); });
        RateLimiterSnapshot.Read(r, null);
        Assert.Equal(42, r.U8());
        r.ExpectEnd();
        var none = RoundTrip(w => RateLimiterSnapshot.Write(w, null));
        using var untouched = new RateLimiter(Bandwidth, null, new FakeClock());
        RateLimiterSnapshot.Read(none, untouched);
        Assert.Equal((500UL, 1000UL), untouched.BucketState(TokenType.Bytes)!.Value);
    }

    [Theory]
    [InlineData(1000, 0, 0, 1000, 1001, 0)]  // budget above the size
    [InlineData(1000, 10, 11, 1000, 5, 0)]   // more burst left than it started with
    [InlineData(0, 0, 0, 1000, 0, 0)]        // a bucket that limits nothing
    [InlineData(1000, 0, 0, 0, 0, 0)]
    public void Impossible_buckets_are_refused(ulong size, ulong initialBurst, ulong burst, ulong refillMs, ulong budget, ulong elapsed)
    {
        var r = RoundTrip(w =>
        {
            w.Bool(true);
            new TokenBucketState(size, initialBurst, burst, refillMs, budget, elapsed).Write(w);
            w.Bool(false);
        });
        using var rl = new RateLimiter(Bandwidth, Ops, new FakeClock());
        Assert.Throws<SnapshotFormatException>(() => rl.RestoreState(r));
        Assert.Equal((500UL, 1000UL), rl.BucketState(TokenType.Bytes)!.Value); // nothing half-restored
    }

    [Fact]
    public void A_truncated_state_is_a_format_error()
    {
        var w = new StateWriter();
        using (var rl = new RateLimiter(Bandwidth, Ops, new FakeClock())) rl.SaveState(w);
        var bytes = w.ToArray();
        var r = new StateReader("runtime/0", bytes, 0, bytes.Length - 3);
        using var after = new RateLimiter(Bandwidth, Ops, new FakeClock());
        Assert.Throws<SnapshotFormatException>(() => after.RestoreState(r));
    }
}

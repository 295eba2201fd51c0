using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Net;

namespace Flint.Devices.Tests.RateLimiting;

public sealed class NetRateLimiterAdapterTests
{
    [Fact]
    public void Charges_op_and_bytes_and_unblocks_on_the_timer()
    {
        var clock = new FakeClock();
        using var a = new NetRateLimiterAdapter(new RateLimiter(new TokenBucketConfig(1500, null, 1000), new TokenBucketConfig(10, null, 1000), clock));
        INetRateLimiter n = a;
        Assert.Equal(a.Limiter.TimerFd, n.EventFd);
        Assert.True(n.Consume(1000));
        Assert.False(n.Consume(1000));
        Assert.True(n.IsBlocked);
        Assert.Equal((0UL, 9UL), a.Limiter.BucketState(TokenType.Ops));
        Assert.False(n.OnEvent()); // not expired yet
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        Assert.True(n.OnEvent());
        Assert.False(n.IsBlocked);
        clock.AdvanceMs(1000);
        Assert.True(n.Consume(1000));
    }
}

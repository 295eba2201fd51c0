using System.Diagnostics;
using Flint.Devices.RateLimiting;
using Xunit.Abstractions;

namespace Flint.Devices.Tests.RateLimiting;

/// <summary>
/// Accuracy against the real monotonic clock: a sender that pushes 64 KiB frames as fast as the limiter allows,
/// waiting on the limiter's own timerfd when blocked (as a device does), achieves the configured rate.
/// </summary>
public class RateLimiterAccuracyTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(10UL << 20, 100UL)]  // 10 MiB per 100 ms = 100 MiB/s
    [InlineData(1UL << 20, 1000UL)]  // 1 MiB/s
    public void Achieved_bandwidth_matches_the_configured_rate(ulong size, ulong refillMs)
    {
        using var rl = new RateLimiter(new TokenBucketConfig(size, null, refillMs), null);
        using var epoll = new Flint.Sys.Epoll();
        epoll.Add(rl.TimerFd, 0);
        var events = new Flint.Sys.EpollEvent[1];
        const ulong frame = 64 * 1024;
        double configured = size * 1000.0 / refillMs;
        // Drain the initial full bucket first: it is a burst by design and would inflate a short measurement.
        while (rl.Consume(frame, TokenType.Bytes)) { }
        ulong sent = 0;
        var sw = Stopwatch.StartNew();
        var duration = TimeSpan.FromSeconds(2);
        while (sw.Elapsed < duration)
        {
            if (rl.Consume(frame, TokenType.Bytes)) { sent += frame; continue; }
            // Blocked: wait for the limiter's timer as the event loop would, then let it unblock.
            if (epoll.Wait(events, 1000) > 0) rl.HandleTimerEvent();
        }
        double achieved = sent / sw.Elapsed.TotalSeconds;
        double ratio = achieved / configured;
        output.WriteLine($"configured {configured / (1 << 20):F2} MiB/s, achieved {achieved / (1 << 20):F2} MiB/s, ratio {ratio:F3}");
        // Upper bound: the limiter never lets more through. Lower bound leaves room for late wake-ups on a loaded CI host.
        Assert.InRange(ratio, 0.75, 1.05);
    }
}

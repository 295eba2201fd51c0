using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Memory;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Tests.Virtio;

/// <summary>virtio-blk with a rate limiter: 1 op per request, data bytes for reads and writes.</summary>
public sealed class BlockRateLimiterTests : IDisposable
{
    private const int Sectors = 64;
    private readonly string _path = System.IO.Path.GetTempFileName();
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
    private readonly GuestDriver _driver;
    private readonly CountingInterrupt _line = new();
    private readonly VirtQueue _queue = new(VirtioBlock.QueueSize);
    private readonly FakeClock _clock = new();
    private VirtioBlock _dev = null!;

    public BlockRateLimiterTests()
    {
        var content = new byte[Sectors * 512];
        for (int s = 0; s < Sectors; s++) content.AsSpan(s * 512, 512).Fill((byte)(s + 1));
        File.WriteAllBytes(_path, content);
        _driver = new GuestDriver(_mem, 16);
    }

    private RateLimiter Start(TokenBucketConfig? bandwidth, TokenBucketConfig? ops)
    {
        var rl = new RateLimiter(bandwidth, ops, _clock);
        _dev = new VirtioBlock(_path, rateLimiter: rl);
        _driver.Configure(_queue);
        Assert.True(_dev.Activate(_mem, [_queue], new VirtioInterrupt(_line), _dev.AvailableFeatures & ~VirtioFeatures.RingEventIdx)); // these drivers do not do EVENT_IDX
        return rl;
    }

    public void Dispose()
    {
        _dev?.Dispose();
        _mem.Dispose();
        File.Delete(_path);
    }

    /// <summary>Queues a request (header, data, status) without processing; returns (data addr, status addr).</summary>
    private (ulong Data, ulong Status) Submit(uint type, ulong sector, uint dataLen)
    {
        ulong h = _driver.Alloc(16);
        _mem.Write(h, type);
        _mem.Write(h + 8, sector);
        ulong st = _driver.Alloc(1, 0xff);
        if (dataLen == 0)
        {
            _driver.Push((h, 16, false), (st, 1, true));
            return (0, st);
        }
        ulong d = _driver.Alloc(dataLen);
        _driver.Push((h, 16, false), (d, dataLen, type is RequestIn or RequestGetId), (st, 1, true));
        return (d, st);
    }

    private void FireTimer(RateLimiter rl)
    {
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        Assert.Equal(2, _dev.EventSources.Count); // the limiter's timer, then the resume eventfd
        _dev.EventSources[0].OnReady(1);
    }

    [Fact]
    public void Ops_limit_leaves_requests_queued_until_the_timer()
    {
        var rl = Start(null, new TokenBucketConfig(2, null, 1000));
        var reqs = Enumerable.Range(0, 3).Select(i => Submit(RequestIn, (ulong)i, 512)).ToArray();
        _dev.ProcessQueue(0);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(2, _queue.NextAvail);
        Assert.Equal(0xff, _mem.Read<byte>(reqs[2].Status));
        Assert.Equal(1, _dev.RateLimiterThrottledEvents);
        Assert.Equal(0, _dev.Metrics.NoAvailBuffer);
        Assert.True(rl.IsBlocked);

        // A doorbell while throttled serves nothing.
        _dev.ProcessQueue(0);
        Assert.Equal(2, _driver.UsedIdx);

        _clock.AdvanceMs(500);
        FireTimer(rl);
        Assert.Equal(3, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(reqs[2].Status));
        Assert.Equal(3, _mem.Read<byte>(reqs[2].Data)); // sector 2 holds 3
        Assert.Equal(1, _dev.RateLimiterEventCount);
        Assert.Equal(2, _line.Count);
    }

    [Fact]
    public void Bandwidth_charges_data_bytes_of_reads_and_writes()
    {
        var rl = Start(new TokenBucketConfig(1024, null, 1000), null);
        var r = Submit(RequestIn, 0, 512);
        var w = Submit(RequestOut, 4, 512);
        var big = Submit(RequestIn, 8, 1024);
        _dev.ProcessQueue(0);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(r.Status));
        Assert.Equal(StatusOk, _mem.Read<byte>(w.Status));
        Assert.Equal(0xff, _mem.Read<byte>(big.Status));
        Assert.Equal(1, _dev.RateLimiterThrottledEvents);
        Assert.Equal(0, _dev.Metrics.ReadCount - 1);

        _clock.AdvanceMs(1000);
        FireTimer(rl);
        Assert.Equal(3, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(big.Status));
        Assert.Equal(1536, _dev.Metrics.ReadBytes);
    }

    [Fact]
    public void Flush_and_GET_ID_cost_no_bytes()
    {
        var rl = Start(new TokenBucketConfig(512, null, 1000), null);
        Submit(RequestIn, 0, 512); // empties the bandwidth bucket
        var f = Submit(RequestFlush, 0, 0);
        var id = Submit(RequestGetId, 0, 20);
        _dev.ProcessQueue(0);
        Assert.Equal(3, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(f.Status));
        Assert.Equal(StatusOk, _mem.Read<byte>(id.Status));
        Assert.False(rl.IsBlocked);
    }

    [Fact]
    public void Request_larger_than_the_bucket_runs_then_blocks()
    {
        var rl = Start(new TokenBucketConfig(512, null, 100), null);
        var big = Submit(RequestIn, 0, 2048);
        var next = Submit(RequestIn, 4, 512);
        _dev.ProcessQueue(0);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(big.Status));
        Assert.True(rl.IsBlocked);
        Assert.Equal(0xff, _mem.Read<byte>(next.Status));
        // Debt: 1536 bytes at 512 per 100 ms = 300 ms.
        _clock.AdvanceMs(400);
        Thread.Sleep(350);
        _dev.EventSources[0].OnReady(1);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(next.Status));
    }

    [Fact]
    public void Malformed_requests_are_not_charged()
    {
        var rl = Start(null, new TokenBucketConfig(1, null, 1000));
        // No status descriptor: fails on its own without I/O, and costs nothing.
        ulong h = _driver.Alloc(16);
        _driver.Push((h, 16, false));
        var ok = Submit(RequestIn, 1, 512);
        _dev.ProcessQueue(0);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(ok.Status));
        Assert.Equal(1, _dev.Metrics.InvalidReqsCount);
    }

    [Fact]
    public void Patched_limits_apply_to_the_running_device()
    {
        var rl = Start(null, null);
        for (int i = 0; i < 3; i++) Submit(RequestIn, (ulong)i, 512);
        _dev.ProcessQueue(0);
        Assert.Equal(3, _driver.UsedIdx);
        rl.Update(null, new TokenBucketConfig(1, null, 1000));
        Submit(RequestIn, 0, 512);
        Submit(RequestIn, 0, 512);
        _dev.ProcessQueue(0);
        Assert.Equal(4, _driver.UsedIdx);
        rl.Update(null, new TokenBucketConfig(0, null, 0));
        FireTimer(rl);
        Assert.Equal(5, _driver.UsedIdx);
    }

    [Fact]
    public void Timer_after_reset_does_nothing()
    {
        var rl = Start(null, new TokenBucketConfig(1, null, 1000));
        Submit(RequestIn, 0, 512);
        Submit(RequestIn, 1, 512);
        _dev.ProcessQueue(0);
        _dev.Reset();
        _queue.Reset();
        FireTimer(rl);
        Assert.False(_dev.IsActivated);
        Assert.Equal(1, _dev.RateLimiterEventCount);
    }

    [Fact]
    public void Without_a_limiter_the_only_event_source_is_the_resume_event()
    {
        using var dev = new VirtioBlock(_path);
        Assert.Null(dev.RateLimiter);
        Assert.Single(dev.EventSources);
    }
}

using Flint.Devices.RateLimiting;
using Flint.Devices.Tests.Virtio;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Rng;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio.Rng;

public sealed class VirtioRngTests : IDisposable
{
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x200000UL)]);
    private readonly GuestDriver _driver;
    private readonly CountingInterrupt _line = new();
    private readonly VirtioInterrupt _irq;
    private readonly VirtQueue _queue = new(VirtioRng.QueueSize);
    private readonly FakeClock _clock = new();
    private VirtioRng _dev = null!;

    public VirtioRngTests()
    {
        _driver = new GuestDriver(_mem, 16);
        _irq = new VirtioInterrupt(_line);
    }

    private VirtioRng Start(RateLimiter? limiter = null)
    {
        _dev = new VirtioRng(limiter);
        _driver.Configure(_queue);
        Assert.True(_dev.Activate(_mem, [_queue], _irq, _dev.AvailableFeatures));
        return _dev;
    }

    public void Dispose()
    {
        _dev?.Dispose();
        _mem.Dispose();
    }

    private (uint Id, uint Len) Used(int n) => _driver.Used(n);

    [Fact]
    public void Identity_features_and_queue()
    {
        var d = Start();
        Assert.Equal(4u, d.DeviceType);
        Assert.Equal(VirtioFeatures.Version1, d.AvailableFeatures);
        Assert.Equal(new ushort[] { 256 }, d.QueueMaxSizes.ToArray());
        Span<byte> cfg = stackalloc byte[8];
        cfg.Fill(0xff);
        d.ReadConfig(0, cfg);
        Assert.All(cfg.ToArray(), b => Assert.Equal(0, b));
        d.WriteConfig(0, cfg);
        Assert.Empty(d.EventSources);
    }

    [Fact]
    public void Fills_writable_buffers_with_random_bytes()
    {
        var d = Start();
        ulong a = _driver.Alloc(64), b = _driver.Alloc(100);
        ushort head = _driver.Push((a, 64, true), (b, 100, true));
        d.ProcessQueue(0);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal((head, 164u), ((ushort)Used(0).Id, Used(0).Len));
        var first = _mem.GetSpan(a, 64).ToArray().Concat(_mem.GetSpan(b, 100).ToArray()).ToArray();
        Assert.True(first.Count(x => x == 0) < 20, "164 random bytes are not mostly zero");
        Assert.Equal(1, _line.Count);
        Assert.Equal(164, d.Metrics.EntropyBytes);
        Assert.Equal(1, d.Metrics.EntropyEventCount);

        ulong c = _driver.Alloc(64);
        _driver.Push((c, 64, true));
        d.ProcessQueue(0);
        Assert.Equal(64u, Used(1).Len);
        Assert.False(_mem.GetSpan(c, 64).SequenceEqual(first.AsSpan(0, 64)));
    }

    [Fact]
    public void Readable_buffers_get_nothing()
    {
        var d = Start();
        ulong a = _driver.Alloc(32, 0x5a), b = _driver.Alloc(32, 0x5a);
        _driver.Push((a, 32, false));
        _driver.Push((b, 32, true), (a, 32, false));
        d.ProcessQueue(0);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(0u, Used(0).Len);
        Assert.Equal(0u, Used(1).Len);
        Assert.All(_mem.GetSpan(a, 32).ToArray(), x => Assert.Equal(0x5a, x));
        Assert.All(_mem.GetSpan(b, 32).ToArray(), x => Assert.Equal(0x5a, x));
        Assert.Equal(2, d.Metrics.EntropyEventFails);
        Assert.Equal(0, d.Metrics.EntropyBytes);
    }

    [Fact]
    public void Empty_buffer_completes_with_zero()
    {
        var d = Start();
        _driver.Push((_driver.Alloc(0), 0, true));
        d.ProcessQueue(0);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal(0u, Used(0).Len);
    }

    [Fact]
    public void Broken_chains_complete_with_zero()
    {
        var d = Start();
        // Outside guest memory.
        _driver.Push((0x10_0000_0000, 64, true));
        // A loop.
        _driver.SetDesc(10, _driver.Alloc(8), 8, Descriptor.FlagWrite | Descriptor.FlagNext, 10);
        _driver.Publish(10);
        // Next index past the table.
        _driver.SetDesc(11, _driver.Alloc(8), 8, Descriptor.FlagWrite | Descriptor.FlagNext, 200);
        _driver.Publish(11);
        // Indirect flag.
        _driver.SetDesc(12, _driver.Alloc(16), 16, Descriptor.FlagIndirect, 0);
        _driver.Publish(12);
        d.ProcessQueue(0);
        Assert.Equal(4, _driver.UsedIdx);
        for (int i = 0; i < 4; i++) Assert.Equal(0u, Used(i).Len);
        Assert.Equal(4, d.Metrics.EntropyEventFails);
    }

    [Fact]
    public void Large_requests_are_capped()
    {
        var d = Start();
        ulong a = _driver.Alloc(200_000);
        _driver.Push((a, 200_000, true));
        d.ProcessQueue(0);
        Assert.Equal(VirtioRng.MaxBytesPerRequest, Used(0).Len);
    }

    [Fact]
    public void Ops_limit_throttles_and_the_timer_resumes()
    {
        var rl = new RateLimiter(null, new TokenBucketConfig(2, null, 1000), _clock);
        var d = Start(rl);
        Assert.Single(d.EventSources);
        for (int i = 0; i < 3; i++) _driver.Push((_driver.Alloc(16), 16, true));
        d.ProcessQueue(0);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(2, _queue.NextAvail); // the third is still on the ring
        Assert.Equal(1, d.Metrics.EntropyRateLimiterThrottled);
        Assert.True(rl.IsBlocked);
        Assert.Equal(1, _line.Count);

        // A doorbell while blocked does nothing.
        d.ProcessQueue(0);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(1, d.Metrics.RateLimiterEventCount);

        _clock.AdvanceMs(500); // one op earned
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        d.EventSources[0].OnReady(1);
        Assert.Equal(3, _driver.UsedIdx);
        Assert.Equal(16u, Used(2).Len);
        Assert.Equal(2, _line.Count);
        Assert.Equal(2, d.Metrics.RateLimiterEventCount);
        Assert.Equal(48, d.Metrics.EntropyBytes);
    }

    [Fact]
    public void Bandwidth_limit_counts_bytes()
    {
        var rl = new RateLimiter(new TokenBucketConfig(100, null, 1000), null, _clock);
        var d = Start(rl);
        _driver.Push((_driver.Alloc(64), 64, true));
        _driver.Push((_driver.Alloc(64), 64, true));
        d.ProcessQueue(0);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal(1, d.Metrics.EntropyRateLimiterThrottled);
        _clock.AdvanceMs(280); // 36 + 28 = 64 bytes
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        d.EventSources[0].OnReady(1);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(64u, Used(1).Len);
    }

    [Fact]
    public void Timer_after_reset_touches_nothing()
    {
        var rl = new RateLimiter(null, new TokenBucketConfig(1, null, 1000), _clock);
        var d = Start(rl);
        _driver.Push((_driver.Alloc(16), 16, true));
        _driver.Push((_driver.Alloc(16), 16, true));
        d.ProcessQueue(0);
        Assert.True(rl.IsBlocked);
        d.Reset();
        _queue.Reset();
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        d.EventSources[0].OnReady(1);
        Assert.False(d.IsActivated);
    }

    [Fact]
    public void Wrong_queue_or_inactive_is_counted_not_thrown()
    {
        var d = new VirtioRng();
        _dev = d;
        d.ProcessQueue(0);
        Start().ProcessQueue(3);
        Assert.Equal(1, _dev.Metrics.EntropyEventFails);
    }

    [Fact]
    public void Random_rings_never_throw()
    {
        var d = Start();
        var rnd = new Random(7);
        var junk = new byte[16 * 16];
        for (int round = 0; round < 300; round++)
        {
            rnd.NextBytes(junk);
            // Keep addresses mostly inside memory so some chains are valid.
            for (int i = 0; i < 16; i++)
            {
                if (rnd.Next(3) > 0) BitConverter.TryWriteBytes(junk.AsSpan(i * 16, 8), (ulong)rnd.Next(0x10000, 0x1f0000));
                if (rnd.Next(3) > 0) BitConverter.TryWriteBytes(junk.AsSpan(i * 16 + 8, 4), (uint)rnd.Next(0, 4096));
            }
            _mem.Write(GuestDriver.DescBase, junk);
            int n = rnd.Next(1, 5);
            for (int i = 0; i < n; i++) _driver.Publish((ushort)rnd.Next(0, 20));
            d.ProcessQueue(0);
        }
        Assert.True(_driver.UsedIdx > 0);
    }

    [Fact]
    public void Request_path_does_not_allocate()
    {
        var d = Start(new RateLimiter(new TokenBucketConfig(1UL << 40, null, 1000), new TokenBucketConfig(1UL << 40, null, 1000), _clock));
        ulong buf = _driver.Alloc(64);
        long allocated = 0;
        for (int i = 0; i < 200; i++)
        {
            _driver.Push((buf, 64, true));
            long before = GC.GetAllocatedBytesForCurrentThread();
            d.ProcessQueue(0);
            if (i >= 10) allocated += GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.Equal(200, _driver.UsedIdx);
        Assert.Equal(0, allocated);
    }
}

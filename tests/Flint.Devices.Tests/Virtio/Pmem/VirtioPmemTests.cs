using System.Buffers.Binary;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Pmem;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio.Pmem;

/// <summary>virtio-pmem's flush queue, driven with the guest-side <see cref="GuestDriver"/>, over a fake or a real backing.</summary>
public sealed class VirtioPmemTests : IDisposable
{
    private const ulong Start = 512UL << 30;
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x200000UL)]);
    private readonly GuestDriver _driver;
    private readonly CountingInterrupt _line = new();
    private readonly VirtioInterrupt _irq;
    private readonly VirtQueue _queue = new(VirtioPmem.QueueSize);
    private readonly FakeClock _clock = new();
    private readonly FakeBacking _backing = new();
    private VirtioPmem _dev = null!;

    public VirtioPmemTests()
    {
        _driver = new GuestDriver(_mem, 16);
        _irq = new VirtioInterrupt(_line);
    }

    public void Dispose()
    {
        _dev?.Dispose();
        _mem.Dispose();
    }

    private sealed class FakeBacking : IPmemBacking
    {
        public ulong FileLength { get; set; } = 3UL << 20;
        public int Errno;
        public int Flushes;
        public int Flush() { Flushes++; return Errno; }
    }

    private VirtioPmem Activate(RateLimiter? limiter = null, IPmemBacking? backing = null, ulong window = 4UL << 20)
    {
        _dev = new VirtioPmem("pmem0", backing ?? _backing, Start, window, limiter);
        _driver.Configure(_queue);
        Assert.True(_dev.Activate(_mem, [_queue], _irq, _dev.AvailableFeatures));
        return _dev;
    }

    /// <summary>A well-formed flush: 4-byte request type (device-readable), 4-byte status (device-writable, preset 0x69).</summary>
    private (ushort Head, ulong Status) PushFlush(uint type = VirtioPmem.RequestFlush)
    {
        ulong req = _driver.Alloc(4), status = _driver.Alloc(4);
        _mem.Write(req, type);
        _mem.Write(status, 0x69u);
        return (_driver.Push((req, 4, false), (status, 4, true)), status);
    }

    [Fact]
    public void Identity_and_config_space()
    {
        var d = Activate();
        Assert.Equal(27u, d.DeviceType);
        Assert.Equal(VirtioFeatures.Version1, d.AvailableFeatures);
        Assert.Equal(new ushort[] { 256 }, d.QueueMaxSizes.ToArray());
        Span<byte> cfg = stackalloc byte[24];
        cfg.Fill(0xee);
        d.ReadConfig(0, cfg);
        Assert.Equal(Start, BinaryPrimitives.ReadUInt64LittleEndian(cfg));
        Assert.Equal(4UL << 20, BinaryPrimitives.ReadUInt64LittleEndian(cfg[8..]));
        Assert.All(cfg[16..].ToArray(), b => Assert.Equal(0, b));
        // The driver reads size alone (offset 8, 4 bytes at a time on MMIO).
        Span<byte> hi = stackalloc byte[4];
        d.ReadConfig(12, hi);
        Assert.Equal((uint)((4UL << 20) >> 32), BinaryPrimitives.ReadUInt32LittleEndian(hi));
        // Read-only: a write is counted and changes nothing.
        d.WriteConfig(0, [1, 2, 3, 4]);
        d.ReadConfig(0, cfg);
        Assert.Equal(Start, BinaryPrimitives.ReadUInt64LittleEndian(cfg));
        Assert.Equal(1, d.Metrics.CfgFails);
    }

    [Fact]
    public void Flush_answers_success_with_one_msync()
    {
        var d = Activate();
        var (head, status) = PushFlush();
        d.ProcessQueue(0);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal((head, 4u), ((ushort)_driver.Used(0).Id, _driver.Used(0).Len));
        Assert.Equal(0, _mem.Read<int>(status));
        Assert.Equal(1, _backing.Flushes);
        Assert.Equal(1, _line.Count);
        Assert.Equal(1, d.Metrics.QueueEventCount);
        Assert.Equal(0, d.Metrics.EventFails);
    }

    [Fact]
    public void Flushes_of_one_notification_share_one_msync()
    {
        var d = Activate();
        var statuses = Enumerable.Range(0, 5).Select(_ => PushFlush().Status).ToArray();
        d.ProcessQueue(0);
        Assert.Equal(5, _driver.UsedIdx);
        Assert.Equal(1, _backing.Flushes);
        Assert.All(statuses, s => Assert.Equal(0, _mem.Read<int>(s)));
        Assert.Equal(1, _line.Count); // one interrupt for the batch
        PushFlush();
        d.ProcessQueue(0);
        Assert.Equal(2, _backing.Flushes); // the next notification syncs again
    }

    [Fact]
    public void Failed_msync_answers_minus_one_to_every_request_of_the_batch()
    {
        _backing.Errno = 5;
        var d = Activate();
        var a = PushFlush().Status;
        var b = PushFlush().Status;
        d.ProcessQueue(0);
        Assert.Equal(-1, _mem.Read<int>(a));
        Assert.Equal(-1, _mem.Read<int>(b));
        Assert.Equal(4u, _driver.Used(0).Len);
        Assert.Equal(1, _backing.Flushes);
    }

    public static TheoryData<string> Malformed => ["write-only head", "head of 8 bytes", "unknown type", "no status", "read-only status", "status of 2 bytes", "broken chain"];

    [Theory, MemberData(nameof(Malformed))]
    public void Malformed_requests_get_no_status_and_no_msync(string how)
    {
        var d = Activate();
        ulong req = _driver.Alloc(8), status = _driver.Alloc(4);
        _mem.Write(req, how == "unknown type" ? 0x69u : 0u);
        _mem.Write(status, 0x69u);
        ushort head = how switch
        {
            "write-only head" => _driver.Push((req, 4, true), (status, 4, true)),
            "head of 8 bytes" => _driver.Push((req, 8, false), (status, 4, true)),
            "no status" => _driver.Push((req, 4, false)),
            "read-only status" => _driver.Push((req, 4, false), (status, 4, false)),
            "status of 2 bytes" => _driver.Push((req, 4, false), (status, 2, true)),
            "broken chain" => _driver.Push((req, 4, false), (0x7fff_0000, 4, true)), // status outside guest memory
            _ => _driver.Push((req, 4, false), (status, 4, true)),
        };
        // A good request after it is still served: one bad chain costs one request.
        var good = PushFlush().Status;
        d.ProcessQueue(0);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal((head, 0u), ((ushort)_driver.Used(0).Id, _driver.Used(0).Len));
        Assert.Equal(0x69u, _mem.Read<uint>(status));
        Assert.Equal(0, _mem.Read<int>(good));
        Assert.Equal(1, d.Metrics.EventFails);
        Assert.Equal(1, _backing.Flushes);
    }

    [Fact]
    public void Wrong_queue_or_inactive_is_counted_not_thrown()
    {
        using (var inactive = new VirtioPmem("pmem0", _backing, Start, 2UL << 20))
        {
            inactive.ProcessQueue(0);
            Assert.Equal(1, inactive.Metrics.EventFails);
        }
        var d = Activate();
        d.ProcessQueue(3);
        Assert.Equal(1, d.Metrics.EventFails);
        Assert.Equal(0, _backing.Flushes);
    }

    [Fact]
    public void Ops_limit_counts_one_op_per_notification_not_per_request()
    {
        var rl = new RateLimiter(null, new TokenBucketConfig(1, null, 1000), _clock);
        var d = Activate(rl);
        PushFlush(); PushFlush(); PushFlush();
        d.ProcessQueue(0);
        Assert.Equal(3, _driver.UsedIdx); // three requests, one op
        PushFlush();
        d.ProcessQueue(0);
        Assert.Equal(3, _driver.UsedIdx); // throttled: left on the ring
        Assert.Equal(3, _queue.NextAvail);
        Assert.Equal(1, d.Metrics.RateLimiterThrottledEvents);
        Assert.True(rl.IsBlocked);
        d.ProcessQueue(0); // a doorbell while blocked does nothing
        Assert.Equal(2, d.Metrics.RateLimiterThrottledEvents);
        Assert.Equal(1, _backing.Flushes);

        _clock.AdvanceMs(1000);
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        d.EventSources[0].OnReady(1);
        Assert.Equal(4, _driver.UsedIdx);
        Assert.Equal(2, _backing.Flushes);
        Assert.Equal(1, d.Metrics.RateLimiterEventCount);
    }

    [Fact]
    public void Bandwidth_is_charged_the_whole_file_size_per_flush()
    {
        // Room for exactly one flush of the 3 MiB file per second (docs/pmem.md's example, scaled).
        var rl = new RateLimiter(new TokenBucketConfig(3UL << 20, null, 1000), null, _clock);
        var d = Activate(rl);
        PushFlush();
        d.ProcessQueue(0);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal(0UL, rl.BucketState(TokenType.Bytes)!.Value.Budget);
        PushFlush();
        d.ProcessQueue(0);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal(1, d.Metrics.RateLimiterThrottledEvents);
        _clock.AdvanceMs(500); // half a file: still not enough
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        d.EventSources[0].OnReady(1);
        Assert.Equal(1, _driver.UsedIdx);
        _clock.AdvanceMs(500);
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        d.EventSources[0].OnReady(1);
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(2, _backing.Flushes);
    }

    /// <summary>The flush path is a hot path: serving a request (limiter charge included) allocates nothing.</summary>
    [Fact]
    public void Serving_a_flush_does_not_allocate()
    {
        var rl = new RateLimiter(new TokenBucketConfig(1UL << 40, null, 1000), new TokenBucketConfig(1UL << 40, null, 1000), _clock);
        var d = Activate(rl);
        ulong req = _driver.Alloc(4), status = _driver.Alloc(4);
        _mem.Write(req, 0u);
        long allocated = 0;
        for (int i = 0; i < 40; i++)
        {
            _driver.Push((req, 4, false), (status, 4, true));
            long before = GC.GetAllocatedBytesForCurrentThread();
            d.ProcessQueue(0);
            if (i >= 10) allocated += GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.Equal(40, _driver.UsedIdx);
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void An_empty_queue_charges_nothing()
    {
        var rl = new RateLimiter(null, new TokenBucketConfig(1, null, 1000), _clock);
        var d = Activate(rl);
        d.ProcessQueue(0);
        d.ProcessQueue(0);
        Assert.Equal(1UL, rl.BucketState(TokenType.Ops)!.Value.Budget);
        Assert.Equal(0, _backing.Flushes);
    }

    /// <summary>The device half of "a guest write reaches the file": stores into the real MAP_SHARED window, then a
    /// guest flush request, then the file read back through the file system.</summary>
    [Fact]
    public void Guest_write_through_the_window_reaches_the_file_after_a_flush()
    {
        string path = Path.Combine(Path.GetTempPath(), $"flint-pmem-{Guid.NewGuid():N}");
        try
        {
            const int fileLength = (3 << 20) + 4096; // not 2 MiB aligned: the window is padded to 4 MiB
            File.WriteAllBytes(path, new byte[fileLength]);
            using var mapping = PmemMapping.Open(path, readOnly: false);
            Assert.Equal((ulong)fileLength, mapping.FileLength);
            Assert.Equal(4UL << 20, mapping.WindowLength);
            var d = Activate(backing: mapping, window: mapping.WindowLength);

            byte[] data = "FLINT-PMEM-WRITE"u8.ToArray();
            Assert.True(mapping.Write(0x1000, data));
            Assert.True(mapping.Write((ulong)fileLength - (ulong)data.Length, data)); // the file's last bytes
            Assert.True(mapping.Write((ulong)fileLength + 16, data)); // padding: anonymous, never the file
            var status = PushFlush().Status;
            d.ProcessQueue(0);
            Assert.Equal(0, _mem.Read<int>(status));

            byte[] file = File.ReadAllBytes(path);
            Assert.Equal(fileLength, file.Length); // the padding did not grow the file
            Assert.Equal(data, file.AsSpan(0x1000, data.Length).ToArray());
            Assert.Equal(data, file.AsSpan(fileLength - data.Length).ToArray());
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Read_only_mapping_refuses_writes_and_its_MMIO_window_discards_them()
    {
        string path = Path.Combine(Path.GetTempPath(), $"flint-pmem-{Guid.NewGuid():N}");
        try
        {
            byte[] content = new byte[2 << 20];
            content[10] = 0x5a;
            File.WriteAllBytes(path, content);
            using var mapping = PmemMapping.Open(path, readOnly: true);
            Assert.Equal(2UL << 20, mapping.WindowLength); // already aligned: no padding
            Assert.False(mapping.Write(0, [1]));
            var window = new PmemReadOnlyWindow("pmem0", mapping);
            window.Write(10, [0xff, 0xff]);
            Assert.Equal(1, window.DiscardedWrites);
            Span<byte> b = stackalloc byte[1];
            window.Read(10, b);
            Assert.Equal(0x5a, b[0]);
            Assert.Equal(0x5a, File.ReadAllBytes(path)[10]);
            Assert.Equal(0, mapping.Flush()); // msync of a read-only shared mapping is fine
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Mapping_errors_are_Firecrackers()
    {
        var e = Assert.Throws<Flint.Sys.SysException>(() => PmemMapping.Open("/nonexistent/flint-pmem", false));
        Assert.Equal(2, e.Errno);
        string path = Path.Combine(Path.GetTempPath(), $"flint-pmem-{Guid.NewGuid():N}");
        try
        {
            File.WriteAllBytes(path, []);
            var z = Assert.Throws<PmemBackingEmptyException>(() => PmemMapping.Open(path, false));
            Assert.Equal("Error backing file size is 0", z.Message);
        }
        finally { File.Delete(path); }
        Assert.Equal(2UL << 20, PmemMapping.WindowFor(1));
        Assert.Equal(2UL << 20, PmemMapping.WindowFor(2UL << 20));
        Assert.Equal(4UL << 20, PmemMapping.WindowFor((2UL << 20) + 1));
    }
}

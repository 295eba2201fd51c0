using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Memory;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// What only the Async (io_uring) engine has: many requests in flight at once, completions in another order than
/// submissions, a full ring leaving requests on the queue (never dropped), a reset or Dispose with requests in
/// flight, and the rate limiter in front of it. The shared cases run in <see cref="VirtioBlockAsyncTests"/>.
/// </summary>
public sealed class BlockAsyncEngineTests : IDisposable
{
    private const int Sectors = 256;
    private readonly string _path = Path.GetTempFileName();
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x400000UL)]);
    private readonly GuestDriver _driver;
    private readonly CountingInterrupt _line = new();
    private readonly VirtQueue _queue = new(VirtioBlock.QueueSize);
    private VirtioBlock _dev = null!;

    public BlockAsyncEngineTests()
    {
        var content = new byte[Sectors * 512];
        for (int s = 0; s < Sectors; s++) content.AsSpan(s * 512, 512).Fill((byte)(s + 1));
        File.WriteAllBytes(_path, content);
        _driver = new GuestDriver(_mem, 256);
    }

    public void Dispose()
    {
        _dev?.Dispose();
        _mem.Dispose();
        File.Delete(_path);
    }

    private VirtioBlock Start(uint ringEntries = AsyncBlockEngine.RingEntries, RateLimiter? rl = null, bool writeback = false)
    {
        _dev = new VirtioBlock(_path, false, null, rl, writeback, BlockIoEngine.Async, ringEntries);
        _driver.Configure(_queue);
        Assert.True(_dev.Activate(_mem, [_queue], new VirtioInterrupt(_line), _dev.AvailableFeatures & ~VirtioFeatures.RingEventIdx));
        return _dev;
    }

    /// <summary>A two-descriptor read (header; data and status in one writable buffer), so 128 fit a 256-entry queue.</summary>
    private (ushort Head, ulong Data, ulong Status) PushRead(ulong sector, uint sectors = 1)
    {
        ulong h = _driver.Alloc(16);
        _mem.Write(h, RequestIn);
        _mem.Write(h + 8, sector);
        uint len = sectors * 512;
        ulong d = _driver.Alloc(len + 1, 0xee);
        _mem.Write(d + len, (byte)0xff);
        ushort head = _driver.Push((h, 16, false), (d, len + 1, true));
        return (head, d, d + len);
    }

    private Dictionary<ushort, uint> UsedEntries()
    {
        var used = new Dictionary<ushort, uint>();
        for (ushort i = 0; i < _driver.UsedIdx; i++)
        {
            var (id, len) = _driver.Used(i);
            Assert.True(used.TryAdd((ushort)id, len), $"head {id} completed twice");
        }
        return used;
    }

    [Fact]
    public void Many_requests_in_flight_at_once()
    {
        Start();
        var reqs = Enumerable.Range(0, 100).Select(i => PushRead((ulong)(i * 2 % Sectors))).ToArray();
        _dev.ProcessQueue(0);
        // All submitted in one pass and none completed to the guest yet: completions wait for the eventfd.
        Assert.Equal(100, _dev.InFlight);
        Assert.Equal(0, _driver.UsedIdx);
        Assert.Equal(0, _dev.Metrics.NoAvailBuffer);
        Assert.True(_dev.CompleteInFlight(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, _dev.InFlight);
        Assert.Equal(100, _driver.UsedIdx);
        var used = UsedEntries();
        for (int i = 0; i < reqs.Length; i++)
        {
            Assert.Equal(513u, used[reqs[i].Head]);
            Assert.Equal(StatusOk, _mem.Read<byte>(reqs[i].Status));
            Assert.Equal((byte)(i * 2 % Sectors + 1), _mem.Read<byte>(reqs[i].Data + 511));
        }
        Assert.Equal(100, _dev.Metrics.ReadCount);
        Assert.Equal(100 * 512, _dev.Metrics.ReadBytes);
    }

    [Fact]
    public void Completion_event_from_the_event_loop_completes_to_the_guest()
    {
        Start();
        var r = PushRead(7);
        _dev.ProcessQueue(0);
        // The event loop's path: the completion eventfd is one of the device's sources.
        var completion = _dev.EventSources[^1];
        var until = DateTime.UtcNow.AddSeconds(10);
        while (_driver.UsedIdx == 0 && DateTime.UtcNow < until)
        {
            Thread.Sleep(1);
            completion.OnReady(1);
        }
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(r.Status));
        Assert.Equal(8, _mem.Read<byte>(r.Data));
        Assert.Equal(1, _line.Count);
    }

    [Fact]
    public void Completions_in_another_order_than_submissions_each_reach_their_own_request()
    {
        // A FLUSH first (fdatasync: the kernel runs it on a worker), then reads served from the page cache at once:
        // the reads usually complete before the flush. Whatever the order, each used entry must carry its own
        // request's head, length and status.
        Start(writeback: true);
        ulong fh = _driver.Alloc(16);
        _mem.Write(fh, RequestFlush);
        ulong fst = _driver.Alloc(1, 0xff);
        ushort flushHead = _driver.Push((fh, 16, false), (fst, 1, true));
        var reads = Enumerable.Range(1, 20).Select(i => PushRead((ulong)i, (uint)(i % 4 + 1))).ToArray();
        _dev.ProcessQueue(0);
        Assert.True(_dev.CompleteInFlight(TimeSpan.FromSeconds(10)));
        var used = UsedEntries();
        Assert.Equal(21, used.Count);
        Assert.Equal(1u, used[flushHead]);
        Assert.Equal(StatusOk, _mem.Read<byte>(fst));
        for (int i = 0; i < reads.Length; i++)
        {
            uint n = (uint)((i + 1) % 4 + 1);
            Assert.Equal(n * 512 + 1, used[reads[i].Head]);
            Assert.Equal(StatusOk, _mem.Read<byte>(reads[i].Status));
            Assert.Equal((byte)(i + 1 + n), _mem.Read<byte>(reads[i].Data + n * 512 - 1)); // last sector read
        }
        Assert.Equal(1, _dev.Metrics.FlushCount);
    }

    [Fact]
    public void Full_ring_leaves_requests_on_the_queue_until_completions_free_slots()
    {
        Start(ringEntries: 4);
        var reqs = Enumerable.Range(0, 30).Select(i => PushRead((ulong)i)).ToArray();
        _dev.ProcessQueue(0);
        Assert.Equal(4, _dev.InFlight);
        Assert.Equal(4, _queue.NextAvail); // the fifth was popped and put back
        // A doorbell while the engine is full is counted (Firecracker's io_engine_throttled_events) and serves nothing.
        _dev.ProcessQueue(0);
        Assert.Equal(1, _dev.IoEngineThrottledEvents);
        Assert.Equal(4, _dev.InFlight);
        Assert.True(_dev.CompleteInFlight(TimeSpan.FromSeconds(10)));
        Assert.Equal(30, _driver.UsedIdx);
        var used = UsedEntries();
        for (int i = 0; i < reqs.Length; i++)
        {
            Assert.Equal(513u, used[reqs[i].Head]);
            Assert.Equal(StatusOk, _mem.Read<byte>(reqs[i].Status));
            Assert.Equal((byte)(i + 1), _mem.Read<byte>(reqs[i].Data));
        }
        Assert.Equal(0, _dev.Metrics.NoAvailBuffer);
    }

    [Fact]
    public void Reset_with_requests_in_flight_waits_and_writes_nothing_afterwards()
    {
        Start();
        var reqs = Enumerable.Range(0, 50).Select(i => PushRead((ulong)i, 4)).ToArray();
        _dev.ProcessQueue(0);
        Assert.Equal(50, _dev.InFlight);
        _dev.Reset();
        // The kernel is done with every buffer, and nothing was completed into the reset queue.
        Assert.Equal(0, _dev.InFlight);
        Assert.Equal(0, _driver.UsedIdx);
        Assert.All(reqs, r => Assert.Equal(0xff, _mem.Read<byte>(r.Status)));
        // A late completion event finds nothing to do.
        _dev.EventSources[^1].OnReady(1);
        Assert.Equal(0, _driver.UsedIdx);

        // The device works again after a new activation.
        var driver = new GuestDriver(_mem, 16, 0x8000, 0x9000, 0xa000);
        var q = new VirtQueue(VirtioBlock.QueueSize);
        driver.Configure(q);
        Assert.True(_dev.Activate(_mem, [q], new VirtioInterrupt(_line), _dev.AvailableFeatures & ~VirtioFeatures.RingEventIdx));
        ulong h = driver.Alloc(16);
        _mem.Write(h, RequestIn);
        _mem.Write(h + 8, 9UL);
        ulong d = driver.Alloc(513, 0xee);
        driver.Push((h, 16, false), (d, 513, true));
        _dev.ProcessQueue(0);
        Assert.True(_dev.CompleteInFlight(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, driver.UsedIdx);
        Assert.Equal(10, _mem.Read<byte>(d));
        Assert.Equal(StatusOk, _mem.Read<byte>(d + 512));
    }

    [Fact]
    public void Dispose_with_requests_in_flight_drains_first()
    {
        var dev = Start();
        for (int i = 0; i < 40; i++) PushRead((ulong)i, 8);
        dev.ProcessQueue(0);
        Assert.Equal(40, dev.InFlight);
        dev.Dispose();
        _dev = null!;
        Assert.Equal(0, _driver.UsedIdx);
    }

    [Fact]
    public void Rate_limiter_still_decides_what_is_submitted()
    {
        var clock = new FakeClock();
        var rl = new RateLimiter(null, new TokenBucketConfig(2, null, 1000), clock);
        Start(rl: rl);
        var reqs = Enumerable.Range(0, 3).Select(i => PushRead((ulong)i)).ToArray();
        _dev.ProcessQueue(0);
        Assert.Equal(2, _dev.InFlight);
        Assert.Equal(1, _dev.RateLimiterThrottledEvents);
        Assert.True(_dev.CompleteInFlight(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, _driver.UsedIdx);
        Assert.Equal(0xff, _mem.Read<byte>(reqs[2].Status));
        clock.AdvanceMs(500);
        Thread.Sleep(RateLimiter.RefillTimerIntervalMs + 50);
        _dev.EventSources[0].OnReady(1); // the limiter's timer
        Assert.True(_dev.CompleteInFlight(TimeSpan.FromSeconds(10)));
        Assert.Equal(3, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(reqs[2].Status));
        Assert.Equal(3, _mem.Read<byte>(reqs[2].Data));
    }

    [Fact]
    public void Short_read_of_a_shrunken_file_is_IOERR()
    {
        Start();
        File.WriteAllBytes(_path, new byte[512]); // the disk keeps its size; the file behind it shrank
        var r = PushRead(10);
        _dev.ProcessQueue(0);
        Assert.True(_dev.CompleteInFlight(TimeSpan.FromSeconds(10)));
        Assert.Equal(StatusIoErr, _mem.Read<byte>(r.Status));
        Assert.Equal(1u, UsedEntries()[r.Head]);
        Assert.Equal(1, _dev.Metrics.ExecuteFails);
    }

    [Fact]
    public void Update_backing_file_with_requests_in_flight_completes_them_on_the_old_file()
    {
        Start();
        var r = PushRead(5);
        _dev.ProcessQueue(0);
        string other = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(other, Enumerable.Repeat((byte)0x5a, 64 * 512).ToArray());
            _dev.UpdateBackingFile(other);
            Assert.Equal(1, _driver.UsedIdx);
            Assert.Equal(6, _mem.Read<byte>(r.Data)); // the old file's sector 5
            var r2 = PushRead(5);
            _dev.ProcessQueue(0);
            Assert.True(_dev.CompleteInFlight(TimeSpan.FromSeconds(10)));
            Assert.Equal(0x5a, _mem.Read<byte>(r2.Data));
        }
        finally { File.Delete(other); }
    }
}

using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Memory;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// virtio-blk reads a request out of guest memory once and charges and executes that copy. Each test rewrites the
/// descriptor table or the header between the charge and the execution (through <see cref="RacingClock"/>) and
/// checks the device did what it charged for, not what the guest wrote afterwards.
/// </summary>
public sealed class BlockParseOnceTests : IDisposable
{
    private const int Sectors = 64;
    private readonly string _path = System.IO.Path.GetTempFileName();
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
    private readonly GuestDriver _driver;
    private readonly VirtQueue _queue = new(VirtioBlock.QueueSize);
    private readonly RacingClock _clock = new();
    private readonly VirtioBlock _dev;

    public BlockParseOnceTests()
    {
        var content = new byte[Sectors * 512];
        for (int s = 0; s < Sectors; s++) content.AsSpan(s * 512, 512).Fill((byte)(s + 1));
        File.WriteAllBytes(_path, content);
        _driver = new GuestDriver(_mem, 16);
        // A bandwidth bucket of 4 KiB that does not refill within the test (a request may move at most that), and
        // an ops bucket, so that every request (a flush too) reads the clock while it is charged.
        var rl = new RateLimiter(new TokenBucketConfig(4096, null, 1_000_000), new TokenBucketConfig(100, null, 1_000_000), _clock);
        _dev = new VirtioBlock(_path, rateLimiter: rl);
        _driver.Configure(_queue);
        Assert.True(_dev.Activate(_mem, [_queue], new VirtioInterrupt(new CountingInterrupt()),
            _dev.AvailableFeatures & ~VirtioFeatures.RingEventIdx));
    }

    public void Dispose()
    {
        _dev.Dispose();
        _mem.Dispose();
        File.Delete(_path);
    }

    private ulong DescLenAddr(int index) => _driver.Desc + 16UL * (uint)index + 8;

    [Fact]
    public void Data_descriptor_grown_after_the_charge_is_not_read()
    {
        ulong h = _driver.Alloc(16);
        _mem.Write(h, RequestIn);
        _mem.Write(h + 8, 0UL);
        ulong data = _driver.Alloc(Sectors * 512, 0xee);
        ulong st = _driver.Alloc(1, 0xff);
        _driver.Push((h, 16, false), (data, 512, true), (st, 1, true)); // descriptors 0, 1, 2
        // Charged for 512 bytes; then the "other vCPU" grows the data buffer to the whole disk (64x the bucket).
        _clock.Arm(() => _mem.Write(DescLenAddr(1), (uint)(Sectors * 512)));

        _dev.ProcessQueue(0);

        Assert.Equal(1, _clock.Fired);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(st));
        Assert.Equal(513u, _driver.Used(0).Len);
        Assert.Equal(512, _dev.Metrics.ReadBytes);
        Assert.Equal(1, _mem.Read<byte>(data + 511)); // sector 0
        Assert.Equal(0xee, _mem.Read<byte>(data + 512)); // nothing past what was charged
    }

    [Fact]
    public void Flush_turned_into_write_after_the_charge_stays_a_flush()
    {
        ulong h = _driver.Alloc(16);
        _mem.Write(h, RequestFlush);
        _mem.Write(h + 8, 0UL);
        ulong st = _driver.Alloc(1, 0xff);
        _driver.Push((h, 16, false), (st, 1, true)); // descriptors 0, 1
        ulong data = _driver.Alloc(Sectors * 512, 0x5a);
        // Charged as a flush (no bytes); then the header says OUT and the chain carries the whole disk's worth.
        _clock.Arm(() =>
        {
            _mem.Write(h, RequestOut);
            _driver.SetDesc(0, h, 16, Descriptor.FlagNext, 2);
            _driver.SetDesc(2, data, Sectors * 512, Descriptor.FlagNext, 1);
        });

        _dev.ProcessQueue(0);

        Assert.Equal(1, _clock.Fired);
        Assert.Equal(1, _driver.UsedIdx);
        Assert.Equal(StatusOk, _mem.Read<byte>(st));
        Assert.Equal(0, _dev.Metrics.WriteCount);
        Assert.Equal(1, File.ReadAllBytes(_path)[0]); // the disk is untouched
    }
}

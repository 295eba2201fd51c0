using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Tests.Virtio;

/// <summary>virtio-blk on the Sync engine; <see cref="VirtioBlockAsyncTests"/> runs every case again on io_uring.</summary>
public class VirtioBlockTests : IDisposable
{
    private readonly BlockHarness _h;

    protected BlockIoEngine Engine { get; }

    public VirtioBlockTests() : this(BlockIoEngine.Sync) { }

    protected VirtioBlockTests(BlockIoEngine engine)
    {
        Engine = engine;
        _h = new BlockHarness(engine: engine);
    }

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Identity_features_and_config()
    {
        Assert.Equal(2u, _h.Device.DeviceType);
        ulong f = _h.Device.AvailableFeatures;
        Assert.NotEqual(0UL, f & VirtioFeatures.Version1);
        Assert.Equal(0UL, f & (1UL << FeatureFlush));   // cache_type Unsafe (the default): no FLUSH, as Firecracker
        Assert.Equal(0UL, f & (1UL << FeatureReadOnly));
        Assert.Equal(new ushort[] { 256 }, _h.Device.QueueMaxSizes.ToArray());
        Span<byte> cfg = stackalloc byte[8];
        _h.Device.ReadConfig(0, cfg);
        Assert.Equal((ulong)BlockHarness.Sectors, BitConverter.ToUInt64(cfg));
        Span<byte> four = stackalloc byte[4];
        _h.Device.ReadConfig(4, four); // a driver may read the u64 as two u32s
        Assert.Equal(0u, BitConverter.ToUInt32(four));
        _h.Device.ReadConfig(12, four);
        Assert.Equal(254u, BitConverter.ToUInt32(four));
        _h.Device.ReadConfig(0x200, four);
        Assert.Equal(0u, BitConverter.ToUInt32(four));
    }

    [Fact]
    public void Config_writes_are_ignored_and_counted()
    {
        _h.Device.WriteConfig(0, new byte[8]);
        Assert.Equal(1, _h.Device.Metrics.CfgFails);
        Assert.Equal((ulong)BlockHarness.Sectors, _h.Device.CapacitySectors);
    }

    [Fact]
    public void Reads_scattered_across_buffers()
    {
        ulong a = _h.Driver.Alloc(512), b = _h.Driver.Alloc(1024);
        var (s, len) = _h.Run(RequestIn, 5, (a, 512, true), (b, 1024, true));
        Assert.Equal(StatusOk, s);
        Assert.Equal(1537u, len);
        Assert.All(_h.Memory.GetSpan(a, 512).ToArray(), x => Assert.Equal(6, x));
        Assert.All(_h.Memory.GetSpan(b, 512).ToArray(), x => Assert.Equal(7, x));
        Assert.All(_h.Memory.GetSpan(b + 512, 512).ToArray(), x => Assert.Equal(8, x));
        Assert.Equal(1, _h.Device.Metrics.ReadCount);
        Assert.Equal(1536, _h.Device.Metrics.ReadBytes);
        Assert.Equal(1, _h.Line.Count);
        Assert.Equal(VirtioInterrupt.UsedBuffer, _h.Interrupt.Status);
    }

    [Fact]
    public void Write_then_read_back()
    {
        ulong w = _h.Driver.Alloc(1024, 0xab);
        var (s, len) = _h.Run(RequestOut, 10, (w, 1024, false));
        Assert.Equal(StatusOk, s);
        Assert.Equal(1u, len);
        var file = File.ReadAllBytes(_h.FilePath);
        Assert.All(file.AsSpan(10 * 512, 1024).ToArray(), x => Assert.Equal(0xab, x));
        Assert.Equal(13, file[12 * 512]); // the next sector is untouched (sector s holds s + 1)
        ulong r = _h.Driver.Alloc(1024);
        Assert.Equal(StatusOk, _h.Run(RequestIn, 10, (r, 1024, true)).Status);
        Assert.All(_h.Memory.GetSpan(r, 1024).ToArray(), x => Assert.Equal(0xab, x));
        Assert.Equal(1, _h.Device.Metrics.WriteCount);
        Assert.Equal(1024, _h.Device.Metrics.WriteBytes);
    }

    [Fact]
    public void Last_sector_is_reachable()
    {
        ulong r = _h.Driver.Alloc(512);
        Assert.Equal(StatusOk, _h.Run(RequestIn, BlockHarness.Sectors - 1, (r, 512, true)).Status);
        Assert.Equal((byte)BlockHarness.Sectors, _h.Memory.Read<byte>(r));
    }

    [Fact]
    public void Flush_with_writeback_is_offered_and_syncs()
    {
        using var h = new BlockHarness(writeback: true, engine: Engine);
        Assert.NotEqual(0UL, h.Device.AvailableFeatures & (1UL << FeatureFlush));
        var (s, len) = h.Run(RequestFlush, 0);
        Assert.Equal(StatusOk, s);
        Assert.Equal(1u, len);
        Assert.Equal(1, h.Device.Metrics.FlushCount);
    }

    [Fact]
    public void Flush_without_writeback_is_acknowledged_without_a_sync()
    {
        var (s, len) = _h.Run(RequestFlush, 0);
        Assert.Equal(StatusOk, s);
        Assert.Equal(1u, len);
        Assert.Equal(0, _h.Device.Metrics.FlushCount);
    }

    [Fact]
    public void GET_ID_from_serial()
    {
        using var h = new BlockHarness(serial: "rootfs", engine: Engine);
        ulong id = h.Driver.Alloc(20, 0xee);
        var (s, len) = h.Run(RequestGetId, 0, (id, 20, true));
        Assert.Equal(StatusOk, s);
        Assert.Equal(21u, len);
        var bytes = h.Memory.GetSpan(id, 20).ToArray();
        Assert.Equal("rootfs"u8.ToArray(), bytes[..6]);
        Assert.All(bytes[6..], x => Assert.Equal(0, x));
    }

    [Fact]
    public void GET_ID_from_dev_inode()
    {
        ulong id = _h.Driver.Alloc(20, 0xee);
        var (s, len) = _h.Run(RequestGetId, 0, (id, 20, true));
        Assert.Equal(StatusOk, s);
        Assert.Equal(21u, len);
        var bytes = _h.Memory.GetSpan(id, 20).ToArray();
        Assert.True(bytes[0] is >= (byte)'0' and <= (byte)'9');
        Assert.DoesNotContain((byte)0xee, bytes);
    }

    [Fact]
    public void GET_ID_into_short_buffer_writes_what_fits()
    {
        ulong id = _h.Driver.Alloc(8, 0xee);
        var (s, len) = _h.Run(RequestGetId, 0, (id, 8, true));
        Assert.Equal(StatusOk, s);
        Assert.Equal(9u, len);
    }

    [Fact]
    public void Read_only_drive_rejects_writes()
    {
        using var h = new BlockHarness(readOnly: true, engine: Engine);
        Assert.NotEqual(0UL, h.Device.AvailableFeatures & (1UL << FeatureReadOnly));
        ulong w = h.Driver.Alloc(512, 0xcc);
        var (s, len) = h.Run(RequestOut, 0, (w, 512, false));
        Assert.Equal(StatusIoErr, s);
        Assert.Equal(1u, len);
        Assert.Equal(1, File.ReadAllBytes(h.FilePath)[0]);
        h.AssertReadable();
        Assert.Equal(StatusOk, h.Run(RequestFlush, 0).Status);
    }

    [Theory]
    [InlineData((ulong)BlockHarness.Sectors, 512u)]       // starts past the end
    [InlineData((ulong)BlockHarness.Sectors - 1, 1024u)]  // crosses the end
    [InlineData(ulong.MaxValue, 512u)]            // sector * 512 would overflow
    [InlineData(ulong.MaxValue >> 9, 512u)]
    public void Out_of_range_is_IOERR(ulong sector, uint len)
    {
        ulong r = _h.Driver.Alloc(len);
        Assert.Equal(StatusIoErr, _h.Run(RequestIn, sector, (r, len, true)).Status);
        ulong w = _h.Driver.Alloc(len);
        Assert.Equal(StatusIoErr, _h.Run(RequestOut, sector, (w, len, false)).Status);
        Assert.Equal(2, _h.Device.Metrics.InvalidReqsCount);
        Assert.Equal(BlockHarness.Sectors * 512, new FileInfo(_h.FilePath).Length);
        _h.AssertReadable();
    }

    [Fact]
    public void Partial_sector_is_IOERR()
    {
        ulong r = _h.Driver.Alloc(100);
        Assert.Equal(StatusIoErr, _h.Run(RequestIn, 0, (r, 100, true)).Status);
        _h.AssertReadable();
    }

    [Fact]
    public void Unknown_type_is_unsupported()
    {
        var (s, len) = _h.Run(42, 0);
        Assert.Equal(StatusUnsupported, s);
        Assert.Equal(1u, len);
        _h.AssertReadable();
    }

    [Fact]
    public void One_interrupt_per_batch()
    {
        for (int i = 0; i < 5; i++)
        {
            ulong r = _h.Driver.Alloc(512);
            _h.Driver.Push((_h.Header(RequestIn, (ulong)i), 16, false), (r, 512, true), (_h.StatusByte(), 1, true));
        }
        _h.Process();
        Assert.Equal(5, _h.Driver.UsedIdx);
        // Async: one interrupt per batch of completions reaped together, which the kernel may split.
        int irqs = _h.Line.Count;
        if (Engine == BlockIoEngine.Sync) Assert.Equal(1, irqs);
        else Assert.InRange(irqs, 1, 5);
        _h.Process(); // nothing pending
        Assert.Equal(irqs, _h.Line.Count);
        Assert.Equal(1, _h.Device.Metrics.NoAvailBuffer);
        Assert.Equal(2, _h.Device.Metrics.QueueEventCount);
    }

    [Fact]
    public void No_interrupt_when_driver_suppresses_it()
    {
        _h.Driver.SetAvailFlags(1);
        _h.AssertReadable();
        Assert.Equal(0, _h.Line.Count);
    }

    [Fact]
    public void Update_backing_file_changes_capacity_and_signals_config()
    {
        string other = Path.GetTempFileName();
        try
        {
            var content = new byte[128 * 512];
            content.AsSpan().Fill(0x5a);
            File.WriteAllBytes(other, content);
            uint gen = _h.Device.ConfigGeneration;
            _h.Device.UpdateBackingFile(other);
            Assert.Equal(128UL, _h.Device.CapacitySectors);
            Assert.Equal(gen + 1, _h.Device.ConfigGeneration);
            Assert.Equal(VirtioInterrupt.ConfigChange, _h.Interrupt.Status & VirtioInterrupt.ConfigChange);
            Assert.Equal(1, _h.Device.Metrics.UpdateCount);
            ulong r = _h.Driver.Alloc(512);
            Assert.Equal(StatusOk, _h.Run(RequestIn, 100, (r, 512, true)).Status);
            Assert.Equal(0x5a, _h.Memory.Read<byte>(r));
            Assert.ThrowsAny<Exception>(() => _h.Device.UpdateBackingFile("/nonexistent/flint-disk"));
            Assert.Equal(128UL, _h.Device.CapacitySectors);
        }
        finally
        {
            File.Delete(other);
        }
    }

    [Fact]
    public void Not_activated_process_counts_event_fail()
    {
        using var h = new BlockHarness(engine: Engine);
        h.Device.Reset();
        h.Device.ProcessQueue(0);
        Assert.Equal(1, h.Device.Metrics.EventFails);
    }

    [Fact]
    public void Activation_with_bad_queue_fails()
    {
        using var h = new BlockHarness(engine: Engine);
        h.Device.Reset();
        var q = new VirtQueue(256) { Size = 16, DescTable = 0x1008, AvailRing = 0x2000, UsedRing = 0x3000, Ready = true };
        Assert.False(h.Device.Activate(h.Memory, [q], h.Interrupt, 0));
        Assert.False(h.Device.IsActivated);
        Assert.Equal(1, h.Device.Metrics.ActivateFails);
    }

    [Fact]
    public void Metrics_snapshot_uses_Firecracker_names()
    {
        var names = _h.Device.Metrics.Snapshot().Select(x => x.Name).ToArray();
        Assert.Equal(
            ["activate_fails", "cfg_fails", "flush_count", "read_count", "write_count", "read_bytes", "write_bytes",
             "invalid_reqs_count", "no_avail_buffer", "event_fails", "queue_event_count", "execute_fails", "update_count",
             "update_fails", "remaining_reqs_count", "read_agg.min_us", "read_agg.max_us", "read_agg.sum_us",
             "write_agg.min_us", "write_agg.max_us", "write_agg.sum_us"],
            names);
    }
}

/// <summary>Every <see cref="VirtioBlockTests"/> case on io_engine Async (io_uring).</summary>
public sealed class VirtioBlockAsyncTests : VirtioBlockTests
{
    public VirtioBlockAsyncTests() : base(BlockIoEngine.Async) { }
}

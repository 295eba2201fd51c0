using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Memory;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// One queue notification serves at most one queue's worth of requests: a guest that keeps its avail ring full
/// (a second vCPU publishing as fast as the device completes, or reads whose data rewrites the avail idx) must not
/// hold the VMM thread, which also serves the API, in one handler. The rest is served from the resume event.
/// </summary>
public sealed class BlockBatchBoundTests : IDisposable
{
    private const ushort QSize = 16;
    private readonly string _path = Path.GetTempFileName();
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);

    public void Dispose()
    {
        _mem.Dispose();
        File.Delete(_path);
    }

    [Fact]
    public void A_read_that_raises_its_own_avail_idx_is_cut_at_one_queue_size()
    {
        // Sector 0 as it lands on the avail ring from its idx field on: idx = 17, then ring entries of head 0.
        var sector = new byte[512];
        BitConverter.GetBytes((ushort)17).CopyTo(sector, 0);
        File.WriteAllBytes(_path, sector);

        var drv = new GuestDriver(_mem, QSize);
        var q = new VirtQueue(VirtioBlock.QueueSize);
        drv.Configure(q);
        using var dev = new VirtioBlock(_path);
        Assert.True(dev.Activate(_mem, [q], new VirtioInterrupt(new CountingInterrupt()), dev.AvailableFeatures & ~VirtioFeatures.RingEventIdx));

        ulong h = drv.Alloc(16);
        _mem.Write(h, RequestIn);
        _mem.Write(h + 8, 0UL);
        ulong st = drv.Alloc(1, 0xff);
        // The read's data buffer is the avail ring itself, from its idx field: every read publishes 16 more requests.
        drv.Push((h, 16, false), (drv.Avail + 2, 512, true), (st, 1, true));

        dev.ProcessQueue(0);
        Assert.Equal(QSize, dev.Metrics.ReadCount);       // 17 were available by then: one queue's worth served
        Assert.Equal(1, dev.BatchesCutShort);

        var resume = dev.EventSources[^1];
        resume.OnReady(1);
        Assert.Equal(QSize + 1, dev.Metrics.ReadCount);   // the rest, from the resume event
        Assert.Equal(1, dev.BatchesCutShort);
    }
}

using Flint.Devices.Virtio;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// With track_dirty_pages, what the device side writes into guest RAM reaches the VMM's dirty bitmap: the used ring
/// (elements, idx, avail_event) and every device-writable buffer of a chain (marked when the chain is loaded, as
/// Firecracker's IoVecBufferMut does: readv and io_uring then write through plain iovecs). Readable buffers are not
/// marked: the device never writes them.
/// </summary>
public sealed class DirtyMarkingTests : IDisposable
{
    private const ulong P = GuestMemory.PageSize;
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
    private readonly GuestDriver _driver;
    private readonly VirtQueue _q = new(16);
    private readonly ChainBuffers _buffers = new(16);

    public DirtyMarkingTests()
    {
        // The used ring straddles pages 3 and 4: idx in page 3, element 0 across both, element 1 in page 4.
        _driver = new GuestDriver(_mem, 16, 0x1000, 0x2000, 0x3ff8);
        _driver.Configure(_q);
        Assert.True(_q.Activate(_mem));
        _mem.EnableDirtyTracking();
    }

    public void Dispose() => _mem.Dispose();

    private ulong[] DirtyPages() =>
        Enumerable.Range(0, 256).Where(p => _mem.Regions[0].Dirty!.IsDirty((ulong)p)).Select(p => (ulong)p).ToArray();

    [Fact]
    public void Writable_buffers_and_the_used_ring_are_marked_readable_ones_are_not()
    {
        ulong readable = 0x20000, writable = 0x30ff0; // writable spans pages 0x30 and 0x31
        _driver.Push((readable, 100, false), (writable, 0x20, true));
        _mem.ResetDirty(); // what the "driver" wrote above is the guest's, KVM's log has it
        Assert.True(_q.TryPop(out var chain));
        Assert.True(_buffers.Load(ref chain, _mem));
        Assert.Equal([0x30UL, 0x31], DirtyPages());

        _q.AddUsed(chain.HeadIndex, 0x20);
        Assert.Equal([3UL, 4, 0x30, 0x31], DirtyPages());
    }

    [Fact]
    public void The_second_used_element_marks_its_own_page()
    {
        _driver.Push((0x20000, 8, false));
        _driver.Push((0x21000, 8, false));
        _mem.ResetDirty();
        Assert.True(_q.TryPop(out var c0));
        _q.AddUsedUnpublished(c0.HeadIndex, 0);
        Assert.Equal([3UL, 4], DirtyPages()); // element 0 straddles; idx not yet published
        _mem.ResetDirty();
        Assert.True(_q.TryPop(out var c1));
        _q.AddUsedUnpublished(c1.HeadIndex, 0);
        Assert.Equal([4UL], DirtyPages());
        _q.PublishUsed();
        Assert.Equal([3UL, 4], DirtyPages());
    }

    [Fact]
    public void The_avail_event_write_is_marked()
    {
        _q.EventIdx = true;
        _mem.ResetDirty();
        Assert.False(_q.TryPop(out _)); // empty: the device writes avail_event (after the 16 used elements)
        ulong availEvent = 0x3ff8 + 4 + 8 * 16;
        Assert.Equal([availEvent / P], DirtyPages());
    }
}

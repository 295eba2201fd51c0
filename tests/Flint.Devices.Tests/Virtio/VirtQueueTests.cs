using Flint.Devices.Virtio;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio;

public sealed class VirtQueueTests : IDisposable
{
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
    private readonly GuestDriver _drv;
    private readonly VirtQueue _q = new(256);

    public VirtQueueTests()
    {
        _drv = new GuestDriver(_mem, 16);
        _drv.Configure(_q);
    }

    public void Dispose() => _mem.Dispose();

    [Fact]
    public void Max_size_must_be_power_of_two() => Assert.Throws<ArgumentException>(() => new VirtQueue(100));

    [Theory]
    [InlineData((ushort)0)]
    [InlineData((ushort)12)]
    [InlineData((ushort)512)]
    public void Rejects_bad_size(ushort size)
    {
        _q.Size = size;
        Assert.False(_q.Activate(_mem));
        Assert.False(_q.IsActivated);
    }

    [Theory]
    [InlineData(GuestDriver.DescBase + 8, GuestDriver.AvailBase, GuestDriver.UsedBase)]
    [InlineData(GuestDriver.DescBase, GuestDriver.AvailBase + 1, GuestDriver.UsedBase)]
    [InlineData(GuestDriver.DescBase, GuestDriver.AvailBase, GuestDriver.UsedBase + 2)]
    [InlineData(0x100000UL, GuestDriver.AvailBase, GuestDriver.UsedBase)]
    [InlineData(GuestDriver.DescBase, 0xFFFF8UL, GuestDriver.UsedBase)]
    [InlineData(GuestDriver.DescBase, GuestDriver.AvailBase, 0xFFFF0UL)]
    [InlineData(GuestDriver.DescBase, GuestDriver.AvailBase, 0xFFFF_FFFF_FFFF_FFF0UL)]
    public void Rejects_misaligned_or_outside_rings(ulong desc, ulong avail, ulong used)
    {
        _q.DescTable = desc;
        _q.AvailRing = avail;
        _q.UsedRing = used;
        Assert.False(_q.Activate(_mem));
    }

    [Fact]
    public void Not_ready_queue_does_not_activate()
    {
        _q.Ready = false;
        Assert.False(_q.Activate(_mem));
    }

    [Fact]
    public void Pops_chains_in_order_and_adds_used()
    {
        Assert.True(_q.Activate(_mem));
        Assert.False(_q.TryPop(out _));
        ulong a = _drv.Alloc(64), b = _drv.Alloc(32);
        ushort h1 = _drv.Push((a, 64, false), (b, 32, true));
        ushort h2 = _drv.Push((b, 8, true));
        Assert.Equal(2, _q.PendingCount);

        Assert.True(_q.TryPop(out var c1));
        Assert.Equal(h1, c1.HeadIndex);
        Assert.True(c1.TryNext(out var d));
        Assert.Equal(a, d.Addr);
        Assert.Equal(64u, d.Len);
        Assert.False(d.IsWriteOnly);
        Assert.True(c1.TryNext(out d));
        Assert.Equal(b, d.Addr);
        Assert.True(d.IsWriteOnly);
        Assert.False(c1.TryNext(out _));
        Assert.False(c1.IsBroken);

        Assert.True(_q.TryPop(out var c2));
        Assert.Equal(h2, c2.HeadIndex);
        Assert.False(_q.TryPop(out _));

        _q.AddUsed(h1, 32);
        _q.AddUsed(h2, 8);
        Assert.Equal(2, _drv.UsedIdx);
        Assert.Equal((h1, 32u), ((ushort)_drv.Used(0).Id, _drv.Used(0).Len));
        Assert.Equal((h2, 8u), ((ushort)_drv.Used(1).Id, _drv.Used(1).Len));
    }

    [Fact]
    public void Indices_wrap_around_16_bits()
    {
        _q.NextAvail = 65530;
        _q.NextUsed = 65530;
        _drv.SetAvailIdx(65530);
        Assert.True(_q.Activate(_mem));
        ulong a = _drv.Alloc(16);
        for (int i = 0; i < 12; i++)
        {
            _drv.Push((a, 16, true));
            Assert.True(_q.TryPop(out var c));
            _q.AddUsed(c.HeadIndex, 1);
        }
        Assert.Equal(unchecked((ushort)(65530 + 12)), _drv.UsedIdx);
        Assert.False(_q.IsFailed);
    }

    [Fact]
    public void Avail_idx_jump_marks_queue_failed()
    {
        Assert.True(_q.Activate(_mem));
        _drv.SetAvailIdx(17); // 17 pending on a 16-entry queue: impossible for a sane driver
        Assert.False(_q.TryPop(out _));
        Assert.True(_q.IsFailed);
        Assert.Equal(0, _q.PendingCount);
        _drv.SetAvailIdx(1);
        Assert.False(_q.TryPop(out _)); // stays failed until reset
        _q.Reset();
        Assert.False(_q.IsFailed);
        Assert.False(_q.Ready);
    }

    [Fact]
    public void Needs_notification_honours_no_interrupt_flag()
    {
        Assert.True(_q.Activate(_mem));
        Assert.True(_q.NeedsNotification());
        _drv.SetAvailFlags(VirtQueue.AvailFlagNoInterrupt);
        Assert.False(_q.NeedsNotification());
    }

    // EVENT_IDX: the avail ring of a 16-entry queue ends in used_event, the used ring in avail_event.
    private ushort UsedEvent { set => _mem.Write(GuestDriver.AvailBase + 4 + 2 * 16, value); }
    private ushort AvailEvent => _mem.Read<ushort>(GuestDriver.UsedBase + 4 + 8 * 16);

    [Fact]
    public void EVENT_IDX_interrupts_only_when_the_used_idx_passes_used_event()
    {
        Assert.True(_q.Activate(_mem));
        _q.EventIdx = true;
        _drv.SetAvailFlags(VirtQueue.AvailFlagNoInterrupt); // ignored with EVENT_IDX (spec 2.6.10.2)
        for (ushort i = 0; i < 8; i++) _drv.Push((0x10000UL + (ulong)i * 64, 64, true));
        Assert.True(_q.NeedsNotification()); // first decision: nothing to compare with

        UsedEvent = 3; // "interrupt me once entry 3 is used" (like Linux's enable_cb_delayed)
        for (int i = 0; i < 3; i++) { Assert.True(_q.TryPop(out var c)); _q.AddUsed(c.HeadIndex, 0); }
        Assert.False(_q.NeedsNotification()); // used idx 3: entry 3 not used yet
        Assert.True(_q.TryPop(out var d)); _q.AddUsed(d.HeadIndex, 0);
        Assert.True(_q.NeedsNotification());  // used idx 4 passed used_event 3
        Assert.True(_q.TryPop(out d)); _q.AddUsed(d.HeadIndex, 0);
        Assert.False(_q.NeedsNotification()); // already told about 3; used_event not moved on
        Assert.False(_q.NeedsNotification()); // nothing new

        UsedEvent = 5; // re-enabled at the current position, then two completions in one batch
        for (int i = 0; i < 2; i++) { Assert.True(_q.TryPop(out var c)); _q.AddUsed(c.HeadIndex, 0); }
        Assert.True(_q.NeedsNotification());
    }

    [Fact]
    public void EVENT_IDX_asks_for_a_kick_only_when_the_ring_runs_dry()
    {
        Assert.True(_q.Activate(_mem));
        _q.EventIdx = true;
        _drv.Push((0x10000UL, 64, true));
        _drv.Push((0x10040UL, 64, true));
        Assert.True(_q.TryPop(out _));
        Assert.Equal(0, AvailEvent); // busy: no kick requested (the driver's adds need no kick)
        Assert.True(_q.TryPop(out _));
        Assert.False(_q.TryPop(out _));
        Assert.Equal(2, AvailEvent); // dry: kick when entry 2 arrives

        // Without EVENT_IDX the ring's trailing field is left alone.
        _q.EventIdx = false;
        _drv.Push((0x10080UL, 64, true));
        Assert.True(_q.TryPop(out _));
        Assert.False(_q.TryPop(out _));
        Assert.Equal(2, AvailEvent);
    }

    [Fact]
    public void Chain_with_head_out_of_range_is_broken()
    {
        Assert.True(_q.Activate(_mem));
        _drv.Publish(16);
        Assert.True(_q.TryPop(out var c));
        Assert.Equal(16, c.HeadIndex);
        Assert.False(c.TryNext(out _));
        Assert.True(c.IsBroken);
    }

    [Fact]
    public void Chain_with_next_out_of_range_is_broken()
    {
        Assert.True(_q.Activate(_mem));
        ulong a = _drv.Alloc(16);
        _drv.SetDesc(0, a, 16, Descriptor.FlagNext, 40);
        _drv.Publish(0);
        Assert.True(_q.TryPop(out var c));
        Assert.True(c.TryNext(out _));
        Assert.False(c.TryNext(out _));
        Assert.True(c.IsBroken);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(16)]
    public void Looping_chain_ends_broken(int loopLength)
    {
        Assert.True(_q.Activate(_mem));
        ulong a = _drv.Alloc(16);
        for (int i = 0; i < loopLength; i++)
            _drv.SetDesc((ushort)i, a, 16, Descriptor.FlagNext, (ushort)((i + 1) % loopLength));
        _drv.Publish(0);
        Assert.True(_q.TryPop(out var c));
        int n = 0;
        while (c.TryNext(out _)) n++;
        Assert.True(c.IsBroken);
        Assert.Equal(16, n); // every descriptor at most once per queue size, then stop
    }

    [Fact]
    public void Full_length_chain_is_fine()
    {
        Assert.True(_q.Activate(_mem));
        ulong a = _drv.Alloc(16);
        var bufs = Enumerable.Repeat((a, 16u, false), 16).ToArray();
        _drv.Push(bufs);
        Assert.True(_q.TryPop(out var c));
        int n = 0;
        while (c.TryNext(out _)) n++;
        Assert.Equal(16, n);
        Assert.False(c.IsBroken);
    }

    [Fact]
    public void Chain_longer_than_the_buffers_is_refused()
    {
        Assert.True(_q.Activate(_mem));
        ulong a = _drv.Alloc(16);
        _drv.Push((a, 16, false), (a, 16, false), (a, 16, false));
        Assert.True(_q.TryPop(out var c));
        Assert.False(new ChainBuffers(2).Load(ref c, _mem));
    }

    [Theory]
    [InlineData(0x100000UL, 1u)]          // just past the end of RAM
    [InlineData(0xFFFF0UL, 32u)]          // straddles the end
    [InlineData(0xFFFF_FFFF_FFFF_FFF0UL, 0x20u)] // wraps the address space
    public void Descriptor_outside_memory_is_broken(ulong addr, uint len)
    {
        Assert.True(_q.Activate(_mem));
        _drv.Push((addr, len, true));
        Assert.True(_q.TryPop(out var c));
        Assert.False(c.TryNext(out _));
        Assert.True(c.IsBroken);
    }

    [Fact]
    public void Zero_length_descriptor_anywhere_is_accepted()
    {
        Assert.True(_q.Activate(_mem));
        _drv.Push((0xdead_0000_0000UL, 0, true));
        Assert.True(_q.TryPop(out var c));
        Assert.True(c.TryNext(out var d));
        Assert.Equal(0u, d.Len);
    }

    [Fact]
    public void Indirect_descriptor_is_broken()
    {
        Assert.True(_q.Activate(_mem));
        ulong a = _drv.Alloc(64);
        _drv.SetDesc(0, a, 64, Descriptor.FlagIndirect, 0);
        _drv.Publish(0);
        Assert.True(_q.TryPop(out var c));
        Assert.False(c.TryNext(out _));
        Assert.True(c.IsBroken);
    }

    [Fact]
    public void Chain_after_reset_is_broken()
    {
        Assert.True(_q.Activate(_mem));
        ulong a = _drv.Alloc(16);
        _drv.Push((a, 16, true));
        Assert.True(_q.TryPop(out var c));
        _q.Reset();
        Assert.False(c.TryNext(out _));
        Assert.True(c.IsBroken);
    }
}

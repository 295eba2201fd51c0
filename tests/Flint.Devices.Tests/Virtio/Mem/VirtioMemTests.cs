using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Mem;
using static Flint.Devices.Tests.Virtio.Mem.MemHarness;
using static Flint.Devices.Virtio.Mem.VirtioMemConstants;

namespace Flint.Devices.Tests.Virtio.Mem;

/// <summary>virtio-mem driven as the Linux driver drives it (drivers/virtio/virtio_mem.c), against Firecracker's behaviour.</summary>
public sealed unsafe class VirtioMemTests
{
    [Fact]
    public void Config_space_describes_the_area()
    {
        using var h = new MemHarness(totalMib: 1024);
        Assert.Equal(24u, h.Device.DeviceType);
        Assert.Equal(VirtioFeatures.Version1 | 1UL << 1, h.Device.AvailableFeatures);
        Assert.Equal(2 * MiB, h.Config(ConfigBlockSize));
        Assert.Equal(0UL, h.Config(ConfigNodeId) & 0xffff);
        Assert.Equal(AreaBase, h.Config(ConfigAddr));
        Assert.Equal(1024 * MiB, h.Config(ConfigRegionSize));
        Assert.Equal(0UL, h.Config(ConfigUsableRegionSize));
        Assert.Equal(0UL, h.Config(ConfigPluggedSize));
        Assert.Equal(0UL, h.Config(ConfigRequestedSize));
        Assert.Equal(new VirtioMemStatus(2, 1024, 128, 0, 0), h.Device.Status());
        Assert.Equal("""{"block_size_mib":2,"total_size_mib":1024,"slot_size_mib":128,"plugged_size_mib":0,"requested_size_mib":0}""",
            h.Device.Status().ToJson());
        // The config space is read-only: a driver write changes nothing.
        h.Device.WriteConfig(ConfigRequestedSize, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 });
        Assert.Equal(0UL, h.Config(ConfigRequestedSize));
        // Never-plugged memory does not resolve as guest memory.
        Assert.True(h.Memory.TryGetHostPointer(AreaBase, 4096) == null);
    }

    [Fact]
    public void Activation_needs_unplugged_inaccessible()
    {
        using var h = new MemHarness(activate: false);
        Assert.False(((IVirtioDevice)h.Device).Activate(h.Memory, [h.Queue], h.Interrupt, VirtioFeatures.Version1));
        Assert.False(h.Device.IsActivated);
        Assert.Equal(1, h.Device.Metrics.ActivateFails);
        Assert.True(((IVirtioDevice)h.Device).Activate(h.Memory, [h.Queue], h.Interrupt, h.Device.AvailableFeatures));
    }

    [Fact]
    public void Requested_size_is_checked_and_raises_the_config_interrupt()
    {
        using var idle = new MemHarness(activate: false);
        var e = Assert.Throws<InvalidOperationException>(() => idle.Device.UpdateRequestedSize(2));
        Assert.Equal("Device is not active", e.Message);

        using var h = new MemHarness(totalMib: 512, blockMib: 4);
        e = Assert.Throws<InvalidOperationException>(() => h.Device.UpdateRequestedSize(2)); // not a multiple of the block
        Assert.Equal("Size 2097152 is invalid: it must be a multiple of block size and less than the total size", e.Message);
        e = Assert.Throws<InvalidOperationException>(() => h.Device.UpdateRequestedSize(516)); // above the region
        Assert.Equal("Size 541065216 is invalid: it must be a multiple of block size and less than the total size", e.Message);
        // uint.MaxValue MiB is 2^52 - 2^20 bytes: it must not wrap to a small size (Firecracker #6076).
        Assert.Throws<InvalidOperationException>(() => h.Device.UpdateRequestedSize(uint.MaxValue));
        Assert.Equal(0u, h.Interrupt.Status);

        h.Device.UpdateRequestedSize(132);
        Assert.Equal(132 * MiB, h.Config(ConfigRequestedSize));
        Assert.Equal(256 * MiB, h.Config(ConfigUsableRegionSize)); // whole slots
        Assert.Equal(VirtioInterrupt.ConfigChange, h.Interrupt.Status & VirtioInterrupt.ConfigChange);
        Assert.Equal(1u, h.Device.ConfigGeneration);
        h.Device.UpdateRequestedSize(0);
        Assert.Equal(256 * MiB, h.Config(ConfigUsableRegionSize)); // usable never shrinks on a PATCH
        h.Device.UpdateRequestedSize(512);
        Assert.Equal(512 * MiB, h.Config(ConfigUsableRegionSize));
    }

    [Fact]
    public void Plug_write_read_unplug_state()
    {
        using var h = new MemHarness();
        h.Device.UpdateRequestedSize(4);
        Assert.Equal((RespAck, StateUnplugged, (uint)ResponseSize), h.Request(ReqState, AreaBase, 2));

        Assert.Equal((RespAck, (ushort)0, (uint)ResponseSize), h.Request(ReqPlug, AreaBase, 1));
        Assert.Equal([(0, true)], h.Slots.Calls);
        Assert.True(h.Area.IsSlotPlugged(0));
        Assert.Equal(2 * MiB, h.Config(ConfigPluggedSize));
        Assert.Equal((RespAck, StatePlugged, (uint)ResponseSize), h.Request(ReqState, AreaBase, 1));
        Assert.Equal((RespAck, StateMixed, (uint)ResponseSize), h.Request(ReqState, AreaBase, 2));

        // Plugged memory is guest memory: devices can reach it through the same accessors as boot RAM.
        h.Memory.Write(AreaBase + 4096, 0x1122334455667788UL);
        Assert.Equal(0x1122334455667788UL, h.Memory.Read<ulong>(AreaBase + 4096));

        Assert.Equal((RespAck, (ushort)0, (uint)ResponseSize), h.Request(ReqUnplug, AreaBase, 1));
        Assert.Equal([(0, true), (0, false)], h.Slots.Calls);
        Assert.False(h.Area.IsSlotPlugged(0));
        Assert.True(h.Memory.TryGetHostPointer(AreaBase + 4096, 8) == null);
        Assert.Throws<Flint.Memory.GuestMemoryException>(() => h.Memory.Read<ulong>(AreaBase + 4096));
        Assert.Equal(0UL, h.Config(ConfigPluggedSize));

        var m = h.Device.Metrics;
        Assert.Equal((1L, 2L * (long)MiB, 0L), (m.PlugCount, m.PlugBytes, m.PlugFails));
        Assert.Equal((1L, 2L * (long)MiB, 0L), (m.UnplugCount, m.UnplugBytes, m.UnplugFails));
        Assert.Equal((3L, 0L), (m.StateCount, m.StateFails));
        Assert.Equal(5L, m.QueueEventCount);
        Assert.True(h.Interrupt.Status != 0);
    }

    [Fact]
    public void Replug_reads_zeroes()
    {
        using var h = new MemHarness();
        h.Device.UpdateRequestedSize(2);
        h.Request(ReqPlug, AreaBase + 2 * MiB, 1);
        h.Memory.Fill(AreaBase + 2 * MiB, 2 * MiB, 0x5a);
        h.Request(ReqUnplug, AreaBase + 2 * MiB, 1);
        h.Request(ReqPlug, AreaBase + 2 * MiB, 1);
        Assert.Equal(0, h.Memory.Read<byte>(AreaBase + 3 * MiB));
    }

    [Fact]
    public void Plug_is_bound_by_requested_size_and_block_state()
    {
        using var h = new MemHarness();
        h.Device.UpdateRequestedSize(4);
        Assert.Equal(RespError, h.Request(ReqPlug, AreaBase, 3).Type); // 6 MiB > 4 MiB requested
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase, 1).Type);
        Assert.Equal(RespError, h.Request(ReqPlug, AreaBase, 2).Type); // mixed range
        Assert.Equal(RespError, h.Request(ReqPlug, AreaBase, 1).Type); // already plugged
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase + 2 * MiB, 1).Type);
        Assert.Equal(RespError, h.Request(ReqPlug, AreaBase + 4 * MiB, 1).Type); // at the target
        Assert.Equal(RespError, h.Request(ReqUnplug, AreaBase + 4 * MiB, 1).Type); // not plugged
        Assert.Equal(RespError, h.Request(ReqUnplug, AreaBase + 2 * MiB, 2).Type); // mixed
        // Lowering the target below what is plugged: the driver unplugs; no plug passes.
        h.Device.UpdateRequestedSize(0);
        Assert.Equal(RespError, h.Request(ReqPlug, AreaBase + 8 * MiB, 1).Type);
        Assert.Equal(RespAck, h.Request(ReqUnplug, AreaBase, 2).Type);
        Assert.Equal((5L, 2L), (h.Device.Metrics.PlugFails, h.Device.Metrics.UnplugFails));
        Assert.Equal(0UL, h.Device.PluggedSize);
    }

    [Theory]
    [InlineData(ReqPlug)]
    [InlineData(ReqUnplug)]
    [InlineData(ReqState)]
    public void Hostile_ranges_are_refused(ushort type)
    {
        using var h = new MemHarness(totalMib: 512);
        h.Device.UpdateRequestedSize(128); // usable: the first slot
        if (type == ReqUnplug) Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase, 64).Type);
        var before = h.Slots.Calls.Count;
        (ulong Addr, ushort Nb)[] bad =
        [
            (AreaBase + 4096, 1),                 // not block aligned
            (AreaBase + MiB, 1),                  // half a block off
            (AreaBase, 0),                        // no blocks
            (AreaBase - 2 * MiB, 1),              // below the area
            (0, 1),                               // boot RAM
            (AreaBase + 128 * MiB, 1),            // past the usable region, inside the region
            (AreaBase + 126 * MiB, 2),            // runs past the usable region
            (AreaBase + 512 * MiB, 1),            // past the region
            (AreaBase, 65),                       // 130 MiB from the start of a 128 MiB usable region
            (AreaBase, ushort.MaxValue),          // the largest count
            (ulong.MaxValue - 2 * MiB + 1, ushort.MaxValue), // aligned, wraps the address space
            (ulong.MaxValue & ~(2 * MiB - 1), 1), // the last block of the address space
        ];
        foreach (var (addr, nb) in bad)
            Assert.Equal((RespError, (ushort)0, (uint)ResponseSize), h.Request(type, addr, nb));
        Assert.Equal(before, h.Slots.Calls.Count);
        Assert.Equal(type == ReqUnplug ? 128 * MiB : 0, h.Device.PluggedSize);
        long fails = type switch { ReqPlug => h.Device.Metrics.PlugFails, ReqUnplug => h.Device.Metrics.UnplugFails, _ => h.Device.Metrics.StateFails };
        Assert.Equal(bad.Length, fails);
    }

    [Fact]
    public void Ranges_not_aligned_to_slots_update_every_slot_they_touch()
    {
        // Firecracker #5793: a range starting inside a slot and crossing into the next must map both slots, and an
        // unplug that empties a slot from the middle of a range must unmap it.
        using var h = new MemHarness(totalMib: 512);
        h.Device.UpdateRequestedSize(256);
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase + 126 * MiB, 2).Type); // last block of slot 0, first of slot 1
        Assert.Equal([(0, true), (1, true)], h.Slots.Calls);
        h.Memory.Write(AreaBase + 127 * MiB, 1UL);
        h.Memory.Write(AreaBase + 128 * MiB, 2UL);
        // A buffer crossing the slot boundary resolves as one host range (plugged runs are merged).
        Assert.True(h.Memory.TryGetHostPointer(AreaBase + 128 * MiB - 8, 16) != null);

        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase + 130 * MiB, 1).Type);
        Assert.Equal(2, h.Slots.Calls.Count); // slot 1 is mapped already
        Assert.Equal(RespAck, h.Request(ReqUnplug, AreaBase + 126 * MiB, 1).Type); // slot 0 now empty
        Assert.Equal((0, false), h.Slots.Calls[^1]);
        Assert.True(h.Memory.TryGetHostPointer(AreaBase + 127 * MiB, 8) == null);
        Assert.Equal(RespAck, h.Request(ReqUnplug, AreaBase + 128 * MiB, 1).Type); // slot 1 still holds a block
        Assert.True(h.Area.IsSlotPlugged(1));
        Assert.Equal(RespAck, h.Request(ReqUnplug, AreaBase + 130 * MiB, 1).Type);
        Assert.False(h.Area.IsSlotPlugged(1));
        Assert.Equal(0UL, h.Device.PluggedSize);
    }

    [Fact]
    public void Unplugged_blocks_leave_the_process_RSS()
    {
        using var h = new MemHarness(totalMib: 256);
        h.Device.UpdateRequestedSize(64);
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase, 32).Type);
        ulong len = 64 * MiB;
        h.Memory.Fill(AreaBase, len, 0xa5);
        byte* host = h.Area.Host;
        Assert.Equal((long)(len / 4096), Flint.Sys.Libc.ResidentPages(host, len));

        // Half back: the slot stays mapped (other blocks are plugged), the unplugged half is no longer resident.
        Assert.Equal(RespAck, h.Request(ReqUnplug, AreaBase + 32 * MiB, 16).Type);
        Assert.Equal((long)(len / 2 / 4096), Flint.Sys.Libc.ResidentPages(host, len));
        Assert.True(h.Area.IsSlotPlugged(0));
        Assert.Equal(RespAck, h.Request(ReqUnplug, AreaBase, 16).Type);
        Assert.Equal(0, Flint.Sys.Libc.ResidentPages(host, len));
        Assert.False(h.Area.IsSlotPlugged(0));
        Assert.Equal(0, h.Device.Metrics.UnplugDiscardFails);
    }

    [Fact]
    public void Unplug_all_empties_everything_and_the_usable_region()
    {
        using var h = new MemHarness(totalMib: 512);
        h.Device.UpdateRequestedSize(512);
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase, 1).Type);
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase + 300 * MiB, 3).Type);
        h.Memory.Fill(AreaBase + 300 * MiB, 6 * MiB, 1);
        Assert.Equal((RespAck, (ushort)0, (uint)ResponseSize), h.Request(ReqUnplugAll));
        Assert.Equal(0UL, h.Device.PluggedSize);
        Assert.Equal(0UL, h.Device.UsableRegionSize);
        for (int s = 0; s < h.Area.SlotCount; s++) Assert.False(h.Area.IsSlotPlugged(s));
        Assert.Equal(0, Flint.Sys.Libc.ResidentPages(h.Area.Host, 512 * MiB));
        Assert.Equal((1L, 0L), (h.Device.Metrics.UnplugAllCount, h.Device.Metrics.UnplugAllFails));
        // Nothing is usable until the host asks again.
        Assert.Equal(RespError, h.Request(ReqPlug, AreaBase, 1).Type);
        h.Device.UpdateRequestedSize(2);
        Assert.Equal(128 * MiB, h.Device.UsableRegionSize);
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase, 1).Type);
    }

    [Fact]
    public void Malformed_chains_go_back_empty_and_the_queue_carries_on()
    {
        using var h = new MemHarness();
        h.Device.UpdateRequestedSize(2);
        ulong req = h.WriteRequest(ReqPlug, AreaBase, 1);
        ulong resp = h.Driver.Alloc(ResponseSize);
        h.Driver.Push((req, RequestSize - 1, false), (resp, ResponseSize, true));  // request too short
        h.Driver.Push((req, RequestSize, false), (resp, ResponseSize - 1, true));  // response too short
        h.Driver.Push((req, RequestSize, false));                                  // no response buffer
        h.Driver.Push((req, RequestSize, true), (resp, ResponseSize, true));       // request device-writable
        h.Driver.Push((0xFFFF_FFFF_0000, RequestSize, false), (resp, ResponseSize, true)); // outside guest memory
        h.Device.ProcessQueue(0);
        var used = h.Driver.TakeUsed();
        Assert.Equal(5, used.Count);
        Assert.All(used, u => Assert.Equal(0u, u.Len));
        Assert.Equal(5, h.Device.Metrics.QueueEventFails);
        Assert.Equal(0UL, h.Device.PluggedSize);
        Assert.Empty(h.Slots.Calls);
        // A request split over several descriptors in any layout is still one request.
        ulong r2 = h.WriteRequest(ReqPlug, AreaBase, 1);
        ulong p2 = h.Driver.Alloc(ResponseSize, 0xee);
        h.Driver.Push((r2, 8, false), (r2 + 8, RequestSize - 8, false), (p2, 4, true), (p2 + 4, ResponseSize - 4, true));
        h.Device.ProcessQueue(0);
        Assert.Equal((ResponseSize + 0u), h.Driver.TakeUsed().Single().Len);
        Assert.Equal(RespAck, h.Memory.Read<ushort>(p2));
        Assert.Equal(2 * MiB, h.Device.PluggedSize);
    }

    [Fact]
    public void Unknown_request_types_are_answered_with_error()
    {
        using var h = new MemHarness();
        Assert.Equal((RespError, (ushort)0, (uint)ResponseSize), h.Request(4, AreaBase, 1));
        Assert.Equal((RespError, (ushort)0, (uint)ResponseSize), h.Request(0xffff, AreaBase, 1));
        Assert.Equal(2, h.Device.Metrics.QueueEventFails);
    }

    [Fact]
    public void A_failed_slot_update_leaves_the_plugged_state_as_it_was()
    {
        using var h = new MemHarness();
        h.Device.UpdateRequestedSize(2);
        h.Slots.FailNext = true;
        Assert.Equal(RespError, h.Request(ReqPlug, AreaBase, 1).Type);
        Assert.Equal(0UL, h.Device.PluggedSize);
        Assert.Equal((RespAck, StateUnplugged, (uint)ResponseSize), h.Request(ReqState, AreaBase, 1));
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase, 1).Type);
    }

    [Fact]
    public void Queue_events_before_activation_or_for_other_queues_are_counted()
    {
        using var h = new MemHarness(activate: false);
        h.Device.ProcessQueue(0);
        Assert.Equal((1L, 1L), (h.Device.Metrics.QueueEventCount, h.Device.Metrics.QueueEventFails));
        using var a = new MemHarness();
        a.Device.ProcessQueue(1);
        Assert.Equal(1L, a.Device.Metrics.QueueEventFails);
    }

    [Fact]
    public void Metric_names_are_Firecrackers()
    {
        using var h = new MemHarness();
        string[] expected =
        [
            "activate_fails", "queue_event_fails", "queue_event_count",
            "plug_agg.min_us", "plug_agg.max_us", "plug_agg.sum_us", "plug_count", "plug_bytes", "plug_fails",
            "unplug_agg.min_us", "unplug_agg.max_us", "unplug_agg.sum_us", "unplug_count", "unplug_bytes", "unplug_fails", "unplug_discard_fails",
            "unplug_all_agg.min_us", "unplug_all_agg.max_us", "unplug_all_agg.sum_us", "unplug_all_count", "unplug_all_fails",
            "state_agg.min_us", "state_agg.max_us", "state_agg.sum_us", "state_count", "state_fails",
        ];
        Assert.Equal(expected, h.Device.Metrics.Snapshot().Select(m => m.Name));
    }
}

/// <summary>The request path allocates nothing per request (slot changes, which rebuild the lookup table, aside).</summary>
public sealed class VirtioMemAllocationTests
{
    [Fact]
    public void State_plug_and_unplug_inside_a_mapped_slot_do_not_allocate()
    {
        using var h = new MemHarness();
        h.Device.UpdateRequestedSize(4);
        Assert.Equal(RespAck, h.Request(ReqPlug, AreaBase + 2 * MiB, 1).Type); // maps slot 0 once
        ulong req = h.WriteRequest(ReqState, AreaBase, 1), plug = h.WriteRequest(ReqPlug, AreaBase, 1),
            unplug = h.WriteRequest(ReqUnplug, AreaBase, 1), resp = h.Driver.Alloc(ResponseSize);
        long allocated = 0;
        for (int i = 0; i < 40; i++)
        {
            ulong r = (i % 3) switch { 0 => req, 1 => plug, _ => unplug };
            h.Driver.Push((r, RequestSize, false), (resp, ResponseSize, true));
            long before = GC.GetAllocatedBytesForCurrentThread();
            h.Device.ProcessQueue(0);
            if (i >= 10) allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            h.Driver.TakeUsed();
        }
        Assert.Equal(0, allocated);
        Assert.True(h.Area.IsSlotPlugged(0));
    }
}

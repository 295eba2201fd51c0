using Flint.Snapshot;
using static Flint.Devices.Tests.Virtio.Mem.MemHarness;
using static Flint.Devices.Virtio.Mem.VirtioMemConstants;

namespace Flint.Devices.Tests.Virtio.Mem;

/// <summary>
/// virtio-mem's snapshot state (Firecracker's mem/persist.rs): saved sizes and plugged blocks; restored onto a fresh
/// device, exactly the slots holding a plugged block are plugged again, GET /hotplug/memory answers the same, and the
/// device goes on serving requests. A bitmap that does not fit the device is refused.
/// </summary>
public sealed class VirtioMemStateTests
{
    [Fact]
    public void Restore_plugs_exactly_the_slots_with_plugged_blocks_and_the_device_goes_on()
    {
        ulong[] words;
        ulong usable, requested, plugged;
        string status;
        using (var a = new MemHarness(totalMib: 512))
        {
            a.Device.UpdateRequestedSize(260);
            Assert.Equal(RespAck, a.Request(ReqPlug, AreaBase, 1).Type);
            Assert.Equal(RespAck, a.Request(ReqPlug, AreaBase + 128 * MiB + 4 * MiB, 2).Type);
            (usable, requested, plugged, words) = a.Device.SaveState();
            status = a.Device.Status().ToJson();
        }
        Assert.Equal((384 * MiB, 260 * MiB, 6 * MiB), (usable, requested, plugged));

        using var b = new MemHarness(totalMib: 512);
        b.Device.RestoreState(usable, requested, words);
        Assert.Equal([(0, true), (1, true)], b.Slots.Calls);
        Assert.True(b.Area.IsSlotPlugged(0) && b.Area.IsSlotPlugged(1) && !b.Area.IsSlotPlugged(2) && !b.Area.IsSlotPlugged(3));
        Assert.Equal(status, b.Device.Status().ToJson());
        Assert.Equal(6 * MiB, b.Config(ConfigPluggedSize));
        Assert.Equal(384 * MiB, b.Config(ConfigUsableRegionSize));
        var (type, state, _) = b.Request(ReqState, AreaBase + 128 * MiB + 4 * MiB, 2);
        Assert.Equal((RespAck, StatePlugged), (type, state));
        Assert.Equal(StateUnplugged, b.Request(ReqState, AreaBase + 2 * MiB, 1).State);
        // A further plug works, an unplug of a restored block too (its slot stays: block 0 is still plugged there).
        Assert.Equal(RespAck, b.Request(ReqPlug, AreaBase + 2 * MiB, 1).Type);
        Assert.Equal(RespAck, b.Request(ReqUnplug, AreaBase + 128 * MiB + 4 * MiB, 2).Type);
        Assert.Equal((1, false), b.Slots.Calls[^1]);
        Assert.Equal(4 * MiB, b.Device.PluggedSize);
    }

    [Fact]
    public void A_bitmap_or_sizes_that_do_not_fit_the_device_are_refused_and_nothing_is_plugged()
    {
        using var h = new MemHarness(totalMib: 512);
        Assert.Throws<SnapshotFormatException>(() => h.Device.RestoreState(0, 0, new ulong[3]));
        Assert.Throws<SnapshotFormatException>(() => h.Device.RestoreState(0, 0, new ulong[5]));
        Assert.Throws<SnapshotFormatException>(() => h.Device.RestoreState(100 * MiB, 0, new ulong[4]));
        Assert.Throws<SnapshotFormatException>(() => h.Device.RestoreState(1024 * MiB, 0, new ulong[4]));
        Assert.Throws<SnapshotFormatException>(() => h.Device.RestoreState(0, 3 * MiB, new ulong[4]));
        using var odd = new MemHarness(totalMib: 384, blockMib: 4); // 96 blocks: the last word has 32 bits past the end
        Assert.Throws<SnapshotFormatException>(() => odd.Device.RestoreState(384 * MiB, 0, [0, 1UL << 40]));
        Assert.Empty(h.Slots.Calls);
        Assert.Empty(odd.Slots.Calls);
        Assert.Equal(0UL, h.Device.PluggedSize);
    }
}

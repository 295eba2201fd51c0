using Flint.Snapshot;
using Xunit;

namespace Flint.Snapshot.Tests;

/// <summary>
/// The virtio-mem section: it round-trips, and a hostile one is refused before any of it is used: every size checked
/// against the others, the bitmap against the block count and the usable region, plugged_size against its popcount.
/// </summary>
public class HotplugMemoryStateTests
{
    private const ulong MiB = 1UL << 20;

    // 512 MiB in 4 slots of 128 MiB, blocks of 2 MiB (256 blocks, 4 words); blocks 0 and 64 plugged (slots 0 and 1).
    private static HotplugMemoryState Valid() => new(512UL << 30, 512 * MiB, 128 * MiB, 2 * MiB,
        UsableRegionSize: 256 * MiB, RequestedSize: 130 * MiB, PluggedSize: 4 * MiB, FileOffset: 128 * MiB, [1UL, 1UL, 0, 0]);

    private static StateReader Bytes(HotplugMemoryState s, Action<StateWriter>? tail = null)
    {
        var w = new StateWriter();
        s.Write(w);
        tail?.Invoke(w);
        return new StateReader(HotplugMemoryState.SectionName, w.ToArray());
    }

    private static string Refused(HotplugMemoryState s) =>
        Assert.Throws<SnapshotFormatException>(() => HotplugMemoryState.Read(Bytes(s))).Message;

    [Fact]
    public void The_state_round_trips_field_by_field()
    {
        var s = HotplugMemoryState.Read(Bytes(Valid()));
        Assert.Equal(Valid() with { PluggedWords = s.PluggedWords }, s);
        Assert.Equal(new ulong[] { 1, 1, 0, 0 }, s.PluggedWords);
        Assert.Equal(256UL, s.BlockCount);
        Assert.Equal(4UL, s.SlotCount);
        Assert.True(s.IsPlugged(0) && s.IsPlugged(64) && !s.IsPlugged(1));
        Assert.True(s.IsSlotPlugged(0) && s.IsSlotPlugged(1) && !s.IsSlotPlugged(2) && !s.IsSlotPlugged(3));
    }

    [Fact]
    public void Plugged_size_must_be_the_popcount_times_the_block_size()
    {
        Assert.Contains("plugged size", Refused(Valid() with { PluggedSize = 6 * MiB }));
        Assert.Contains("plugged size", Refused(Valid() with { PluggedSize = 0 }));
    }

    [Fact]
    public void Sizes_must_fit_each_other()
    {
        Assert.Contains("block size", Refused(Valid() with { BlockSize = 3 * MiB }));
        Assert.Contains("block size", Refused(Valid() with { BlockSize = 2048 }));
        Assert.Contains("block size", Refused(Valid() with { BlockSize = 0 }));
        Assert.Contains("slot size", Refused(Valid() with { SlotSize = 129 * MiB }));
        Assert.Contains("slot size", Refused(Valid() with { SlotSize = 0 }));
        Assert.Contains("region size", Refused(Valid() with { RegionSize = 500 * MiB }));
        Assert.Contains("region size", Refused(Valid() with { RegionSize = 0 }));
        Assert.Contains("region size", Refused(Valid() with { RegionSize = 1UL << 40, SlotSize = 1UL << 40 }));
        Assert.Contains("usable region", Refused(Valid() with { UsableRegionSize = 1024 * MiB }));
        Assert.Contains("usable region", Refused(Valid() with { UsableRegionSize = 200 * MiB }));
        Assert.Contains("requested size", Refused(Valid() with { RequestedSize = 3 * MiB }));
        Assert.Contains("requested size", Refused(Valid() with { RequestedSize = 514 * MiB }));
        Assert.Contains("wraps", Refused(Valid() with { GuestBase = ulong.MaxValue - 4095 }));
        Assert.Contains("wraps", Refused(Valid() with { GuestBase = 0x1234 }));
        Assert.Contains("offset", Refused(Valid() with { FileOffset = 100 }));
    }

    [Fact]
    public void The_bitmap_must_fit_the_blocks_and_the_usable_region()
    {
        Assert.Contains("words", Refused(Valid() with { PluggedWords = [1, 1, 0] }));
        Assert.Contains("count of 5, more than 4", Refused(Valid() with { PluggedWords = [1, 1, 0, 0, 0] })); // refused before it is read
        // A plugged block past the usable region (256 MiB = blocks 0-127).
        Assert.Contains("past the usable region", Refused(Valid() with { PluggedWords = [1, 0, 1, 0], PluggedSize = 4 * MiB }));
        Assert.Contains("past the usable region", Refused(Valid() with { UsableRegionSize = 0 }));
        // 192 MiB in slots of 128 MiB is not whole slots; 384 MiB (3 slots, 192 blocks) is, and bits past block 191 are refused.
        var three = Valid() with { RegionSize = 384 * MiB, UsableRegionSize = 384 * MiB, PluggedWords = [1, 1, 1UL << 63, 0] };
        Assert.Contains("count of 4, more than 3", Refused(three));
        Assert.Contains("past the last block", Refused(three with
        {
            RegionSize = 384 * MiB,
            SlotSize = 128 * MiB,
            BlockSize = 4 * MiB,
            RequestedSize = 8 * MiB,
            PluggedWords = [1, 1UL << 40],
            PluggedSize = 8 * MiB
        }));
    }

    [Fact]
    public void Unknown_versions_truncation_and_trailing_bytes_are_refused()
    {
        var w = new StateWriter();
        Valid().Write(w);
        var bytes = w.ToArray();
        bytes[0] = 2;
        Assert.Contains("unknown version 2", Assert.Throws<SnapshotFormatException>(() => HotplugMemoryState.Read(new StateReader("virtio-mem", bytes))).Message);
        Assert.Throws<SnapshotFormatException>(() => HotplugMemoryState.Read(new StateReader("virtio-mem", w.ToArray()[..^8])));
        Assert.Throws<SnapshotFormatException>(() => HotplugMemoryState.Read(Bytes(Valid(), t => t.U8(0))));
        // A huge word count is refused before anything is allocated for it.
        var huge = new StateWriter();
        var v = Valid();
        huge.U32(1); huge.U64(v.GuestBase); huge.U64(v.RegionSize); huge.U64(v.SlotSize); huge.U64(v.BlockSize);
        huge.U64(v.UsableRegionSize); huge.U64(v.RequestedSize); huge.U64(v.PluggedSize); huge.U64(v.FileOffset); huge.U32(uint.MaxValue);
        Assert.Contains("count", Assert.Throws<SnapshotFormatException>(() => HotplugMemoryState.Read(new StateReader("virtio-mem", huge.ToArray()))).Message);
    }
}

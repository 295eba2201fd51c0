using Flint.Arch.X86;
using Flint.Vmm.Hotplug;

namespace Flint.Vmm.Tests;

/// <summary>
/// Where a hot-plugged pmem window and its KVM slot go: the lowest gap past the virtio-mem area that fits, a window
/// or slot an unplug freed found again, and a clear "none" when the area or the slots run out.
/// </summary>
public sealed class PmemHotplugPlacementTests
{
    private const ulong M2 = 2 << 20;
    private static readonly ulong Start = Layout.PastMmio64Start;

    [Fact]
    public void The_first_window_goes_after_the_hotplug_area_and_the_next_after_it()
    {
        Assert.Equal(Start, PmemWindowPlacer.PlaceWindow(M2, [], 0));
        Assert.Equal(Start + (1UL << 30), PmemWindowPlacer.PlaceWindow(M2, [], 1UL << 30));
        Assert.Equal(Start + 2 * M2, PmemWindowPlacer.PlaceWindow(M2, [(Start, 2 * M2)], 0));
    }

    [Fact]
    public void A_freed_gap_is_reused_when_the_window_fits_and_skipped_when_it_does_not()
    {
        var used = new List<(ulong, ulong)> { (Start, M2), (Start + 2 * M2, M2) }; // the window at +2 MiB was unplugged
        Assert.Equal(Start + M2, PmemWindowPlacer.PlaceWindow(M2, used, 0));
        Assert.Equal(Start + 3 * M2, PmemWindowPlacer.PlaceWindow(2 * M2, used, 0));
    }

    [Fact]
    public void Unaligned_empty_or_too_large_windows_find_no_place()
    {
        Assert.Null(PmemWindowPlacer.PlaceWindow(0, [], 0));
        Assert.Null(PmemWindowPlacer.PlaceWindow(M2 + 4096, [], 0));
        Assert.Null(PmemWindowPlacer.PlaceWindow(Layout.PastMmio64Size + M2, [], 0));
        Assert.Null(PmemWindowPlacer.PlaceWindow(M2, [(Start, Layout.PastMmio64Size)], 0));
    }

    [Fact]
    public void Slots_are_the_lowest_free_above_RAM_and_below_the_limit()
    {
        Assert.Equal(2u, PmemWindowPlacer.PlaceSlot(new HashSet<uint> { 0, 1 }, 2, 16));
        Assert.Equal(3u, PmemWindowPlacer.PlaceSlot(new HashSet<uint> { 0, 1, 2, 4 }, 2, 16));
        Assert.Null(PmemWindowPlacer.PlaceSlot(new HashSet<uint>(Enumerable.Range(0, 16).Select(i => (uint)i)), 2, 16));
    }
}

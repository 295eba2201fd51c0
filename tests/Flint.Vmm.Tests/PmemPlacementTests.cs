using Flint.Arch.X86;
using Flint.Vmm.Builder;
using Xunit;

namespace Flint.Vmm.Tests;

/// <summary>
/// pmem windows and the virtio-mem hotplug area share Firecracker's past-64-bit-MMIO allocator: the hotplug area is
/// allocated first, so with both configured the windows start past it (they overlapped before the two were merged).
/// </summary>
public class PmemPlacementTests
{
    private const ulong Window = 2UL << 20;

    [Fact]
    public void Windows_start_at_512_GiB_without_memory_hotplug()
    {
        var starts = VmBuilder.PlacePmemWindows([Window, 2 * Window]);
        Assert.Equal([Layout.PastMmio64Start, Layout.PastMmio64Start + Window], starts);
    }

    [Fact]
    public void Windows_start_past_the_hotplug_area_when_memory_hotplug_is_configured()
    {
        ulong hotplug = 1024UL << 20;
        var starts = VmBuilder.PlacePmemWindows([Window, Window], hotplug);
        Assert.Equal(Layout.HotplugMemoryStart + hotplug, starts[0]);
        Assert.Equal(starts[0] + Window, starts[1]);
    }

    [Fact]
    public void A_full_hotplug_area_leaves_no_room_for_a_window()
    {
        Assert.Throws<PmemAttachException>(() => VmBuilder.PlacePmemWindows([Window], Layout.PastMmio64Size));
    }
}

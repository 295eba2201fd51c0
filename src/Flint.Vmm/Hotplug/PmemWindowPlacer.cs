using Flint.Arch.X86;
using Flint.Memory;

namespace Flint.Vmm.Hotplug;

/// <summary>
/// Where a hot-plugged pmem window goes and which KVM memory slot it takes: the lowest 2 MiB aligned gap in the area
/// past the 64-bit MMIO gap that no other window (nor the virtio-mem area) uses, as Firecracker's past_mmio64 first-fit
/// allocator, and the lowest slot no RAM region, pmem window or virtio-mem block holds. Windows and slots an unplug gave
/// back are found again, so plug/unplug cycles use neither up. Pure: the caller passes what is in use.
/// </summary>
public static class PmemWindowPlacer
{
    /// <summary>Highest KVM slot number used for pmem when no virtio-mem device bounds it (KVM_USER_MEM_SLOTS on the
    /// oldest kernels Flint supports is 509; newer ones allow more).</summary>
    public const uint MaxSlotExclusive = 509;

    /// <summary>The start of the lowest gap of <paramref name="size"/> bytes, or null when none is left.</summary>
    public static ulong? PlaceWindow(ulong size, IEnumerable<(ulong Start, ulong Size)> used, ulong hotplugBytes)
    {
        if (size == 0 || size % PmemMapping.Alignment != 0) return null;
        ulong end = Layout.PastMmio64Start + Layout.PastMmio64Size;
        ulong next = Layout.PastMmio64Start + hotplugBytes;
        foreach (var (s, n) in used.OrderBy(u => u.Start))
        {
            if (s + n <= next) continue;
            if (s >= next && s - next >= size) break;
            next = Math.Max(next, s + n);
        }
        return next <= end && end - next >= size ? next : null;
    }

    /// <summary>The lowest free KVM slot at or above <paramref name="first"/> and below <paramref name="limit"/>, or null.</summary>
    public static uint? PlaceSlot(IReadOnlySet<uint> used, uint first, uint limit)
    {
        for (uint s = first; s < limit; s++) if (!used.Contains(s)) return s;
        return null;
    }
}

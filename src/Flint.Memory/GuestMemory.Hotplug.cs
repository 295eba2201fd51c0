namespace Flint.Memory;

/// <summary>
/// The virtio-mem hotplug area (<see cref="HotplugArea"/>) beside boot RAM. It is not one of <see cref="Regions"/>:
/// boot RAM alone is what E820, <see cref="TotalSize"/> and the boot KVM slots cover. Its plugged slots resolve
/// through the same accessors as boot RAM (FindRegion looks there after the boot regions), so a device can serve a
/// buffer the guest placed in hotplugged memory; its unplugged slots resolve as no memory at all. A snapshot's memory
/// file holds it after boot RAM (<see cref="MemoryFileSize"/>), as Firecracker's holds its hotpluggable region.
/// </summary>
// SAFETY: the hotplug area is one mapping of its configured size; slots are made accessible (mprotect) only while plugged, and lookups check the slot's state first.
public sealed unsafe partial class GuestMemory
{
    private HotplugArea? _hotplug;
    // A restored area (mapped from the memory file, or registered with the uffd) waits here for the builder's
    // AddHotplugArea, which takes it instead of reserving a fresh one.
    private bool _hotplugRestored;

    /// <summary>The hotplug area, or null when the VM has no virtio-mem device.</summary>
    public HotplugArea? Hotplug => _hotplug;

    /// <summary>
    /// Bytes of a snapshot memory file of this memory: boot RAM's regions back to back, then the whole hotplug area
    /// (unplugged parts as holes).
    /// </summary>
    public ulong MemoryFileSize => TotalSize + (_hotplug?.Size ?? 0);

    /// <summary>
    /// Reserves the hotplug area (all of it unplugged). At most one; it may not overlap boot RAM. On a restored memory
    /// the area the snapshot loader made is returned instead, if its geometry is the one asked for.
    /// </summary>
    public HotplugArea AddHotplugArea(ulong guestBase, ulong size, ulong slotSize)
    {
        if (_hotplug != null)
        {
            if (!_hotplugRestored || !_hotplug.Is(guestBase, size, slotSize))
                throw new InvalidOperationException(_hotplugRestored
                    ? $"the restored hotplug area 0x{_hotplug.GuestBase:x}+0x{_hotplug.Size:x} is not the configured 0x{guestBase:x}+0x{size:x}"
                    : "the hotplug area is already reserved");
            _hotplugRestored = false;
            return _hotplug;
        }
        CheckHotplugPlacement(guestBase, size);
        _hotplug = HotplugArea.Map(guestBase, size, slotSize);
        if (DirtyTracking) _hotplug.Dirty = new DirtyPageBitmap(size);
        return _hotplug;
    }

    private void CheckHotplugPlacement(ulong guestBase, ulong size)
    {
        foreach (var r in _regions)
            if (guestBase < r.GuestEnd && r.GuestBase < guestBase + size)
                throw new ArgumentException($"hotplug area 0x{guestBase:x}+0x{size:x} overlaps guest RAM");
    }

    /// <summary>Takes <paramref name="area"/> as this memory's restored hotplug area (snapshot load).</summary>
    private void AdoptRestoredHotplug(HotplugArea area)
    {
        _hotplug = area;
        _hotplugRestored = true;
    }
}

/// <summary>Where a snapshot's hotplug area lies: guest-physical base, size, slot size (its file offset follows boot RAM).</summary>
public readonly record struct HotplugLayout(ulong GuestBase, ulong Size, ulong SlotSize);

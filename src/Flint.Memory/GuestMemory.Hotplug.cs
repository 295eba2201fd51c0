namespace Flint.Memory;

/// <summary>
/// The virtio-mem hotplug area (<see cref="HotplugArea"/>) beside boot RAM. It is not one of <see cref="Regions"/>:
/// boot RAM alone is what E820, <see cref="TotalSize"/>, the boot KVM slots and snapshots cover. Its plugged slots
/// resolve through the same accessors as boot RAM (FindRegion looks there after the boot regions), so a device can
/// serve a buffer the guest placed in hotplugged memory; its unplugged slots resolve as no memory at all.
/// </summary>
// SAFETY: the hotplug area is one mapping of its configured size; slots are made accessible (mprotect) only while plugged, and lookups check the slot's state first.
public sealed unsafe partial class GuestMemory
{
    private HotplugArea? _hotplug;

    /// <summary>The hotplug area, or null when the VM has no virtio-mem device.</summary>
    public HotplugArea? Hotplug => _hotplug;

    /// <summary>Reserves the hotplug area (all of it unplugged). At most one; it may not overlap boot RAM.</summary>
    public HotplugArea AddHotplugArea(ulong guestBase, ulong size, ulong slotSize)
    {
        if (_hotplug != null) throw new InvalidOperationException("the hotplug area is already reserved");
        foreach (var r in _regions)
            if (guestBase < r.GuestEnd && r.GuestBase < guestBase + size)
                throw new ArgumentException($"hotplug area 0x{guestBase:x}+0x{size:x} overlaps guest RAM");
        _hotplug = HotplugArea.Map(guestBase, size, slotSize);
        return _hotplug;
    }
}

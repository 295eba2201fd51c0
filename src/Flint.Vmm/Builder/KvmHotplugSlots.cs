using Flint.Devices.Virtio.Mem;
using Flint.Kvm;
using Flint.Memory;

namespace Flint.Vmm.Builder;

/// <summary>
/// Plugs and unplugs hotplug slots in KVM, in Firecracker's order (update_slot): a slot is made accessible before
/// KVM maps it, and removed from KVM (size 0) before it is protected again, so neither the guest nor the VMM can
/// reach memory that is PROT_NONE on the other side. Runs on the VMM thread (KVM_SET_USER_MEMORY_REGION is in its
/// seccomp filter for this).
/// </summary>
internal sealed class KvmHotplugSlots(Vm vm, HotplugArea area, uint firstKvmSlot, bool logDirty) : IHotplugSlots
{
    public void Plug(int slot)
    {
        var (gpa, host) = area.Slot(slot);
        area.SetSlotAccessible(slot, true);
        try { vm.SetUserMemoryRegion(firstKvmSlot + (uint)slot, gpa, area.SlotSize, host, logDirty); }
        catch
        {
            area.SetSlotAccessible(slot, false);
            throw;
        }
    }

    public void Unplug(int slot)
    {
        var (gpa, host) = area.Slot(slot);
        vm.SetUserMemoryRegion(firstKvmSlot + (uint)slot, gpa, 0, host);
        area.SetSlotAccessible(slot, false);
    }
}

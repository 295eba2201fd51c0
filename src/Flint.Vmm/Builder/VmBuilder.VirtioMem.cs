using Flint.Arch.X86;
using Flint.Devices.Virtio.Mem;
using Flint.Kvm;
using Flint.Memory;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>
    /// The KVM slot of hotplug slot 0; hotplug slot i is KVM slot VirtioMemFirstKvmSlot + i. Boot RAM takes slots 0-1;
    /// 2-15 are left to other memory devices (pmem), so that no two kinds of memory need to agree on a count.
    /// </summary>
    internal const uint VirtioMemFirstKvmSlot = 16;

    /// <summary>KVM_CAP_NR_MEMSLOTS: how many slots this host's KVM offers a VM.</summary>
    private const int KvmCapNrMemslots = 10;

    /// <summary>
    /// Step: the virtio-mem device (memory hotplug), as Firecracker's builder does: the hotplug area reserved at
    /// <see cref="Layout.HotplugMemoryStart"/> beside boot RAM (all unplugged: PROT_NONE, no KVM slot), then the device
    /// on the next virtio-mmio slot, its slot changes going to KVM through <see cref="KvmHotplugSlots"/>.
    /// </summary>
    internal static void AttachVirtioMem(MemoryHotplugConfig? config, KvmSystem kvm, Vm vm, GuestMemory memory, VirtioDeviceSet devices)
    {
        if (config == null) return;
        ulong total = (ulong)config.TotalSizeMib << 20, slot = (ulong)config.SlotSizeMib << 20, block = (ulong)config.BlockSizeMib << 20;
        if (total > Layout.HotplugMemorySize)
            throw new ConfigException(ConfigArea.MemoryHotplug,
                $"Total size must not be greater than {Layout.HotplugMemorySize >> 20} MiB (the address space reserved for hotpluggable memory)");
        ulong slots = total / slot;
        int available = kvm.CheckExtension(KvmCapNrMemslots);
        if (available > 0 && VirtioMemFirstKvmSlot + slots > (ulong)available)
            throw new ConfigException(ConfigArea.MemoryHotplug,
                $"{slots} slots of {config.SlotSizeMib} MiB need more KVM memory slots than this host offers ({available}); use a larger slot_size_mib");
        var area = memory.AddHotplugArea(Layout.HotplugMemoryStart, total, slot);
        area.FirstSlot = VirtioMemFirstKvmSlot;
        // Dirty logging on the hotplug slots as on boot RAM's: a Diff snapshot asks KVM for each plugged slot's log.
        devices.Memory = new VirtioMem(area, block, new KvmHotplugSlots(vm, area, VirtioMemFirstKvmSlot, memory.DirtyTracking));
        devices.Add(devices.Memory);
    }
}

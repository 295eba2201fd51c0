using Flint.Arch.X86;
using Flint.Devices;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Pmem;
using Flint.Kvm;
using Flint.Memory;
using Flint.Sys;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

// Step: Firecracker's attach_pmem_devices: for each configured device, in order, the backing file is mapped
// (PmemMapping), given a 2 MiB aligned guest-physical window past the 64-bit MMIO gap (Layout.PastMmio64Start, first
// fit, as Firecracker's past_mmio64 allocator), added as its own KVM memory slot (KVM_MEM_READONLY when read_only) and
// exposed as a virtio-mmio device whose config space names the window. A root device adds `root=/dev/pmem{i} rw|ro`
// to the kernel command line.
public static partial class VmBuilder
{
    /// <summary>
    /// Guest-physical starts of windows of the given sizes, in order (first fit in an empty area is back to back).
    /// Firecracker allocates the virtio-mem hotplug area from the same allocator first (build_microvm_for_boot), so
    /// with memory hotplug the windows start past its <paramref name="hotplugBytes"/>.
    /// </summary>
    public static ulong[] PlacePmemWindows(IReadOnlyList<ulong> windowSizes, ulong hotplugBytes = 0)
    {
        var starts = new ulong[windowSizes.Count];
        ulong end = Layout.PastMmio64Start + Layout.PastMmio64Size;
        if (hotplugBytes > Layout.PastMmio64Size) throw new PmemAttachException("Failed to allocate memory region");
        ulong next = Layout.PastMmio64Start + hotplugBytes;
        for (int i = 0; i < starts.Length; i++)
        {
            ulong size = windowSizes[i];
            if (size == 0 || size % PmemMapping.Alignment != 0 || size > end - next)
                throw new PmemAttachException("Failed to allocate memory region");
            starts[i] = next;
            next += size;
        }
        return starts;
    }

    internal static void AttachPmemDevices(VmConfig config, Vm vm, GuestMemory memory, Bus mmio, VirtioDeviceSet devices,
        KernelCmdline cmdline, List<IDisposable> owned, IReadOnlyList<ulong>? savedStarts = null)
    {
        if (config.Pmem.Count == 0) return;
        // The slots after guest RAM's (one slot per RAM region, numbered from 0).
        uint slot = (uint)memory.Regions.Count;
        var mappings = new List<PmemMapping>();
        foreach (var p in config.Pmem)
        {
            var m = MapPmemBacking(p);
            owned.Add(m);
            mappings.Add(m);
        }
        ulong hotplugBytes = config.MemoryHotplug is { } hp ? (ulong)hp.TotalSizeMib << 20 : 0;
        // A snapshot load puts each window where the guest's driver saw it (hotplugs and unplugs may have left gaps).
        var starts = savedStarts?.ToArray() ?? PlacePmemWindows(mappings.Select(m => m.WindowLength).ToArray(), hotplugBytes);
        // virtio-mem's slots start at VirtioMemFirstKvmSlot: pmem's must stay below it when both are present.
        if (config.MemoryHotplug != null && slot + (uint)config.Pmem.Count > VirtioMemFirstKvmSlot)
            throw new PmemAttachException($"Failed to allocate memory region: {config.Pmem.Count} pmem devices and memory hotplug need more than the {VirtioMemFirstKvmSlot - slot} KVM memory slots left below the hotplug slots");
        for (int i = 0; i < config.Pmem.Count; i++)
        {
            var p = config.Pmem[i];
            var m = mappings[i];
            if (p.RootDevice) cmdline.Append($"root=/dev/pmem{i} " + (p.ReadOnly ? "ro" : "rw"));
            try { vm.SetUserMemoryRegion(slot++, starts[i], m.WindowLength, m.Host, readOnly: p.ReadOnly); }
            catch (KvmException e) { throw new PmemAttachException($"Cannot set the memory regions: {IoErrorText.Of(e)}"); }
            PmemReadOnlyWindow? ro = null;
            if (p.ReadOnly) mmio.Insert(ro = new PmemReadOnlyWindow(p.Id, m), starts[i], m.WindowLength);
            var limiter = new RateLimiter(DeviceConfigs.Limiter(p.RateLimiter, $"pmem \"{p.Id}\" rate_limiter"));
            var dev = new VirtioPmem(p.Id, m, starts[i], m.WindowLength, limiter);
            devices.Add(dev, p.Id);
            devices.Pmems.Add(dev);
            devices.PmemKvmSlots[dev] = slot - 1;
            // On the PCI segment a pmem device can be unplugged: its slot, window and mapping go with its function.
            if (devices.Pci?.Find(dev) is { } f) Hotplug.PciHotplug.TrackPmem(f, vm, mmio, devices, dev, slot - 1, m, ro);
        }
    }

    /// <summary>Opens and maps one backing file; failures in Firecracker's PmemError words.</summary>
    private static PmemMapping MapPmemBacking(PmemConfig p)
    {
        try { return PmemMapping.Open(p.PathOnHost, p.ReadOnly); }
        catch (PmemBackingEmptyException e) { throw new PmemAttachException(e.Message); }
        catch (SysException e) { throw new PmemAttachException($"Error accessing backing file: {IoErrorText.Of(e)}"); }
    }
}

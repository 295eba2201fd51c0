using Flint.Devices;
using Flint.Devices.Pci;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Block;
using Flint.Devices.Virtio.Net;
using Flint.Devices.Virtio.Pmem;
using Flint.Kvm;
using Flint.Memory;
using Flint.Sys;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;
using Flint.Vmm.Pci;

namespace Flint.Vmm.Hotplug;

/// <summary>
/// Device hotplug and unplug on a running microVM started with --enable-pci (Firecracker 1.16's developer preview,
/// docs/device-hotplug.md): a new virtio-blk, virtio-net or virtio-pmem becomes a virtio-pci function on a free slot,
/// found by the guest's next bus scan (Firecracker sends no notification); an unplug takes one off and gives back
/// all it held. Runs on the VMM thread (the API's requests do): its event loop, doorbells and vectors are changed
/// only there, and an unplug parks the vCPUs while it closes the function's fds (<see cref="Vmm.WithVcpusParked"/>).
/// The API checks ids and roots first (<see cref="Rpc.VmmController"/>); this type places and builds.
/// </summary>
internal sealed class PciHotplug(Vmm vmm)
{
    private PciDevices Pci => vmm.Devices.Pci ?? throw new HotplugException(HotplugException.PciNotEnabled);

    /// <summary>Called after every successful plug or unplug (metrics rebinding).</summary>
    public Action? DevicesChanged { get; init; }

    public void PlugDrive(DriveConfig d)
    {
        var pci = Pci;
        LogPreview("PCI device hotplug");
        var limiter = new RateLimiter(DeviceConfigs.Limiter(d.RateLimiter, $"drive \"{d.DriveId}\" rate_limiter"));
        VirtioBlock dev;
        try
        {
            dev = new VirtioBlock(d.PathOnHost!, d.IsReadOnly ?? false, d.DriveId, limiter, writeback: d.CacheType == "Writeback",
                ioEngine: d.IoEngine == "Async" ? BlockIoEngine.Async : BlockIoEngine.Sync);
        }
        catch { limiter.Dispose(); throw; }
        try { Plug(pci, dev, d.DriveId); }
        catch { dev.Dispose(); throw; }
        vmm.Devices.Blocks.Add((d.DriveId, null, dev));
        Changed();
    }

    /// <summary>
    /// A drive with a socket: Firecracker's Block::new for a vhost-user config, then the same plug. The backend gets
    /// guest memory only when it is shared (a memfd, chosen at boot when a vhost-user drive was configured then);
    /// Firecracker plugs the device anyway and its activation fails when the guest's driver starts it, Flint refuses
    /// the request instead, naming why.
    /// </summary>
    public void PlugVhostUserDrive(DriveConfig d)
    {
        var pci = Pci;
        LogPreview("PCI device hotplug");
        // Both refusals are the drive's creation errors (ConfigException): the API words them as a boot-time PUT's.
        if (!vmm.Memory.IsShared)
            throw new ConfigException(Builder.VmBuilder.VhostUserNeedsSharedMemory(d.DriveId));
        var dev = Builder.VmBuilder.ConnectVhostUserBlock(d);
        PciFunction f;
        try
        {
            dev.RelayInterruptsThroughVmm();
            f = Plug(pci, dev, d.DriveId);
        }
        catch { dev.Dispose(); throw; }
        dev.UseDoorbells(f.Transport.QueueEvents);
        vmm.Devices.VhostUserBlocks.Add(dev);
        Changed();
    }

    public void PlugNet(NetConfig net, Tap tap)
    {
        var pci = Pci;
        LogPreview("PCI device hotplug");
        var rx = new RateLimiter(net.Rx);
        var tx = new RateLimiter(net.Tx);
        VirtioNet dev;
        try { dev = new VirtioNet(tap, net.GuestMac, new NetRateLimiterAdapter(rx), new NetRateLimiterAdapter(tx), null); }
        catch { rx.Dispose(); tx.Dispose(); tap.Dispose(); throw; }
        PciFunction f;
        try { f = Plug(pci, dev, net.IfaceId); }
        catch { dev.Dispose(); rx.Dispose(); tx.Dispose(); throw; }
        // The limiters are the device's for its life; VirtioNet does not close them itself.
        AddResource(f, rx);
        AddResource(f, tx);
        vmm.Devices.Nets.Add((net.IfaceId, dev, null, rx, tx));
        Changed();
    }

    /// <summary>Firecracker's Pmem::new for a hot-plugged device: map the file, place its window and KVM slot, plug.</summary>
    public void PlugPmem(PmemConfig p)
    {
        var pci = Pci;
        LogPreview("PCI device hotplug");
        var limiterCfg = DeviceConfigs.Limiter(p.RateLimiter, $"pmem \"{p.Id}\" rate_limiter");
        PmemMapping m;
        try { m = PmemMapping.Open(p.PathOnHost, p.ReadOnly); }
        catch (PmemBackingEmptyException e) { throw PmemFault(e.Message); }
        catch (SysException e) { throw PmemFault($"Error accessing backing file: {IoErrorText.Of(e)}"); }
        var devices = vmm.Devices;
        ulong hotplugBytes = devices.Memory?.RegionSize ?? 0;
        var windows = devices.Pmems.Select(x => (x.WindowStart, x.WindowSize)).ToList();
        if (PmemWindowPlacer.PlaceWindow(m.WindowLength, windows, hotplugBytes) is not { } start)
        {
            m.Dispose();
            throw PmemFault("Failed to allocate memory region");
        }
        var usedSlots = new HashSet<uint>(Enumerable.Range(0, vmm.Memory.Regions.Count).Select(i => (uint)i));
        foreach (var s in devices.PmemKvmSlots.Values) usedSlots.Add(s);
        uint limit = devices.Memory != null ? Builder.VmBuilder.VirtioMemFirstKvmSlot : PmemWindowPlacer.MaxSlotExclusive;
        if (PmemWindowPlacer.PlaceSlot(usedSlots, (uint)vmm.Memory.Regions.Count, limit) is not { } slot)
        {
            m.Dispose();
            throw PmemFault("Unablet to allocate a KVM slot for the device"); // sic: Firecracker's PmemError text
        }
        try { vmm.Vm.SetUserMemoryRegion(slot, start, m.WindowLength, m.Host, readOnly: p.ReadOnly); }
        catch (KvmException e)
        {
            m.Dispose();
            throw PmemFault($"Cannot set the memory regions: {IoErrorText.Of(e)}");
        }
        var limiter = new RateLimiter(limiterCfg);
        var dev = new VirtioPmem(p.Id, m, start, m.WindowLength, limiter);
        PmemReadOnlyWindow? ro = null;
        PciFunction f;
        try
        {
            if (p.ReadOnly) vmm.MmioBus.Insert(ro = new PmemReadOnlyWindow(p.Id, m), start, m.WindowLength);
            f = Plug(pci, dev, p.Id);
        }
        catch
        {
            if (ro != null) vmm.MmioBus.Remove(start, ro);
            DropSlot(vmm.Vm, slot);
            dev.Dispose();
            m.Dispose();
            throw;
        }
        TrackPmem(f, vmm.Vm, vmm.MmioBus, devices, dev, slot, m, ro);
        devices.Pmems.Add(dev);
        Changed();
    }

    /// <summary>
    /// Ties a pmem device's KVM slot, read-only window and mapping to its PCI function, so an unplug gives them back
    /// (slot first, then the mapping). Used for boot-time pmem devices too, which can be unplugged as well.
    /// </summary>
    internal static void TrackPmem(PciFunction f, IPciVm vm, Bus mmio, Builder.VirtioDeviceSet devices, VirtioPmem dev, uint slot,
        PmemMapping m, PmemReadOnlyWindow? ro)
    {
        devices.PmemKvmSlots[dev] = slot;
        // Resources are disposed last first: the mapping goes after the device (which reads it) is closed.
        f.Resources.Insert(0, m);
        f.Undo.Add(() => DropSlot(vm, slot));
        if (ro != null) f.Undo.Add(() => mmio.Remove(dev.WindowStart, ro));
        f.Undo.Add(() => devices.PmemKvmSlots.Remove(dev));
    }

    private static void DropSlot(IPciVm vm, uint slot)
    {
        // A slot of size 0 is deleted (KVM_SET_USER_MEMORY_REGION); the guest loses the window before it is unmapped.
        try { vm.SetUserMemoryRegion(slot, 0, 0, 0); }
        catch (KvmException e) { Logger.Warn($"pmem: deleting KVM slot {slot} failed: {e.Message}"); }
    }

    /// <summary>
    /// Takes the device of <paramref name="kind"/> and <paramref name="id"/> off the bus and closes it. The caller
    /// checked that it exists and is not the root device.
    /// </summary>
    public void Unplug(HotplugDeviceKind kind, string id)
    {
        var pci = Pci;
        LogPreview("PCI device hot-unplug");
        var devices = vmm.Devices;
        Flint.Devices.Virtio.IVirtioDevice device = kind switch
        {
            HotplugDeviceKind.Block => (Flint.Devices.Virtio.IVirtioDevice?)devices.Blocks.FirstOrDefault(b => b.Id == id).Device
                ?? devices.VhostUserBlocks.FirstOrDefault(b => b.DriveId == id),
            HotplugDeviceKind.Net => devices.Nets.FirstOrDefault(n => n.Id == id).Device,
            _ => devices.Pmems.FirstOrDefault(p => p.Id == id),
        } ?? throw new HotplugException(HotplugException.DeviceNotFound);
        var f = pci.Find(device) ?? throw new HotplugException(HotplugException.DeviceNotFound);
        if (kind == HotplugDeviceKind.Net)
        {
            // Boot-time interfaces' limiters were never tied to the function: close them with it.
            var n = devices.Nets.First(x => x.Id == id);
            AddResource(f, n.Rx);
            AddResource(f, n.Tx);
        }
        vmm.WithVcpusParked(() => pci.Unplug(f));
        switch (kind)
        {
            case HotplugDeviceKind.Block:
                devices.Blocks.RemoveAll(b => b.Id == id);
                devices.VhostUserBlocks.RemoveAll(b => b.DriveId == id);
                break;
            case HotplugDeviceKind.Net: devices.Nets.RemoveAll(n => n.Id == id); break;
            default: devices.Pmems.RemoveAll(p => p.Id == id); break;
        }
        Changed();
    }

    /// <summary>Plugs <paramref name="dev"/>; a failure in Firecracker's PciManagerError words, the device left to the caller.</summary>
    private static PciFunction Plug(PciDevices pci, Flint.Devices.Virtio.IVirtioDevice dev, string id)
    {
        try { return pci.Plug(dev, id); }
        catch (PciSlotsExhaustedException e)
        {
            throw new HotplugException(HotplugException.PciManagerPrefix + HotplugException.PciRootPrefix + e.Message);
        }
        catch (Exception e) when (e is InvalidOperationException or KvmException or SysException)
        {
            throw new HotplugException(HotplugException.PciManagerPrefix + Rpc.FaultText.Inner(e));
        }
    }

    private static void AddResource(PciFunction f, IDisposable r)
    {
        if (!f.Resources.Contains(r)) f.Resources.Add(r);
    }

    private static HotplugException PmemFault(string pmemError) =>
        new($"Pmem config error: Unable to create the virtio-pmem device: {pmemError}");

    private void Changed()
    {
        DevicesChanged?.Invoke();
    }

    /// <summary>Firecracker's log_dev_preview_warning, once per request.</summary>
    private static void LogPreview(string feature) => Logger.Warn($"[DevPreview] {feature} is in development preview.");
}

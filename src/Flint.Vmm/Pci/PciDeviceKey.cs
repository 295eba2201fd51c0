namespace Flint.Vmm.Pci;

/// <summary>
/// What names a virtio-pci function across a snapshot (Firecracker's VirtioDeviceId): the virtio device type and the
/// configuration's id (drive_id, iface_id, pmem id; empty for the devices a VM has at most one of: vsock, entropy,
/// balloon, memory). Slots are not names: after a hotplug or unplug the configuration's order no longer says where a
/// device sits, so the snapshot records each function's key with its slot and BAR.
/// </summary>
public readonly record struct PciDeviceKey(uint DeviceType, string Id)
{
    /// <summary>How errors name the device: its type and, when it has one, its id.</summary>
    public override string ToString()
    {
        string kind = DeviceType switch
        {
            Flint.Devices.Virtio.VirtioDeviceType.Block => "block",
            Flint.Devices.Virtio.VirtioDeviceType.Net => "net",
            Flint.Devices.Virtio.VirtioDeviceType.Pmem => "pmem",
            Flint.Devices.Virtio.VirtioDeviceType.Vsock => "vsock",
            Flint.Devices.Virtio.VirtioDeviceType.Rng => "entropy",
            Flint.Devices.Virtio.VirtioDeviceType.Balloon => "balloon",
            Flint.Devices.Virtio.VirtioDeviceType.Mem => "memory",
            _ => $"virtio type {DeviceType}",
        };
        return Id.Length == 0 ? kind : $"{kind} \"{Id}\"";
    }
}

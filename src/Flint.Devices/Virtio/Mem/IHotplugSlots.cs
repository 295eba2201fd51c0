namespace Flint.Devices.Virtio.Mem;

/// <summary>
/// Makes a slot of the hotplug area reachable by the guest or not. The VMM's implementation registers the slot with
/// KVM (after making its host memory accessible) or removes it (before protecting it); the device model stays free of
/// KVM, and its tests use one that only flips the host protection.
/// </summary>
public interface IHotplugSlots
{
    void Plug(int slot);
    void Unplug(int slot);
}

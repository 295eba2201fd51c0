using Flint.Devices;
using Flint.Kvm;
using Flint.Memory;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>
    /// Step, --enable-pci: puts the PCI segment in place before any virtio device is attached, so every device becomes
    /// a virtio-pci function instead of taking a virtio-mmio slot (Firecracker: all devices use one transport or the
    /// other). Without the flag nothing changes.
    /// </summary>
    internal static void AttachPciSegment(VmOptions options, VirtioDeviceSet devices, Vm vm, GuestMemory memory, Bus mmio, Bus pio,
        EventLoop loop, List<IDisposable> owned)
    {
        if (!options.EnablePci) return;
        devices.Pci = new Pci.PciDevices(vm, memory, mmio, pio, loop, owned, options.Restore?.PciPlacement);
    }
}

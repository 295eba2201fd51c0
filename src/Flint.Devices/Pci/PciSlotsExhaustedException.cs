namespace Flint.Devices.Pci;

/// <summary>
/// Bus 0 has no free slot (31 devices besides the host bridge). The message is Firecracker's PciRootError text, which
/// a hotplug request's answer carries after "PCI manager error: PCI root error: ".
/// </summary>
public sealed class PciSlotsExhaustedException()
    : InvalidOperationException("Could not find an available device slot on the PCI bus.");

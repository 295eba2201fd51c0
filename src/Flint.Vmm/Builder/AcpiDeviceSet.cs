using Flint.Devices.Acpi;

namespace Flint.Vmm.Builder;

/// <summary>The VM's ACPI-described platform devices (Firecracker's ACPIDeviceManager): always both, as Firecracker's.</summary>
public sealed class AcpiDeviceSet(VmGenId vmGenId, VmClock vmClock)
{
    public VmGenId VmGenId { get; } = vmGenId;
    public VmClock VmClock { get; } = vmClock;
}

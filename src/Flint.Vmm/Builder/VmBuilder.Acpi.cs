using Flint.Arch.X86;
using Flint.Arch.X86.Acpi;
using Flint.Devices.Acpi;
using Flint.Kvm;
using Flint.Memory;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>
    /// Step: VMGenID and VMClock (GSIs after the virtio devices, as Firecracker's attach_vmgenid_device/
    /// attach_vmclock_device take them), their irqfds, and at boot the ID, the vmclock page and the ACPI tables in guest
    /// memory. Called once the virtio devices are all added: the DSDT lists every one of them.
    /// </summary>
    /// <param name="boot">Booting (write ID, vmclock page and tables); false when restoring a snapshot, whose memory
    /// already holds them (SnapshotLoader then gives VMGenID a new ID and bumps VMClock).</param>
    /// <param name="pci">The PCI segment when the PCI transport is on: the MCFG table describes its ECAM window and the
    /// DSDT its host bridge (a Linux with ACPI finds PCI buses only there).</param>
    internal static AcpiDeviceSet AttachAcpiDevices(Vm vm, GuestMemory memory, VirtioDeviceSet virtio, List<IDisposable> owned, uint vcpuCount,
        bool boot, PciSegmentInfo? pci = null)
    {
        uint genIdGsi = virtio.ReserveLegacyGsi();
        uint clockGsi = virtio.ReserveLegacyGsi();
        var acpi = new AcpiDeviceSet(
            new VmGenId(Layout.VmGenIdAddress, genIdGsi, NewIrq(vm, genIdGsi, owned)),
            new VmClock(Layout.VmClockAddress, clockGsi, NewIrq(vm, clockGsi, owned)));
        if (!boot) return acpi;

        acpi.VmGenId.Activate(memory);
        acpi.VmClock.Activate(memory);
        var dsdt = DsdtDevices.Build(
            [.. virtio.Windows.Select(w => new VirtioMmioAcpi(w.Address, Layout.VirtioMmioSlotSize, w.Gsi))],
            new AcpiMemoryDevice(Layout.VmGenIdAddress, genIdGsi), new AcpiMemoryDevice(Layout.VmClockAddress, clockGsi), Layout.VmClockSize,
            pci);
        AcpiTableWriter.Write(memory, vcpuCount, dsdt, pci);
        return acpi;
    }
}

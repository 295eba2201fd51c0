using Flint.Memory;
using Flint.Snapshot;
using Flint.Vmm.Builder;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// The "acpi" section (VMGenID: GSI, address, ID; VMClock: GSI, address, vmclock_abi) and what a restore does with
/// it, as Firecracker's do_post_restore: VMGenID gets a new random ID, VMClock's disruption marker and generation
/// counter go up, and each notifies the guest. Runs after the irqchip state is back, before any vCPU runs, so the
/// interrupts wait in the restored IOAPIC for the guest.
/// </summary>
public static class AcpiStateCodec
{
    public static void Save(AcpiDeviceSet acpi, StateWriter w)
    {
        acpi.VmGenId.SaveState(w);
        acpi.VmClock.SaveState(w);
    }

    /// <summary>
    /// Restores and announces the new generation. A snapshot without the section was taken by a Flint without ACPI:
    /// its guest never saw the tables, so there is nothing to tell it.
    /// </summary>
    public static void Restore(SnapshotFile file, AcpiDeviceSet? acpi, GuestMemory memory)
    {
        if (acpi == null) return;
        if (!file.Has(SnapshotSections.Acpi))
        {
            Logger.Debug("Snapshot has no acpi section (taken before VMGenID/VMClock existed): generation not announced.");
            return;
        }
        var r = file.Open(SnapshotSections.Acpi);
        acpi.VmGenId.CheckState(r);
        acpi.VmClock.RestoreState(r);
        r.ExpectEnd();
        acpi.VmGenId.OnRestored(memory);
        acpi.VmClock.OnRestored(memory);
    }
}

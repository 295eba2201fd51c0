using System.Buffers.Binary;
using Flint.Kvm;
using Flint.Snapshot;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// The VM's in-kernel devices to and from a snapshot section: both 8259 PICs, the IOAPIC, the PIT and kvmclock.
/// Saved on the VMM thread while every vCPU is parked; restored before any vCPU runs.
/// </summary>
public static class VmStateCodec
{
    private static readonly uint[] Chips = [StateIoctls.KVM_IRQCHIP_PIC_MASTER, StateIoctls.KVM_IRQCHIP_PIC_SLAVE, StateIoctls.KVM_IRQCHIP_IOAPIC];

    public static void Save(Vm vm, StateWriter w)
    {
        var pit = new byte[StateIoctls.Pit2Size];
        vm.GetPit2(pit);
        w.Raw(pit);
        var clock = new byte[StateIoctls.ClockDataSize];
        vm.GetClock(clock);
        w.Raw(clock);
        var chip = new byte[StateIoctls.IrqchipSize];
        foreach (uint id in Chips)
        {
            vm.GetIrqchip(id, chip);
            w.Raw(chip);
        }
    }

    /// <param name="clockRealtime">
    /// Firecracker's clock_realtime: also move kvmclock forward by the wall-clock time since the snapshot (KVM_CLOCK_REALTIME),
    /// so the guest's clock does not lag by the time the snapshot sat on disk.
    /// </param>
    public static void Restore(Vm vm, StateReader r, bool clockRealtime)
    {
        var pit = new byte[StateIoctls.Pit2Size];
        r.Raw(pit);
        var clock = new byte[StateIoctls.ClockDataSize];
        r.Raw(clock);
        var chips = new byte[Chips.Length][];
        for (int i = 0; i < Chips.Length; i++)
        {
            chips[i] = new byte[StateIoctls.IrqchipSize];
            r.Raw(chips[i]);
            uint id = BinaryPrimitives.ReadUInt32LittleEndian(chips[i]);
            if (id != Chips[i]) throw new SnapshotFormatException($"Section {r.Section} holds irqchip {id} where chip {Chips[i]} belongs.");
        }
        r.ExpectEnd();

        vm.SetPit2(pit);
        // As Firecracker: TSC_STABLE and HOST_TSC describe the old host and are never passed back; REALTIME only on request.
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(clock.AsSpan(8));
        flags = clockRealtime ? flags & StateIoctls.KVM_CLOCK_REALTIME : 0;
        BinaryPrimitives.WriteUInt32LittleEndian(clock.AsSpan(8), flags);
        vm.SetClock(clock);
        foreach (var c in chips) vm.SetIrqchip(c);
    }
}

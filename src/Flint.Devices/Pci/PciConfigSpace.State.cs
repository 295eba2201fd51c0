using Flint.Snapshot;

namespace Flint.Devices.Pci;

/// <summary>
/// The configuration space in a snapshot: the legacy 256 bytes (header and every capability; Flint lays nothing out
/// in the extended space, which is all zero and read-only). A restore only ever sets guest-writable bits: the
/// read-only ones (identity, class, capability layout) must equal what this build laid out for the same device, so a
/// snapshot can never give a function another identity or a capability body the VMM did not write.
/// </summary>
public sealed partial class PciConfigSpace
{
    /// <summary>Registers a snapshot holds: the header and the capabilities, up to <see cref="CapabilityEnd"/>.</summary>
    public const int SavedRegisterCount = CapabilityEnd / 4;

    public static void WriteRegisters(StateWriter w, ReadOnlySpan<uint> registers)
    {
        w.U32(SavedRegisterCount);
        foreach (uint v in registers[..SavedRegisterCount]) w.U32(v);
    }

    /// <summary>Reads the registers <see cref="WriteRegisters"/> wrote; any other count is refused.</summary>
    public static uint[] ReadRegisters(StateReader r)
    {
        int n = r.Count(SavedRegisterCount);
        if (n != SavedRegisterCount)
            throw new SnapshotFormatException($"Section {r.Section} holds {n} PCI configuration registers, not {SavedRegisterCount}.");
        var regs = new uint[n];
        for (int i = 0; i < n; i++) regs[i] = r.U32();
        return regs;
    }

    /// <summary>The first register whose read-only bits differ from this build's layout, or -1.</summary>
    public int FirstReadOnlyMismatch(ReadOnlySpan<uint> saved)
    {
        for (int i = 0; i < SavedRegisterCount; i++)
            if (((saved[i] ^ _registers[i]) & ~_writable[i]) != 0) return i;
        return -1;
    }

    /// <summary>Takes the guest-writable bits of <paramref name="saved"/>; check <see cref="FirstReadOnlyMismatch"/> first.</summary>
    public void RestoreWritable(ReadOnlySpan<uint> saved)
    {
        for (int i = 0; i < SavedRegisterCount; i++)
            _registers[i] = (_registers[i] & ~_writable[i]) | (saved[i] & _writable[i]);
    }
}

using Flint.Snapshot;

namespace Flint.Devices.Pci.Msix;

/// <summary>
/// An MSI-X table as a snapshot holds it (Firecracker's MsixConfigState): the enable and function-mask bits, every
/// entry (address low/high, data, vector control) and the pending bit array. <see cref="Read"/> checks what a hostile
/// file could get wrong before anything is allocated or applied: the vector count, and no pending bit past the table.
/// </summary>
public sealed class MsixTableState
{
    public required bool Enabled { get; init; }
    public required bool FunctionMasked { get; init; }
    /// <summary>Four dwords per vector: address low, address high, data, vector control.</summary>
    public required uint[] Entries { get; init; }
    /// <summary>One bit per vector, 64 to a word.</summary>
    public required ulong[] Pba { get; init; }

    public int Count => Entries.Length / 4;

    public void Write(StateWriter w)
    {
        w.Bool(Enabled);
        w.Bool(FunctionMasked);
        w.U32((uint)Count);
        foreach (uint v in Entries) w.U32(v);
        foreach (ulong p in Pba) w.U64(p);
    }

    public static MsixTableState Read(StateReader r)
    {
        bool enabled = r.Bool(), masked = r.Bool();
        int count = r.Count(MsixTable.MaxVectors);
        if (count < 1) throw new SnapshotFormatException($"Section {r.Section} holds an MSI-X table without vectors.");
        var entries = new uint[count * 4];
        for (int i = 0; i < entries.Length; i++) entries[i] = r.U32();
        var pba = new ulong[(count + 63) / 64];
        for (int i = 0; i < pba.Length; i++) pba[i] = r.U64();
        int tail = count % 64;
        if (tail != 0 && (pba[^1] >> tail) != 0)
            throw new SnapshotFormatException($"Section {r.Section} holds pending MSI-X bits past its {count} vectors.");
        return new MsixTableState { Enabled = enabled, FunctionMasked = masked, Entries = entries, Pba = pba };
    }
}

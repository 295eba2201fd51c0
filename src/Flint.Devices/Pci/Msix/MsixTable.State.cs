using Flint.Snapshot;

namespace Flint.Devices.Pci.Msix;

/// <summary>
/// The table's snapshot: captured whole, and restored onto a fresh table of the same size with every vector routed
/// again through <see cref="IMsiVectors.Route"/> (over KVM: the GSI routes a new process has not installed yet). A
/// pending bit stays pending while something masks its vector; one that nothing masks any more is delivered, as an
/// unmask would deliver it.
/// </summary>
public sealed partial class MsixTable
{
    public MsixTableState CaptureState()
    {
        lock (_lock)
            return new MsixTableState { Enabled = _enabled, FunctionMasked = _functionMasked, Entries = (uint[])_entries.Clone(), Pba = (ulong[])_pba.Clone() };
    }

    /// <summary>Throws <see cref="SnapshotFormatException"/> (changing nothing) when the saved table has another size.</summary>
    public void RestoreState(MsixTableState s, string section)
    {
        if (s.Count != Count)
            throw new SnapshotFormatException($"Section {section} holds {s.Count} MSI-X vectors, the device has {Count}.");
        lock (_lock)
        {
            _enabled = s.Enabled;
            _functionMasked = s.FunctionMasked;
            s.Entries.CopyTo(_entries, 0);
            s.Pba.CopyTo(_pba, 0);
            Array.Clear(_routed);
            for (int i = 0; i < Count; i++) RouteLocked(i);
            DeliverPendingLocked();
        }
    }
}

using Flint.Snapshot;

namespace Flint.Devices.Pci;

/// <summary>The host bridge in a snapshot: its config space (the guest may have written command, cache line size and
/// interrupt line; nothing else of it is writable).</summary>
public sealed partial class PciHostBridge
{
    public void SaveState(StateWriter w)
    {
        lock (_lock) PciConfigSpace.WriteRegisters(w, _config.Registers);
    }

    /// <summary>Registers read by <see cref="PciConfigSpace.ReadRegisters"/>; another identity is refused.</summary>
    public void RestoreState(uint[] registers, string section)
    {
        lock (_lock)
        {
            int bad = _config.FirstReadOnlyMismatch(registers);
            if (bad >= 0)
                throw new SnapshotFormatException($"Section {section}: the host bridge's read-only configuration register {bad} differs from this build's.");
            _config.RestoreWritable(registers);
        }
    }
}

namespace Flint.Devices.Pci;

/// <summary>
/// The BARs in a snapshot: the addresses are the VMM's (a restore places the function where the saved one was and
/// compares), so only the guest's sizing handshake is state: a BAR written with all ones whose mask was not read yet.
/// </summary>
public sealed partial class PciBars
{
    /// <summary>Bit i: BAR i's next read returns its size mask (set only for implemented BARs).</summary>
    public byte SizingBits
    {
        get
        {
            byte bits = 0;
            for (int i = 0; i < Count; i++) if (_sizing[i]) bits |= (byte)(1 << i);
            return bits;
        }
        set
        {
            for (int i = 0; i < Count; i++) _sizing[i] = (value & (1 << i)) != 0 && _sizeMask[i] != 0;
        }
    }
}

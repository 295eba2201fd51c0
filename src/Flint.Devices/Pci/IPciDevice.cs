namespace Flint.Devices.Pci;

/// <summary>
/// A function on the PCI bus as configuration cycles see it: 32-bit registers of its 4 KiB config space (PCIe),
/// addressed by register index. Callers (ECAM, the 0xCF8 ports) have already split the access and checked that it
/// stays inside one register; the device still validates offset and width, since they come from the guest.
/// </summary>
public interface IPciDevice
{
    /// <summary>Register <paramref name="register"/> (0..1023); registers past the header and capabilities read as 0.</summary>
    uint ReadConfigRegister(int register);

    /// <summary>
    /// Writes <paramref name="data"/> (1, 2 or 4 bytes) at byte <paramref name="offset"/> of register
    /// <paramref name="register"/>; read-only bits keep their value.
    /// </summary>
    void WriteConfigRegister(int register, int offset, ReadOnlySpan<byte> data);
}

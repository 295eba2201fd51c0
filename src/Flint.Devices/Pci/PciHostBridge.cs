namespace Flint.Devices.Pci;

/// <summary>
/// Device 00:00.0: the host bridge a PCI root bus starts with. Firecracker's identity (Intel 0x0d57, class 06/00),
/// so a guest sees the same bridge under either VMM. It has no BARs and no capabilities.
/// </summary>
public sealed partial class PciHostBridge : IPciDevice
{
    public const ushort VendorIntel = 0x8086;
    public const ushort DeviceVirtPcieHost = 0x0d57;

    private readonly PciConfigSpace _config = new(VendorIntel, DeviceVirtPcieHost, 0, classCode: 0x06, subclass: 0x00, progIf: 0, 0, 0);
    private readonly Lock _lock = new();

    public uint ReadConfigRegister(int register)
    {
        lock (_lock) return _config.Read(register);
    }

    public void WriteConfigRegister(int register, int offset, ReadOnlySpan<byte> data)
    {
        lock (_lock) _config.Write(register, offset, data);
    }
}

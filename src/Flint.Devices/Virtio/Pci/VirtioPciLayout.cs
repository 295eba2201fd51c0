namespace Flint.Devices.Virtio.Pci;

/// <summary>
/// Where the virtio-pci structures sit in the device's one 64-bit memory BAR (BAR 0), and the identity a modern
/// (non-transitional) virtio-pci function presents (spec 4.1.2). The offsets and sizes are Firecracker's, so a guest
/// sees the same device under either VMM.
/// </summary>
public static class VirtioPciLayout
{
    public const int Bar = 0;
    public const ulong BarSize = 0x80000;

    public const ulong CommonOffset = 0x0000;
    public const ulong CommonSize = 56;
    public const ulong IsrOffset = 0x2000;
    public const ulong IsrSize = 1;
    public const ulong DeviceOffset = 0x4000;
    public const ulong DeviceSize = 0x1000;
    public const ulong NotifyOffset = 0x6000;
    public const ulong NotifySize = 0x1000;
    /// <summary>One dword per queue's doorbell (notify_off_multiplier; queue_notify_off = queue index).</summary>
    public const uint NotifyOffMultiplier = 4;
    public const ulong MsixTableOffset = 0x8000;
    public const ulong MsixTableSize = 0x40000;
    public const ulong MsixPbaOffset = 0x48000;
    public const ulong MsixPbaSize = 0x800;

    public const ushort VendorId = 0x1af4;
    /// <summary>Modern device ids are 0x1040 + the virtio device type.</summary>
    public const ushort DeviceIdBase = 0x1040;
    /// <summary>Revision 1: a modern-only device (spec 4.1.2.1).</summary>
    public const byte Revision = 1;

    /// <summary>queue_msix_vector / msix_config value meaning "no vector" (spec 4.1.5.1.2).</summary>
    public const ushort NoVector = 0xffff;

    /// <summary>Virtio vendor capability types (spec 4.1.4).</summary>
    public const byte CapCommon = 1, CapNotify = 2, CapIsr = 3, CapDevice = 4, CapPciCfg = 5;
    public const byte VendorCapabilityId = 0x09;

    /// <summary>PCI class, subclass of a virtio device type (Firecracker's choice: net and block get real classes).</summary>
    public static (byte Class, byte Subclass) ClassOf(uint deviceType) => deviceType switch
    {
        VirtioDeviceType.Net => (0x02, 0x00),   // network controller, ethernet
        VirtioDeviceType.Block => (0x01, 0x80), // mass storage, other
        _ => (0xff, 0xff),
    };
}

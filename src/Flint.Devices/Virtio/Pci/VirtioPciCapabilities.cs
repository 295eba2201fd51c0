using System.Buffers.Binary;
using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;

namespace Flint.Devices.Virtio.Pci;

/// <summary>
/// Lays out the capability list of a virtio-pci function (spec 4.1.4), in Firecracker's order: common config, ISR,
/// device config, notify, the PCI configuration access window, then MSI-X. Each virtio capability is
/// { cap_len, cfg_type, bar, id, pad[2], offset, length } after the PCI ID and next pointer.
/// </summary>
public static class VirtioPciCapabilities
{
    /// <summary>Size of struct virtio_pci_cap including ID and next pointer.</summary>
    public const int CapLength = 16;

    /// <summary>Adds every capability; returns the offsets of the MSI-X capability and of the PCI cfg access window.</summary>
    public static (int MsixOffset, int PciCfgOffset) AddAll(PciConfigSpace config, int vectors)
    {
        Add(config, VirtioPciLayout.CapCommon, VirtioPciLayout.CommonOffset, VirtioPciLayout.CommonSize);
        Add(config, VirtioPciLayout.CapIsr, VirtioPciLayout.IsrOffset, VirtioPciLayout.IsrSize);
        Add(config, VirtioPciLayout.CapDevice, VirtioPciLayout.DeviceOffset, VirtioPciLayout.DeviceSize);
        Add(config, VirtioPciLayout.CapNotify, VirtioPciLayout.NotifyOffset, VirtioPciLayout.NotifySize, VirtioPciLayout.NotifyOffMultiplier);
        int pciCfg = Add(config, VirtioPciLayout.CapPciCfg, 0, 0, 0);
        // The driver picks bar, offset and length of the window; the data dword is served by the transport.
        config.SetWritable(pciCfg / 4 + 1, 0x0000_00ff);
        config.SetWritable(pciCfg / 4 + 2, 0xffff_ffff);
        config.SetWritable(pciCfg / 4 + 3, 0xffff_ffff);
        int msix = config.AddCapability(MsixCapability.Id, MsixCapability.Body(vectors,
            VirtioPciLayout.Bar, (uint)VirtioPciLayout.MsixTableOffset, VirtioPciLayout.Bar, (uint)VirtioPciLayout.MsixPbaOffset));
        config.SetWritable(msix / 4, MsixCapability.WritableMask);
        return (msix, pciCfg);
    }

    /// <summary>A virtio vendor capability; <paramref name="extra"/> (notify multiplier, cfg data) makes it 20 bytes.</summary>
    private static int Add(PciConfigSpace config, byte type, ulong offset, ulong length, uint? extra = null)
    {
        Span<byte> body = stackalloc byte[CapLength - 2 + (extra.HasValue ? 4 : 0)];
        body.Clear();
        body[0] = (byte)(body.Length + 2); // cap_len counts ID and next
        body[1] = type;
        body[2] = VirtioPciLayout.Bar;
        BinaryPrimitives.WriteUInt32LittleEndian(body[6..], (uint)offset);
        BinaryPrimitives.WriteUInt32LittleEndian(body[10..], (uint)length);
        if (extra is { } e) BinaryPrimitives.WriteUInt32LittleEndian(body[14..], e);
        return config.AddCapability(VirtioPciLayout.VendorCapabilityId, body);
    }
}

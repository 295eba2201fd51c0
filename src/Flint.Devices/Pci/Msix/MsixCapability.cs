using System.Buffers.Binary;

namespace Flint.Devices.Pci.Msix;

/// <summary>
/// The MSI-X capability (PCI 3.0 6.8.2): message control (table size - 1, function mask bit 14, enable bit 15),
/// then the table and PBA locations as BAR index (BIR, low 3 bits) + offset. Only the two control bits are
/// guest-writable; <see cref="MsixTable"/> follows them.
/// </summary>
public static class MsixCapability
{
    public const byte Id = 0x11;
    public const int BodyLength = 10;
    public const ushort EnableBit = 1 << 15;
    public const ushort FunctionMaskBit = 1 << 14;
    /// <summary>Writable bits of the capability's first dword (message control is its upper half).</summary>
    public const uint WritableMask = ((uint)EnableBit | FunctionMaskBit) << 16;

    /// <summary>The capability body after ID and next pointer.</summary>
    public static byte[] Body(int vectors, int tableBar, uint tableOffset, int pbaBar, uint pbaOffset)
    {
        if (vectors is < 1 or > MsixTable.MaxVectors) throw new ArgumentOutOfRangeException(nameof(vectors));
        if ((tableOffset & 7) != 0 || (pbaOffset & 7) != 0) throw new ArgumentException("MSI-X table and PBA offsets are 8-byte aligned");
        var b = new byte[BodyLength];
        BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)(vectors - 1));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(2), tableOffset | (uint)tableBar);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(6), pbaOffset | (uint)pbaBar);
        return b;
    }
}

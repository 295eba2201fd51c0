using System.Buffers.Binary;

namespace Flint.Arch.X86.Acpi;

/// <summary>
/// The ACPI tables Flint gives an x86_64 guest, laid out as Firecracker's acpi-tables crate writes them (ACPI 6.5
/// chapter 5): RSDP (revision 2, XSDT only), XSDT, FADT (revision 6.5, hardware-reduced: no PM blocks, no SCI, no
/// FACS), MADT (one IOAPIC and one enabled local APIC per vCPU, no overrides), MCFG (one PCI segment, when PCI is on)
/// and the DSDT around the AML the caller built. Each builder returns the table with its checksum set.
/// </summary>
public static class AcpiTables
{
    /// <summary>Firecracker's OEM fields and creator, so guests and tools see the values they know.</summary>
    public static ReadOnlySpan<byte> OemId => "FIRECK"u8;
    public static ReadOnlySpan<byte> CreatorId => "FCAT"u8;
    public const uint CreatorRevision = 0x20240119;
    public const uint OemRevision = 0;
    public static ReadOnlySpan<byte> HypervisorVendorId => "FIRECKVM"u8;

    public const int HeaderSize = 36, RsdpSize = 36, FadtSize = 276, MadtHeaderSize = 44, McfgSize = 60;
    public const int MadtLocalApicSize = 8, MadtIoApicSize = 12;

    // FADT flags (5.2.9 table 5.10) and IA-PC boot architecture flags (table 5.11), as Firecracker sets them.
    public const int FadtFlagPowerButton = 4, FadtFlagSleepButton = 5, FadtFlagHwReducedAcpi = 20;
    public const int IapcBootArchVgaNotPresent = 2;

    /// <summary>RSDP revision 2: the ACPI 1.0 checksum covers the first 20 bytes, the extended one all 36.</summary>
    public static byte[] Rsdp(ulong xsdtAddress)
    {
        var b = new byte[RsdpSize];
        "RSD PTR "u8.CopyTo(b);
        OemId.CopyTo(b.AsSpan(9));
        b[15] = 2;                                                         // revision
        // RsdtAddress (16) stays 0: there is no RSDT, only the XSDT.
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), RsdpSize);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), xsdtAddress);
        b[8] = Checksum(b.AsSpan(0, 20));
        b[32] = Checksum(b);
        return b;
    }

    public static byte[] Xsdt(IReadOnlyList<ulong> tableAddresses)
    {
        var b = Sdt("XSDT"u8, HeaderSize + 8 * tableAddresses.Count, revision: 1, "FCMVXSDT"u8);
        for (int i = 0; i < tableAddresses.Count; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(HeaderSize + 8 * i), tableAddresses[i]);
        return Seal(b);
    }

    /// <summary>
    /// FADT revision 6 (minor 5), hardware-reduced ACPI with power and sleep buttons as control-method devices, no
    /// VGA; only X_DSDT points at the DSDT (the 32-bit DSDT field stays 0, as Firecracker writes it).
    /// </summary>
    public static byte[] Fadt(ulong dsdtAddress)
    {
        var b = Sdt("FACP"u8, FadtSize, revision: 6, "FCVMFADT"u8);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(109), 1 << IapcBootArchVgaNotPresent);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(112),
            (1u << FadtFlagHwReducedAcpi) | (1u << FadtFlagPowerButton) | (1u << FadtFlagSleepButton));
        b[131] = 5;                                                         // FADT minor version
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(140), dsdtAddress); // X_DSDT
        HypervisorVendorId.CopyTo(b.AsSpan(268));
        return Seal(b);
    }

    /// <summary>
    /// MADT revision 6: the local APIC base, flags 0 (no dual 8259 setup: Firecracker sets no PCAT_COMPAT), the IOAPIC
    /// (id 0, GSI base 0) and one enabled processor local APIC per vCPU with processor UID = APIC id = vCPU index.
    /// </summary>
    public static byte[] Madt(uint vcpuCount)
    {
        if (vcpuCount == 0 || vcpuCount > 255) throw new ArgumentOutOfRangeException(nameof(vcpuCount), $"MADT describes 1..255 vCPUs, not {vcpuCount}");
        int len = MadtHeaderSize + MadtIoApicSize + (int)vcpuCount * MadtLocalApicSize;
        var b = Sdt("APIC"u8, len, revision: 6, "FCVMMADT"u8);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(36), Layout.LapicAddress);
        int o = MadtHeaderSize;
        b[o] = 1; b[o + 1] = MadtIoApicSize; b[o + 2] = 0;                  // IOAPIC id 0
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o + 4), Layout.IoapicAddress);
        o += MadtIoApicSize;
        for (uint i = 0; i < vcpuCount; i++, o += MadtLocalApicSize)
        {
            b[o] = 0; b[o + 1] = MadtLocalApicSize; b[o + 2] = (byte)i; b[o + 3] = (byte)i;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o + 4), 1);   // enabled
        }
        return Seal(b);
    }

    /// <summary>MCFG revision 1 with one configuration space allocation (PCI Firmware spec 4.1.2).</summary>
    public static byte[] Mcfg(PciSegmentInfo pci)
    {
        var b = Sdt("MCFG"u8, McfgSize, revision: 1, "FCMVMCFG"u8);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(44), pci.EcamBase);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(52), pci.Segment);
        b[54] = pci.StartBus;
        b[55] = pci.EndBus;
        return Seal(b);
    }

    /// <summary>DSDT revision 2 (64-bit integers) around a definition block.</summary>
    public static byte[] Dsdt(ReadOnlySpan<byte> definitionBlock)
    {
        var b = Sdt("DSDT"u8, HeaderSize + definitionBlock.Length, revision: 2, "FCVMDSDT"u8);
        definitionBlock.CopyTo(b.AsSpan(HeaderSize));
        return Seal(b);
    }

    /// <summary>The byte that makes <paramref name="b"/> sum to zero (mod 256), given its checksum byte is zero.</summary>
    public static byte Checksum(ReadOnlySpan<byte> b)
    {
        byte sum = 0;
        foreach (byte x in b) sum += x;
        return (byte)-sum;
    }

    /// <summary>A table of <paramref name="length"/> bytes with its standard header filled in, checksum 0.</summary>
    private static byte[] Sdt(ReadOnlySpan<byte> signature, int length, byte revision, ReadOnlySpan<byte> oemTableId)
    {
        var b = new byte[length];
        signature.CopyTo(b);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)length);
        b[8] = revision;
        OemId.CopyTo(b.AsSpan(10));
        oemTableId.CopyTo(b.AsSpan(16));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(24), OemRevision);
        CreatorId.CopyTo(b.AsSpan(28));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(32), CreatorRevision);
        return b;
    }

    private static byte[] Seal(byte[] b)
    {
        b[9] = 0;
        b[9] = Checksum(b);
        return b;
    }
}

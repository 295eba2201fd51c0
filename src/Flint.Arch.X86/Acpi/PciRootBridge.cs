namespace Flint.Arch.X86.Acpi;

/// <summary>
/// The DSDT's PCI host bridge, `_SB_.PC00` (Firecracker's `impl Aml for PciSegment`, devices/pci/pci_segment.rs).
/// Why it must exist: an x86 Linux booted with ACPI finds PCI root buses only in the ACPI namespace (a PNP0A03/PNP0A08
/// device); it does not probe bus 0 through the 0xCF8 ports as it does without ACPI. Without this device the devices
/// kernel under `--enable-pci` saw no PCI bus at all, so its root disk (virtio-blk over PCI) was never found.
/// `_CRS` gives the bus range, the config ports, the ECAM window and the two memory windows the BARs live in (Linux
/// keeps a BAR only if it lies inside a window, and Flint ignores a BAR move), as Firecracker's segment 0 does.
/// Left out until device hotplug needs them: the 32 slot devices (`_SUN`, `_EJ0`) and `_PRT` (Flint's functions have
/// no INTx pin; MSI-X only), `_PXM` (no NUMA).
/// </summary>
public static class PciRootBridge
{
    /// <summary>Firecracker's MEM_32BIT_DEVICES window: past the boot device's 4 KiB at the start of the 32-bit MMIO gap, up to the ECAM area.</summary>
    public const ulong Mem32Start = Layout.MmioGapStart + 0x1000;
    public const ulong Mem32End = Layout.PciMmconfigStart - 1;
    /// <summary>Firecracker's MEM_64BIT_DEVICES window (256 GiB at 256 GiB), where Flint places every BAR.</summary>
    public const ulong Mem64Start = Layout.PciMmio64Start;
    public const ulong Mem64End = Layout.PciMmio64Start + Layout.PciMmio64Size - 1;
    /// <summary>Bytes of ECAM per segment: one bus, 32 devices, 8 functions, 4 KiB each.</summary>
    public const uint EcamBytesPerSegment = 256 * 4096;

    /// <summary>"Device Labeling Interface" _DSM UUID e5c937d0-3553-4d7a-9117-ea4d19c3434d in ACPI's mixed-endian byte order.</summary>
    private static readonly byte[] PciFirmwareDsmUuid =
        [0xd0, 0x37, 0xc9, 0xe5, 0x53, 0x35, 0x7a, 0x4d, 0x91, 0x17, 0xea, 0x4d, 0x19, 0xc3, 0x43, 0x4d];

    /// <summary>DSM function 5, DSM_PCI_PRESERVE_BOOT_CONFIG: returning 0 tells the OS to keep the BARs the VMM placed.</summary>
    private const byte DsmPreserveBootConfig = 5;

    public static byte[] Build(PciSegmentInfo pci)
    {
        string name = $"_SB_.PC{pci.Segment:X2}";
        return Aml.Device(name,
            Aml.Name("_HID", Aml.EisaId("PNP0A08")),
            Aml.Name("_CID", Aml.EisaId("PNP0A03")),
            Aml.Name("_ADR", Aml.Zero),
            Aml.Name("_SEG", Aml.Word(pci.Segment)), // a u16 in Firecracker: always the Word form
            Aml.Name("_UID", Aml.Zero),
            Aml.Name("_CCA", Aml.One),
            Dsm(),
            Aml.Name("_CRS", Aml.ResourceTemplate(
                Aml.WordBusNumber(pci.StartBus, pci.EndBus),
                Aml.Io(0xcf8, 0xcf8, 1, 8),
                Aml.Memory32Fixed(true, checked((uint)pci.EcamBase), EcamBytesPerSegment),
                Aml.QWordMemory(cacheable: false, readWrite: true, Mem32Start, Mem32End),
                Aml.QWordMemory(cacheable: false, readWrite: true, Mem64Start, Mem64End),
                Aml.WordIo(0, 0x0cf7),
                Aml.WordIo(0x0d00, 0xffff))));
    }

    /// <summary>
    /// _DSM(uuid, rev, func, args): function 0 answers "functions 0 and 5 supported" (0x21), function 5 answers 0
    /// (preserve the boot configuration); anything else an empty buffer.
    /// </summary>
    private static byte[] Dsm() => Aml.Method("_DSM", 4, false,
        Aml.If(Aml.Equal(Aml.Arg(0), Aml.Buffer(PciFirmwareDsmUuid)),
            Aml.If(Aml.Equal(Aml.Arg(2), Aml.Zero), Aml.Return(Aml.Buffer([0x21]))),
            Aml.If(Aml.Equal(Aml.Arg(2), Aml.Byte(DsmPreserveBootConfig)), Aml.Return(Aml.Zero))),
        Aml.Return(Aml.Buffer([0])));
}

namespace Flint.Devices.Pci;

/// <summary>
/// Where the guest finds the ECAM window of a PCI segment: what an ACPI MCFG entry (and the host bridge's _CRS)
/// describes. One segment, bus 0 only, as Firecracker's.
/// </summary>
public readonly record struct PciEcamWindow(ulong BaseAddress, ushort Segment, byte StartBus, byte EndBus)
{
    /// <summary>ECAM space of one bus: 32 devices x 8 functions x 4 KiB.</summary>
    public const ulong SizePerBus = 1UL << 20;
    /// <summary>Firecracker maps 1 MiB per segment (PCI_MMIO_CONFIG_SIZE_PER_SEGMENT): one bus.</summary>
    public const ulong SizePerSegment = SizePerBus;

    public ulong Size => (ulong)(EndBus - StartBus + 1) * SizePerBus;
}

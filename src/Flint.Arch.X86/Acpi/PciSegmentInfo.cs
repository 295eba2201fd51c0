namespace Flint.Arch.X86.Acpi;

/// <summary>
/// One PCI segment's ECAM window for the MCFG table: the hook the PCI transport passes when it is on (no PCI, no MCFG).
/// Firecracker's is segment 0, buses 0-0, at its PCI_MMCONFIG_START (0xeec00000 = IOAPIC base - 256 MiB).
/// </summary>
public sealed record PciSegmentInfo(ulong EcamBase, ushort Segment = 0, byte StartBus = 0, byte EndBus = 0);

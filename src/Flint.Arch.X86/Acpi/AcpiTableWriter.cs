using Flint.Memory;

namespace Flint.Arch.X86.Acpi;

/// <summary>Where each table went (guest-physical); Mcfg is 0 without PCI.</summary>
public readonly record struct AcpiTableAddresses(ulong Rsdp, ulong Xsdt, ulong Fadt, ulong Madt, ulong Mcfg, ulong Dsdt, ulong End);

/// <summary>
/// Writes the ACPI tables into guest memory as Firecracker's create_acpi_tables does: DSDT, FADT, MADT, (MCFG), XSDT
/// one after the other in system memory right after the MP table, then the RSDP at <see cref="Layout.RsdpAddress"/>.
/// Tables start 8-aligned (Firecracker packs them byte-aligned; alignment is free and keeps the XSDT's 64-bit
/// entries aligned). Refuses tables that would run into VMClock's page.
/// </summary>
public static class AcpiTableWriter
{
    public const ulong Alignment = 8;

    public static AcpiTableAddresses Write(GuestMemory mem, uint vcpuCount, ReadOnlySpan<byte> dsdtBody, PciSegmentInfo? pci)
    {
        ArgumentNullException.ThrowIfNull(mem);
        ulong next = FirstTableAddress(vcpuCount);
        ulong Place(byte[] table)
        {
            ulong at = next;
            if (at + (ulong)table.Length > Layout.VmClockAddress)
                throw new InvalidOperationException($"ACPI tables ({at + (ulong)table.Length - FirstTableAddress(vcpuCount)} bytes so far) do not fit below 0x{Layout.VmClockAddress:x}");
            mem.Write(at, table);
            next = (at + (ulong)table.Length + Alignment - 1) & ~(Alignment - 1);
            return at;
        }

        ulong dsdt = Place(AcpiTables.Dsdt(dsdtBody));
        ulong fadt = Place(AcpiTables.Fadt(dsdt));
        ulong madt = Place(AcpiTables.Madt(vcpuCount));
        ulong mcfg = pci is { } p ? Place(AcpiTables.Mcfg(p)) : 0;
        ulong xsdt = Place(AcpiTables.Xsdt(mcfg != 0 ? [fadt, madt, mcfg] : [fadt, madt]));
        mem.Write(Layout.RsdpAddress, AcpiTables.Rsdp(xsdt));
        return new AcpiTableAddresses(Layout.RsdpAddress, xsdt, fadt, madt, mcfg, dsdt, next);
    }

    /// <summary>First byte after the MP table (which <see cref="MpTable.Write"/> puts at the start of system memory), aligned.</summary>
    public static ulong FirstTableAddress(uint vcpuCount) =>
        (Layout.MpTableStart + (ulong)MpTable.TableSize(vcpuCount) + Alignment - 1) & ~(Alignment - 1);
}

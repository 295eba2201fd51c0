namespace Flint.Arch.X86;

/// <summary>An e820 / PVH memory map entry. Types follow the ACPI address range types.</summary>
public readonly record struct E820Entry(ulong Address, ulong Size, uint Type)
{
    public const uint Ram = 1;
    public const uint Reserved = 2;
}

/// <summary>The guest's memory map, given to the kernel in the zero page (e820) or PVH start_info (memmap).</summary>
public static class E820
{
    /// <summary>
    /// RAM [0, 0x9fc00); reserved [0x9fc00, 1 MiB) so the kernel never reuses the MP table, and the
    /// legacy EBDA/VGA/BIOS window stays off limits as on real PCs; RAM [1 MiB, min(mem, 3 GiB)); and
    /// RAM from 4 GiB for whatever did not fit below the MMIO gap. The PCI MMCONFIG (ECAM) area is reserved whether or
    /// not PCI is on, as Firecracker's configure_system and PVH memmap do: a Linux guest trusts an MCFG table only where
    /// E820 reserves its window.
    /// </summary>
    public static E820Entry[] Build(ulong memBytes)
    {
        var list = new List<E820Entry>(5);
        ulong lowEnd = MemoryLayout.LowRamEnd(memBytes);
        list.Add(new E820Entry(0, Math.Min(lowEnd, Layout.MpTableStart), E820Entry.Ram));
        list.Add(new E820Entry(Layout.MpTableStart, Layout.HighMemStart - Layout.MpTableStart, E820Entry.Reserved));
        // Third, as in Firecracker's lists (before the RAM from 1 MiB).
        list.Add(new E820Entry(Layout.PciMmconfigStart, Layout.PciMmconfigSize, E820Entry.Reserved));
        if (lowEnd > Layout.HighMemStart)
            list.Add(new E820Entry(Layout.HighMemStart, lowEnd - Layout.HighMemStart, E820Entry.Ram));
        if (memBytes > Layout.MmioGapStart)
            list.Add(new E820Entry(Layout.MmioGapEnd, memBytes - Layout.MmioGapStart, E820Entry.Ram));
        return list.ToArray();
    }
}

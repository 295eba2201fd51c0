namespace Flint.Arch.X86.Tests;

public class LayoutTests
{
    private const ulong GiB = 1UL << 30;

    [Fact]
    public void Small_guest_is_one_range()
    {
        Assert.Equal([(0UL, 128UL << 20)], MemoryLayout.RamRanges(128UL << 20));
        Assert.Equal([(0UL, 3 * GiB)], MemoryLayout.RamRanges(3 * GiB));
    }

    [Fact]
    public void Memory_beyond_3GiB_moves_above_the_gap()
    {
        var r = MemoryLayout.RamRanges(4 * GiB + GiB / 2);
        Assert.Equal([(0UL, 3 * GiB), (4 * GiB, GiB + GiB / 2)], r);
    }

    [Fact]
    public void Unaligned_size_rejected()
    {
        Assert.Throws<ArgumentException>(() => MemoryLayout.RamRanges(4097));
        Assert.Throws<ArgumentException>(() => MemoryLayout.RamRanges(0));
    }

    [Fact]
    public void Guest_memory_of_4_5_GiB_maps_and_e820_matches()
    {
        ulong size = 4 * GiB + GiB / 2;
        using var mem = Mem.Create(size);
        Assert.Equal(size, mem.TotalSize);
        Assert.Equal(2, mem.Regions.Count);
        mem.Write(4 * GiB + 8, 0x1234UL);
        Assert.Null(mem.FindRegion(3 * GiB + 4096)); // the gap has no RAM

        var e = E820.Build(size);
        Assert.Equal(5, e.Length);
        Assert.Equal(new E820Entry(0, 0x9fc00, E820Entry.Ram), e[0]);
        Assert.Equal(new E820Entry(0x9fc00, 0x100000 - 0x9fc00, E820Entry.Reserved), e[1]);
        Assert.Equal(new E820Entry(0xEEC0_0000, 256UL << 20, E820Entry.Reserved), e[2]); // PCI MMCONFIG, as Firecracker
        Assert.Equal(new E820Entry(0x100000, 3 * GiB - 0x100000, E820Entry.Ram), e[3]);
        Assert.Equal(new E820Entry(4 * GiB, GiB + GiB / 2, E820Entry.Ram), e[4]);
    }

    [Fact]
    public void E820_small_guest_has_four_entries()
    {
        var e = E820.Build(128UL << 20);
        Assert.Equal(4, e.Length);
        Assert.Equal(new E820Entry(Layout.PciMmconfigStart, Layout.PciMmconfigSize, E820Entry.Reserved), e[2]);
        Assert.Equal((128UL << 20) - 0x100000, e[3].Size);
    }

    /// <summary>Firecracker's arch/x86_64/layout.rs: PCI_MMCONFIG_START = IOAPIC_ADDR - 256 MiB, MMIO64 at 256 GiB.</summary>
    [Fact]
    public void Pci_windows_are_firecrackers()
    {
        Assert.Equal(0xEEC0_0000UL, Layout.PciMmconfigStart);
        Assert.Equal(256UL << 20, Layout.PciMmconfigSize);
        Assert.Equal(0x40_0000_0000UL, Layout.PciMmio64Start);
        Assert.True(Layout.PciMmconfigStart >= Layout.VirtioMmioStart + (ulong)Layout.VirtioMmioSlotCount * Layout.VirtioMmioSlotSize);
        Assert.True(Layout.PciMmconfigStart + Layout.PciMmconfigSize <= Layout.IoapicAddress);
    }

    [Fact]
    public void Virtio_slots_and_irqs()
    {
        Assert.Equal(0xC0001000UL, Layout.VirtioMmioAddress(0));
        Assert.Equal(0xC0003000UL, Layout.VirtioMmioAddress(2));
        Assert.Equal(5u, Layout.VirtioIrq(0));
        Assert.Equal(23u, Layout.VirtioIrq(18));
        Assert.Throws<ArgumentOutOfRangeException>(() => Layout.VirtioIrq(19));
    }
}

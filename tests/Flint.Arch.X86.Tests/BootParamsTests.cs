namespace Flint.Arch.X86.Tests;

public class BootParamsTests
{
    private const ulong Zp = 0x7000;

    [Fact]
    public void Zero_page_for_elf_kernel()
    {
        using var mem = Mem.Create(128 * Mem.MiB);
        mem.Fill(Zp, 4096, 0xcc); // stale data must be cleared
        var k = new LoadedKernel(KernelKind.Elf64Linux, 0x100_0000, 0x100_0000, 0x200_0000);
        ulong addr = BootParams.Write(mem, k, 0x20000, 100, (0x700_0000, 0x12345), 128 * Mem.MiB);

        Assert.Equal(Zp, addr);
        Assert.Equal(0xAA55, Mem.U16(mem, Zp + 0x1fe));
        Assert.Equal(0x53726448u, Mem.U32(mem, Zp + 0x202));
        Assert.Equal(0xff, mem.Read<byte>(Zp + 0x210));
        Assert.Equal(0x81, mem.Read<byte>(Zp + 0x211));             // LOADED_HIGH | CAN_USE_HEAP
        Assert.Equal(0x20000u, Mem.U32(mem, Zp + 0x228));
        Assert.Equal(101u, Mem.U32(mem, Zp + 0x238));
        Assert.Equal(0x700_0000u, Mem.U32(mem, Zp + 0x218));
        Assert.Equal(0x12345u, Mem.U32(mem, Zp + 0x21c));
        Assert.Equal(0x100_0000u, Mem.U32(mem, Zp + 0x230));       // kernel_alignment
        Assert.Equal(0, mem.Read<byte>(Zp + 0x10));                 // rest cleared
        Assert.Equal(0xe0000UL, Mem.U64(mem, Zp + 0x70));          // acpi_rsdp_addr: Firecracker's RSDP_ADDR

        Assert.Equal(4, mem.Read<byte>(Zp + 0x1e8));
        AssertE820(mem, 0, 0, 0x9fc00, 1);
        AssertE820(mem, 1, 0x9fc00, 0x100000 - 0x9fc00, 2);
        AssertE820(mem, 2, 0xEEC0_0000, 256 * Mem.MiB, 2);        // PCI MMCONFIG reserved, as Firecracker
        AssertE820(mem, 3, 0x100000, 128 * Mem.MiB - 0x100000, 1);
    }

    private static void AssertE820(Flint.Memory.GuestMemory mem, int i, ulong addr, ulong size, uint type)
    {
        ulong e = Zp + 0x2d0 + (ulong)i * 20;
        Assert.Equal(addr, Mem.U64(mem, e));
        Assert.Equal(size, Mem.U64(mem, e + 8));
        Assert.Equal(type, Mem.U32(mem, e + 16));
    }

    [Fact]
    public void Zero_page_for_bzimage_keeps_kernel_header_and_overrides_loader_fields()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(64 * Mem.MiB);
        var k = KernelLoader.Load(mem, tmp.Write(BzImageTests.Synthetic()));
        BootParams.Write(mem, k, 0x20000, 10, null, 64 * Mem.MiB);

        Assert.Equal(4, mem.Read<byte>(Zp + 0x1f1));                // setup_sects copied
        Assert.Equal(0x020f, Mem.U16(mem, Zp + 0x206));             // version copied
        Assert.Equal(0x200000u, Mem.U32(mem, Zp + 0x230));          // kernel's own alignment kept
        Assert.Equal(1, Mem.U16(mem, Zp + 0x236));                  // xloadflags copied
        Assert.Equal(0xff, mem.Read<byte>(Zp + 0x210));
        Assert.Equal(0x81, mem.Read<byte>(Zp + 0x211));
        Assert.Equal(0x100000u, Mem.U32(mem, Zp + 0x214));          // code32_start = where we loaded it
        Assert.Equal(0x20000u, Mem.U32(mem, Zp + 0x228));
        Assert.Equal(0u, Mem.U32(mem, Zp + 0x218));                 // no initrd
        Assert.Equal(0u, Mem.U32(mem, Zp + 0x26c));                 // nothing past the header
        Assert.Equal(4, mem.Read<byte>(Zp + 0x1e8));
    }

    [Fact]
    public void Zero_page_e820_for_large_guest()
    {
        using var mem = Mem.Create((4UL << 30) + (512 * Mem.MiB));
        var k = new LoadedKernel(KernelKind.Elf64Linux, 0x100_0000, 0x100_0000, 0x200_0000);
        BootParams.Write(mem, k, 0x20000, 0, null, (4UL << 30) + (512 * Mem.MiB));
        Assert.Equal(5, mem.Read<byte>(Zp + 0x1e8));
        AssertE820(mem, 3, 0x100000, (3UL << 30) - 0x100000, 1);
        AssertE820(mem, 4, 4UL << 30, 1536 * Mem.MiB, 1);
    }

    [Fact]
    public void Pvh_start_info_with_initrd()
    {
        using var mem = Mem.Create(128 * Mem.MiB);
        var k = new LoadedKernel(KernelKind.Pvh, 0x100_0100, 0x100_0000, 0x200_0000);
        ulong addr = BootParams.Write(mem, k, 0x20000, 42, (0x600_0000, 0x8000), 128 * Mem.MiB);

        const ulong si = 0x6000;
        Assert.Equal(si, addr);
        Assert.Equal(0x336ec578u, Mem.U32(mem, si));
        Assert.Equal(1u, Mem.U32(mem, si + 4));
        Assert.Equal(0u, Mem.U32(mem, si + 8));
        Assert.Equal(1u, Mem.U32(mem, si + 12));
        Assert.Equal(0x20000UL, Mem.U64(mem, si + 24));
        Assert.Equal(0xe0000UL, Mem.U64(mem, si + 32));             // rsdp_paddr: the ACPI tables' RSDP
        Assert.Equal(si + 56, Mem.U64(mem, si + 40));              // memmap right after start_info
        Assert.Equal(4u, Mem.U32(mem, si + 48));

        ulong mm = si + 56;
        Assert.Equal(0UL, Mem.U64(mem, mm));
        Assert.Equal(0x9fc00UL, Mem.U64(mem, mm + 8));
        Assert.Equal(1u, Mem.U32(mem, mm + 16));
        Assert.Equal(0x9fc00UL, Mem.U64(mem, mm + 24));
        Assert.Equal(2u, Mem.U32(mem, mm + 24 + 16));
        Assert.Equal(0xEEC0_0000UL, Mem.U64(mem, mm + 48));          // PCI MMCONFIG reserved, as Firecracker
        Assert.Equal(2u, Mem.U32(mem, mm + 48 + 16));
        Assert.Equal(0x100000UL, Mem.U64(mem, mm + 72));
        Assert.Equal(128 * Mem.MiB - 0x100000, Mem.U64(mem, mm + 80));

        ulong modlist = Mem.U64(mem, si + 16);
        Assert.Equal(mm + 4 * 24, modlist);
        Assert.Equal(0x600_0000UL, Mem.U64(mem, modlist));
        Assert.Equal(0x8000UL, Mem.U64(mem, modlist + 8));
        Assert.Equal(0UL, Mem.U64(mem, modlist + 16));
        // PVH does not build a zero page
        Assert.Equal(0u, Mem.U32(mem, Zp + 0x202));
    }

    [Fact]
    public void Pvh_without_initrd_has_no_modules()
    {
        using var mem = Mem.Create(128 * Mem.MiB);
        var k = new LoadedKernel(KernelKind.Pvh, 0x100_0100, 0x100_0000, 0x200_0000);
        BootParams.Write(mem, k, 0x20000, 0, null, 128 * Mem.MiB);
        Assert.Equal(0u, Mem.U32(mem, 0x6000 + 12));
        Assert.Equal(0UL, Mem.U64(mem, 0x6000 + 16));
    }
}

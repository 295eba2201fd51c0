using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>
/// Identity page tables for entering Linux in long mode: the 64-bit boot protocol requires paging on and the
/// kernel, zero page and command line identity-mapped. One PML4 entry -> one PDPT entry -> 512 2 MiB pages
/// covers the first 1 GiB, where all of those live; the kernel replaces these tables within its first instructions.
/// </summary>
public static class PageTables
{
    public const ulong Present = 1, Writable = 2, PageSize2M = 0x80;
    public const ulong MappedBytes = 512UL << 21;

    public static void Write(GuestMemory mem)
    {
        // Whole pages: stale entries from a previous boot would map garbage.
        Span<byte> zero = stackalloc byte[4096];
        zero.Clear();
        mem.Write(Layout.Pml4Start, zero);
        mem.Write(Layout.PdpteStart, zero);

        mem.Write(Layout.Pml4Start, Layout.PdpteStart | Present | Writable);
        mem.Write(Layout.PdpteStart, Layout.PdeStart | Present | Writable);
        var pde = new ulong[512];
        for (int i = 0; i < 512; i++) pde[i] = ((ulong)i << 21) | Present | Writable | PageSize2M;
        mem.Write(Layout.PdeStart, System.Runtime.InteropServices.MemoryMarshal.AsBytes(pde.AsSpan()));
    }
}

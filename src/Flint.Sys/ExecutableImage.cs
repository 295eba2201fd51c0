using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// The running executable's own pages. A NativeAOT binary maps its code (3.1 MB) and read-only data (2 MB) from the
/// file, and start-up touches most of it once: the runtime reads all of its dehydrated type data to build the
/// hydrated copy, the type loader and every start-up path run, and the kernel maps file pages in 64 KiB blocks around
/// each fault. Nearly all of it then stays resident in the process for its whole life, unused: 4.3 of an idle
/// VMM's 5.8 MiB. <see cref="ReleaseReadOnlyPages"/> lets go of them; what the process runs afterwards faults back in
/// from the page cache (where the pages stay, shared by every flint started from the same file).
/// </summary>
public static unsafe class ExecutableImage
{
    private const ulong AT_PHDR = 3, AT_PHNUM = 5, AT_PAGESZ = 6;

    /// <summary>
    /// Drops the process's mappings of the pages of its executable's read-only segments (code and read-only data),
    /// except the RELRO range, whose pages the loader wrote before making them read-only. Safe at any time, from any
    /// thread: a page of a private file mapping that was never written is the file's page, and the next access maps
    /// it again. Returns the bytes advised (0 when the program headers cannot be found).
    /// </summary>
    public static long ReleaseReadOnlyPages()
    {
        // SAFETY: the auxiliary vector names the program headers of the main executable, mapped for the life of the
        // process; AT_PHNUM of them, each sizeof(ProgramHeader) bytes (ELF64).
        nuint phdrs = Libc.getauxval(AT_PHDR), count = Libc.getauxval(AT_PHNUM), pageSize = Libc.getauxval(AT_PAGESZ);
        if (phdrs == 0 || count == 0 || count > 256 || pageSize == 0) return 0;
        var headers = new ReadOnlySpan<ProgramHeader>((void*)phdrs, (int)count);
        long advised = 0;
        foreach (var (start, length) in ReadOnlyRanges(headers, phdrs, pageSize))
        {
            // SAFETY: each range lies inside a read-only PT_LOAD segment of this executable, whole pages, outside RELRO;
            // MADV_DONTNEED on such pages only unmaps them from this process (see the summary).
            if (Libc.madvise((void*)start, length, Libc.MADV_DONTNEED) == 0) advised += (long)length;
        }
        return advised;
    }

    /// <summary>
    /// The whole pages (absolute addresses) of every PT_LOAD segment without PF_W, less the PT_GNU_RELRO range;
    /// <paramref name="phdrAddress"/> is where the headers are mapped, which with PT_PHDR's vaddr gives the load
    /// bias. Nothing when there is no PT_PHDR (the bias is then unknown).
    /// </summary>
    public static List<(nuint Start, nuint Length)> ReadOnlyRanges(ReadOnlySpan<ProgramHeader> headers, nuint phdrAddress, nuint pageSize)
    {
        var ranges = new List<(nuint, nuint)>();
        ulong bias = 0, relroStart = 0, relroEnd = 0;
        bool haveBias = false;
        foreach (var h in headers)
        {
            if (h.Type == ProgramHeader.PT_PHDR) { bias = phdrAddress - h.VirtualAddress; haveBias = true; }
            if (h.Type == ProgramHeader.PT_GNU_RELRO) { relroStart = h.VirtualAddress; relroEnd = h.VirtualAddress + h.MemorySize; }
        }
        if (!haveBias) return ranges;
        ulong page = pageSize;
        foreach (var h in headers)
        {
            if (h.Type != ProgramHeader.PT_LOAD || (h.Flags & ProgramHeader.PF_W) != 0 || h.MemorySize == 0) continue;
            ulong start = h.VirtualAddress, end = h.VirtualAddress + h.FileSize; // past FileSize: zero-fill, anonymous
            if (relroEnd > relroStart && start < relroEnd && relroStart < end)
            {
                // RELRO inside a read-only segment: keep its pages; what lies before it is still released.
                AddWholePages(ranges, bias, start, relroStart, page);
                AddWholePages(ranges, bias, relroEnd, end, page);
            }
            else AddWholePages(ranges, bias, start, end, page);
        }
        return ranges;
    }

    /// <summary>Adds the pages wholly inside [start, end) (rounded inwards: a shared edge page is kept).</summary>
    private static void AddWholePages(List<(nuint, nuint)> ranges, ulong bias, ulong start, ulong end, ulong page)
    {
        ulong s = (start + page - 1) / page * page, e = end / page * page;
        if (e > s) ranges.Add(((nuint)(bias + s), (nuint)(e - s)));
    }
}

/// <summary>An ELF64 program header (Elf64_Phdr), as the kernel passes the executable's in the auxiliary vector.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct ProgramHeader
{
    public const uint PT_LOAD = 1, PT_PHDR = 6, PT_GNU_RELRO = 0x6474e552;
    public const uint PF_X = 1, PF_W = 2, PF_R = 4;

    public readonly uint Type;
    public readonly uint Flags;
    public readonly ulong Offset;
    public readonly ulong VirtualAddress;
    public readonly ulong PhysicalAddress;
    public readonly ulong FileSize;
    public readonly ulong MemorySize;
    public readonly ulong Align;

    public ProgramHeader(uint type, uint flags, ulong vaddr, ulong fileSize, ulong memSize)
    {
        Type = type; Flags = flags; VirtualAddress = vaddr; PhysicalAddress = vaddr; FileSize = fileSize; MemorySize = memSize;
        Offset = 0; Align = 0x1000;
    }
}

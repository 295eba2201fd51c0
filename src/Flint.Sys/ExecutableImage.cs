namespace Flint.Sys;

/// <summary>
/// The running executable's own pages. A NativeAOT binary maps its code (3.3 MB) and read-only data (2.1 MB) from the
/// file, and start-up touches most of it once: the runtime reads all of its dehydrated type data to build the
/// hydrated copy, the type loader and every start-up path run, and the kernel maps file pages in 64 KiB blocks around
/// each fault. Nearly all of it then stays resident in the process for its whole life, unused: 4.3 of an idle VMM's
/// 5.5 MiB. <see cref="ReleaseUnwrittenPages"/> lets go of the pages that are still the file's; what the process runs
/// afterwards faults back in from the page cache, where the pages stay (docs/benchmarks/memory-and-api.md).
/// </summary>
// SAFETY: reads only its own program headers and execve path (auxv, mapped for life); ranges checked against them.
public static unsafe class ExecutableImage
{
    private const ulong AT_PHDR = 3, AT_PHNUM = 5, AT_PAGESZ = 6, AT_EXECFN = 31;

    /// <summary>A range of whole pages of a read-only segment: where it is mapped and where it is in the file.</summary>
    public readonly record struct Range(nuint Start, nuint Length, long FileOffset);

    /// <summary>
    /// Releases the pages of the executable's read-only segments (code, read-only data; RELRO left out) that read the
    /// same as the file (<see cref="PrivateFilePages"/>): a page the runtime wrote stays. The file is opened by the
    /// name it was started by (AT_EXECFN: inside the jail too, where there is no /proc), and used only if its page
    /// holding the program headers and the build ID reads the same as the mapped one, so a file replaced since is never
    /// taken for the mapped one. Returns the bytes released; 0 when anything is missing. Never throws.
    /// </summary>
    public static long ReleaseUnwrittenPages()
    {
        // SAFETY: the auxiliary vector names the program headers of the main executable, mapped for the life of the
        // process; AT_PHNUM of them, each sizeof(ProgramHeader) bytes (ELF64).
        nuint phdrs = Libc.getauxval(AT_PHDR), count = Libc.getauxval(AT_PHNUM), pageSize = Libc.getauxval(AT_PAGESZ);
        byte* name = (byte*)Libc.getauxval(AT_EXECFN);
        if (phdrs == 0 || count == 0 || count > 256 || pageSize != 4096 || name == null) return 0;
        var headers = new ReadOnlySpan<ProgramHeader>((void*)phdrs, (int)count);
        if (HeaderPage(headers, phdrs, pageSize) is not { } identity) return 0;
        // SAFETY: AT_EXECFN is the NUL-terminated path execve was given, on the initial stack for the process's life.
        int fd = Libc.open(name, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0) return 0;
        try
        {
            // The header page is compared and, if it matches, released like the others; if it does not, this file is
            // not the mapped one (or the page was written) and nothing is released.
            if (PrivateFilePages.ReleaseUnwritten(fd, identity.Start, identity.Length, identity.FileOffset) == 0) return 0;
            long released = (long)identity.Length;
            foreach (var r in ReadOnlyRanges(headers, phdrs, pageSize))
                released += PrivateFilePages.ReleaseUnwritten(fd, r.Start, r.Length, r.FileOffset);
            return released;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>
    /// The page holding the program headers (with the ELF header and the build ID note in a usual link), where it is
    /// mapped and where it is in the file; null without a PT_PHDR or a read-only PT_LOAD that holds it.
    /// </summary>
    public static Range? HeaderPage(ReadOnlySpan<ProgramHeader> headers, nuint phdrAddress, nuint pageSize)
    {
        ulong page = pageSize;
        foreach (var h in headers)
        {
            if (h.Type != ProgramHeader.PT_PHDR) continue;
            ulong bias = phdrAddress - h.VirtualAddress, vpage = h.VirtualAddress / page * page;
            foreach (var l in headers)
            {
                if (l.Type != ProgramHeader.PT_LOAD || (l.Flags & ProgramHeader.PF_W) != 0) continue;
                if (vpage < l.VirtualAddress / page * page || vpage + page > l.VirtualAddress + l.FileSize) continue;
                return new Range((nuint)(bias + vpage), (nuint)page, (long)(l.Offset + vpage - l.VirtualAddress));
            }
        }
        return null;
    }

    /// <summary>
    /// The whole pages (absolute addresses, file offsets) of every PT_LOAD segment without PF_W, less the
    /// PT_GNU_RELRO range (the loader writes it before making it read-only) and less the header page (see
    /// <see cref="HeaderPage"/>); <paramref name="phdrAddress"/> is where the headers are mapped, which with PT_PHDR's
    /// vaddr gives the load bias. Nothing when there is no PT_PHDR (the bias is then unknown).
    /// </summary>
    public static List<Range> ReadOnlyRanges(ReadOnlySpan<ProgramHeader> headers, nuint phdrAddress, nuint pageSize)
    {
        var ranges = new List<Range>();
        ulong bias = 0, relroStart = 0, relroEnd = 0, headerPage = ulong.MaxValue;
        bool haveBias = false;
        foreach (var h in headers)
        {
            if (h.Type == ProgramHeader.PT_PHDR) { bias = phdrAddress - h.VirtualAddress; haveBias = true; headerPage = h.VirtualAddress / pageSize * pageSize; }
            if (h.Type == ProgramHeader.PT_GNU_RELRO) { relroStart = h.VirtualAddress; relroEnd = h.VirtualAddress + h.MemorySize; }
        }
        if (!haveBias) return ranges;
        ulong page = pageSize;
        foreach (var h in headers)
        {
            if (h.Type != ProgramHeader.PT_LOAD || (h.Flags & ProgramHeader.PF_W) != 0 || h.MemorySize == 0) continue;
            ulong start = h.VirtualAddress, end = h.VirtualAddress + h.FileSize; // past FileSize: zero-fill, anonymous
            var pieces = new List<(ulong, ulong)>();
            if (relroEnd > relroStart && start < relroEnd && relroStart < end)
            {
                // RELRO inside a read-only segment: keep its pages; what lies around it is still released.
                pieces.Add((start, relroStart));
                pieces.Add((relroEnd, end));
            }
            else pieces.Add((start, end));
            foreach (var (s, e) in pieces)
            {
                if (headerPage >= s && headerPage < e)
                {
                    AddWholePages(ranges, h, bias, s, headerPage, page);
                    AddWholePages(ranges, h, bias, headerPage + page, e, page);
                }
                else AddWholePages(ranges, h, bias, s, e, page);
            }
        }
        return ranges;
    }

    /// <summary>Adds the pages wholly inside [start, end) of segment <paramref name="h"/> (rounded inwards).</summary>
    private static void AddWholePages(List<Range> ranges, in ProgramHeader h, ulong bias, ulong start, ulong end, ulong page)
    {
        ulong s = (start + page - 1) / page * page, e = end / page * page;
        if (e > s) ranges.Add(new Range((nuint)(bias + s), (nuint)(e - s), (long)(h.Offset + s - h.VirtualAddress)));
    }
}

namespace Flint.Sys;

/// <summary>
/// Lets go of the pages of a private, read-only file mapping that still hold the file's bytes. MADV_DONTNEED on a
/// private file mapping throws away whatever the process wrote there (a page made writable, written and made
/// read-only again is an anonymous copy): the next access maps the file's page instead. So a page is released only
/// when it reads the same as the file at that offset; then getting the file's page back changes nothing, whether
/// the page was ever copied or not. What differs (the NativeAOT runtime's GS cookie, written into .rodata at
/// start-up) stays as it is.
/// </summary>
// SAFETY: reads whole aligned pages of the caller's read-only mapping; releases only pages equal to the file.
public static unsafe class PrivateFilePages
{
    private const int Page = 4096;
    /// <summary>The file is read and compared 64 KiB at a time.</summary>
    private const int Chunk = 16 * Page;

    /// <summary>
    /// Releases the pages of [<paramref name="start"/>, +<paramref name="length"/>) (whole pages of a private file
    /// mapping of <paramref name="fd"/> at <paramref name="fileOffset"/>) whose bytes equal the file's; returns the
    /// bytes released. Reads every page of the range (a page not resident faults in from the page cache and is
    /// released again). The whole range is compared first and then released in as few calls as the pages that differ
    /// allow: each MADV_DONTNEED of mapped pages costs a TLB flush, 0.3 ms on the development VM, so one per 64 KiB
    /// took 25 ms for flint's 5.4 MB where one call takes 0.2 ms. A page is assumed not to change between its compare
    /// and its release (a few ms): in a read-only mapping only a thread that makes it writable first can write it, and
    /// the callers run after start-up, when nothing does that.
    /// </summary>
    public static long ReleaseUnwritten(int fd, nuint start, nuint length, long fileOffset)
    {
        if (start % Page != 0 || length % Page != 0 || fileOffset % Page != 0 || length == 0) return 0;
        var runs = new List<(nuint Start, nuint Length)>();
        // SAFETY: a private anonymous buffer of Chunk bytes, unmapped below; the file is read into it, never past it.
        void* buffer = Libc.mmap(null, Chunk, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        if ((nint)buffer == Libc.MAP_FAILED) return 0;
        try
        {
            for (nuint done = 0; done < length; done += Chunk)
            {
                int n = (int)Math.Min((nuint)Chunk, length - done);
                int got = ReadFully(fd, buffer, n, fileOffset + (long)done);
                // SAFETY: the caller's range is mapped and readable (code or read-only data of the executable, or the
                // test's mapping); n bytes of it from start + done, and got <= n bytes of the buffer were read.
                AddEqualPages(runs, start + done, new ReadOnlySpan<byte>(buffer, got), n);
                if (got < n) break; // the file ends here: nothing past it is the file's
            }
        }
        finally
        {
            // SAFETY: the buffer mapped above, its whole length.
            Libc.munmap(buffer, Chunk);
        }
        long released = 0;
        foreach (var (at, bytes) in runs)
        {
            // SAFETY: whole pages of a private file mapping that read the same as the file: dropping them and mapping
            // the file's page again on the next access leaves every byte as it was.
            if (Libc.madvise((void*)at, bytes, Libc.MADV_DONTNEED) == 0) released += (long)bytes;
        }
        return released;
    }

    /// <summary>
    /// Adds the pages at <paramref name="memory"/> (<paramref name="length"/> bytes) whose bytes equal
    /// <paramref name="file"/>'s at the same place to <paramref name="runs"/>, joining a run that ends where they
    /// start; a page the file does not wholly cover is left out.
    /// </summary>
    private static void AddEqualPages(List<(nuint Start, nuint Length)> runs, nuint memory, ReadOnlySpan<byte> file, int length)
    {
        for (int at = 0; at < length; at += Page)
        {
            // SAFETY: [memory + at, +Page) lies in the caller's readable range (length is whole pages of it).
            if (at + Page > file.Length || !new ReadOnlySpan<byte>((void*)(memory + (nuint)at), Page).SequenceEqual(file.Slice(at, Page)))
                continue;
            nuint page = memory + (nuint)at;
            if (runs.Count > 0 && runs[^1].Start + runs[^1].Length == page) runs[^1] = (runs[^1].Start, runs[^1].Length + Page);
            else runs.Add((page, Page));
        }
    }

    /// <summary>pread until <paramref name="count"/> bytes, the end of the file or an error; how many bytes were read.</summary>
    private static int ReadFully(int fd, void* buffer, int count, long offset)
    {
        int got = 0;
        while (got < count)
        {
            // SAFETY: buffer has count bytes; each read goes after what is already there.
            nint r = Libc.pread(fd, (byte*)buffer + got, (nuint)(count - got), offset + got);
            if (r < 0 && Libc.Errno == Libc.EINTR) continue;
            if (r <= 0) break;
            got += (int)r;
        }
        return got;
    }
}

namespace Flint.Sys;

/// <summary>
/// Lets go of the pages of a private, read-only file mapping that still hold the file's bytes. MADV_DONTNEED on a
/// private file mapping throws away whatever the process wrote there (a page made writable, written and made
/// read-only again is an anonymous copy): the next access maps the file's page instead. So a page is released only
/// when it reads the same as the file at that offset; then getting the file's page back changes nothing, whether
/// the page was ever copied or not. What differs (the NativeAOT runtime's GS cookie, written into .rodata at
/// start-up) stays as it is.
/// </summary>
public static unsafe class PrivateFilePages
{
    private const int Page = 4096;
    /// <summary>
    /// Compared and released 64 KiB at a time: the kernel maps file pages in 64 KiB blocks around a fault anyway, and a
    /// page is released within one chunk's compare of being found equal to the file.
    /// </summary>
    private const int Chunk = 16 * Page;

    /// <summary>
    /// Releases the pages of [<paramref name="start"/>, +<paramref name="length"/>) (whole pages of a private file
    /// mapping of <paramref name="fd"/> at <paramref name="fileOffset"/>) whose bytes equal the file's; returns the
    /// bytes released. Reads every page of the range (a page not resident faults in from the page cache and is
    /// released again). A page is assumed not to change while it is compared: in a read-only mapping only a thread
    /// that makes it writable first can write it, and the callers run after start-up, when nothing does that.
    /// </summary>
    public static long ReleaseUnwritten(int fd, nuint start, nuint length, long fileOffset)
    {
        if (start % Page != 0 || length % Page != 0 || fileOffset % Page != 0 || length == 0) return 0;
        // SAFETY: a private anonymous buffer of Chunk bytes, unmapped below; the file is read into it, never past it.
        void* buffer = Libc.mmap(null, Chunk, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        if ((nint)buffer == Libc.MAP_FAILED) return 0;
        long released = 0;
        try
        {
            for (nuint done = 0; done < length; done += Chunk)
            {
                int n = (int)Math.Min((nuint)Chunk, length - done);
                int got = ReadFully(fd, buffer, n, fileOffset + (long)done);
                // SAFETY: the caller's range is mapped and readable (code or read-only data of the executable, or the
                // test's mapping); n bytes of it from start + done, and got <= n bytes of the buffer were read.
                released += ReleaseEqualPages((byte*)(start + done), new ReadOnlySpan<byte>(buffer, got), n);
                if (got < n) break; // the file ends here: nothing past it is the file's
            }
        }
        finally
        {
            // SAFETY: the buffer mapped above, its whole length.
            Libc.munmap(buffer, Chunk);
        }
        return released;
    }

    /// <summary>
    /// Releases each run of pages of <paramref name="memory"/> (<paramref name="length"/> bytes) whose bytes equal
    /// <paramref name="file"/>'s at the same place; a page the file does not wholly cover is kept.
    /// </summary>
    private static long ReleaseEqualPages(byte* memory, ReadOnlySpan<byte> file, int length)
    {
        long released = 0;
        int runStart = -1;
        for (int at = 0; at < length; at += Page)
        {
            // SAFETY: [memory + at, +Page) lies in the caller's readable range (length is whole pages of it).
            bool same = at + Page <= file.Length && new ReadOnlySpan<byte>(memory + at, Page).SequenceEqual(file.Slice(at, Page));
            if (same) { if (runStart < 0) runStart = at; continue; }
            if (runStart >= 0) released += Release(memory + runStart, at - runStart);
            runStart = -1;
        }
        if (runStart >= 0) released += Release(memory + runStart, length - runStart);
        return released;
    }

    private static long Release(byte* at, int bytes) =>
        // SAFETY: whole pages of a private file mapping that read the same as the file: dropping them and mapping the
        // file's page again on the next access leaves every byte as it was.
        Libc.madvise(at, (nuint)bytes, Libc.MADV_DONTNEED) == 0 ? bytes : 0;

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

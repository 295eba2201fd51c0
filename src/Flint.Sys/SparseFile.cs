namespace Flint.Sys;

/// <summary>
/// The written extents of a sparse file, found with lseek SEEK_DATA / SEEK_HOLE: what a Diff snapshot's memory file
/// holds (every other range is a hole). Filesystems without hole support report the whole file as one extent,
/// which is still correct (a merge then copies zeroes over zeroes' places too), only slower.
/// </summary>
public static class SparseFile
{
    /// <summary>
    /// The next data extent at or after <paramref name="from"/>: true with [start, end), false when only a hole (or
    /// nothing) is left. Throws <see cref="SysException"/> on any other lseek failure.
    /// </summary>
    public static bool NextData(int fd, long from, out long start, out long end)
    {
        start = end = 0;
        long s = Libc.lseek(fd, from, Libc.SEEK_DATA);
        if (s < 0)
        {
            if (Libc.Errno == Libc.ENXIO) return false; // past the last data: the rest is a hole
            throw SysException.Last("lseek(SEEK_DATA)");
        }
        long e = Libc.lseek(fd, s, Libc.SEEK_HOLE);
        if (e < 0) throw SysException.Last("lseek(SEEK_HOLE)");
        start = s;
        end = e;
        return true;
    }

    /// <summary>Every data extent of the file, in order (tests, descriptions; a merge walks <see cref="NextData"/>).</summary>
    public static List<(long Start, long End)> DataExtents(int fd)
    {
        var list = new List<(long, long)>();
        long at = 0;
        while (NextData(fd, at, out long s, out long e))
        {
            list.Add((s, e));
            at = e;
        }
        return list;
    }

    /// <summary><see cref="DataExtents(int)"/> of the file at <paramref name="path"/>.</summary>
    public static List<(long Start, long End)> DataExtents(string path)
    {
        int fd = Libc.Open(path, Libc.O_RDONLY);
        if (fd < 0) throw SysException.Last($"open {path}");
        try { return DataExtents(fd); }
        finally { Libc.close(fd); }
    }

    /// <summary>
    /// The bytes the file system allocated for the file (st_blocks * 512, what <c>du</c> shows): for a sparse memory
    /// file, about the data it holds, whatever its length.
    /// </summary>
    // SAFETY: fstat fills a 256-byte stack buffer (struct stat is 144 bytes); only st_blocks is read from it.
    public static unsafe long AllocatedBytes(string path)
    {
        int fd = Libc.Open(path, Libc.O_RDONLY);
        if (fd < 0) throw SysException.Last($"open {path}");
        try
        {
            // struct stat on x86_64: st_blocks (512-byte units) is the u64 at offset 64 of its 144 bytes.
            byte* st = stackalloc byte[256];
            // SAFETY: fstat writes at most sizeof(struct stat) (144) bytes into the 256-byte buffer.
            if (Libc.fstat(fd, st) < 0) throw SysException.Last($"fstat {path}");
            return (long)(*(ulong*)(st + 64) * 512);
        }
        finally { Libc.close(fd); }
    }
}

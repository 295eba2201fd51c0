using Flint.Sys;

namespace Flint.SnapshotTool;

/// <summary>
/// Merges a Diff snapshot's memory file onto its base (Firecracker's <c>snapshot-editor edit-memory rebase</c>): every
/// data extent of the diff (found with SEEK_DATA/SEEK_HOLE; holes are the pages the diff did not save) is copied to
/// the same offset of the base, which then describes guest RAM at the diff's moment. Unlike snapshot-editor, files
/// that cannot belong together are refused before anything is written: another size (another VM's memory), or a
/// size that is not whole pages.
/// </summary>
// SAFETY: pread/pwrite get a pinned managed buffer and never more than its length.
public static unsafe class MemoryRebase
{
    private const int CopyChunk = 1 << 20;

    /// <returns>Bytes copied from the diff.</returns>
    public static long Rebase(string basePath, string diffPath, uint pageSize = 4096)
    {
        if (pageSize < 4096 || (pageSize & (pageSize - 1)) != 0)
            throw new ToolException($"Invalid page size {pageSize}: a power of two, at least 4096.", ExitCodes.Usage);
        int baseFd = Libc.Open(basePath, Libc.O_RDWR);
        if (baseFd < 0) throw ToolException.Os("Could not open memory file", Libc.Errno);
        try
        {
            int diffFd = Libc.Open(diffPath, Libc.O_RDONLY);
            if (diffFd < 0) throw ToolException.Os("Could not open diff file", Libc.Errno);
            try { return Copy(baseFd, diffFd, pageSize); }
            finally { Libc.close(diffFd); }
        }
        finally { Libc.close(baseFd); }
    }

    private static long Copy(int baseFd, int diffFd, uint pageSize)
    {
        long baseSize = Size(baseFd, "memory");
        long diffSize = Size(diffFd, "diff");
        if (diffSize != baseSize)
            throw new ToolException($"The diff file holds {diffSize} bytes and the memory file {baseSize}: a diff merges only onto the memory file of the same VM.");
        if (diffSize % pageSize != 0)
            throw new ToolException($"The diff file's size {diffSize} is not a whole number of {pageSize}-byte pages.");
        var buf = GC.AllocateUninitializedArray<byte>(CopyChunk, pinned: true);
        long copied = 0, at = 0;
        while (true)
        {
            bool more;
            long start, end;
            try { more = SparseFile.NextData(diffFd, at, out start, out end); }
            catch (SysException e) { throw ToolException.Os("Failed to seek data in diff file", e.Errno); }
            if (!more) break;
            end = Math.Min(end, diffSize);
            for (long off = start; off < end;)
            {
                int want = (int)Math.Min(CopyChunk, end - off);
                fixed (byte* p = buf)
                {
                    // SAFETY: p is the pinned buffer of CopyChunk bytes and want <= CopyChunk.
                    nint n = Libc.pread(diffFd, p, (nuint)want, off);
                    if (n < 0) { if (Libc.Errno == Libc.EINTR) continue; throw ToolException.Os("Failed to read the diff file", Libc.Errno); }
                    if (n == 0) throw new ToolException("The diff file shrank while it was merged.");
                    WriteAll(baseFd, p, (int)n, off);
                    off += n;
                    copied += n;
                }
            }
            at = end;
        }
        if (Libc.fsync(baseFd) < 0) throw ToolException.Os("Failed to sync the memory file", Libc.Errno);
        return copied;
    }

    private static void WriteAll(int fd, byte* p, int len, long off)
    {
        while (len > 0)
        {
            // SAFETY: [p, p+len) lies inside the pinned copy buffer (len shrinks as p advances).
            nint n = Libc.pwrite(fd, p, (nuint)len, off);
            if (n < 0) { if (Libc.Errno == Libc.EINTR) continue; throw ToolException.Os("Failed to write the memory file", Libc.Errno); }
            if (n == 0) throw ToolException.Os("Failed to write the memory file", 28);
            p += n;
            len -= (int)n;
            off += n;
        }
    }

    private static long Size(int fd, string which)
    {
        long s = Libc.lseek(fd, 0, Libc.SEEK_END);
        if (s < 0) throw ToolException.Os($"Failed to get metadata for {which} file", Libc.Errno);
        return s;
    }
}

using Flint.Sys;

namespace Flint.Memory;

/// <summary>
/// A Full snapshot's memory file, written sparse: the file is exactly <see cref="TotalSize"/> bytes in the memory
/// file layout (regions back to back), but a page that holds only zeroes is left a hole, so a 1 GiB guest that used
/// 40 MiB costs about 40 MiB of disk. Holes read as zeroes, so the file loads as any Full file does (File backend,
/// Uffd handler, flint-snapshot).
/// </summary>
// SAFETY: the dump reads only whole pages inside each region (mincore and the zero check walk the region's own length) and writes them with pwrite at their file offsets.
public sealed unsafe partial class GuestMemory
{
    /// <summary>
    /// Writes every page of guest RAM that is not all zeroes at its offset, and nothing else. Which pages are even
    /// looked at: a page that was never touched reads as zeroes and is not resident, so mincore skips it without
    /// reading it (reading would map it and grow page tables for nothing). Two kinds of memory break that rule and are
    /// read whatever mincore says: memory restored from a file (a page the guest never wrote is the file's, resident or
    /// not; the file's own holes, found with SEEK_DATA, are skipped) and memory behind a Uffd handler (a page not served
    /// yet is the snapshot's: only reading it asks the handler).
    /// As Firecracker, an existing file of the right size is not truncated: it may be the very file this VM was
    /// restored from, mapped MAP_PRIVATE, and truncating it would take the pages the guest has not touched from under
    /// it. In such a file, data where this dump leaves a hole is overwritten with zeroes (pwrite: the filters written
    /// for Firecracker allow no fallocate to punch holes).
    /// </summary>
    /// <returns>Pages written with data (the rest are holes).</returns>
    public ulong DumpToFile(string path)
    {
        int fd = OpenDumpFile(path, out bool keptContent);
        try
        {
            ulong offset = 0, written = 0;
            byte[]? zeroes = keptContent ? new byte[ZeroChunk] : null;
            foreach (var r in _regions)
            {
                var candidates = new ulong[DirtyPageBitmap.WordsFor(r.Size / PageSize)];
                PagesThatMayHoldData(r, offset, candidates);
                written += WriteNonZeroRuns(fd, r, candidates, offset, zeroes);
                offset += r.Size;
            }
            written += DumpHotplugArea(fd, offset, zeroes);
            Sync(fd);
            return written;
        }
        finally { Libc.close(fd); }
    }

    private const int ZeroChunk = 64 << 10;

    /// <summary>
    /// Sets the bit of each page of <paramref name="r"/> that may hold something else than zeroes (64 pages a word).
    /// </summary>
    private void PagesThatMayHoldData(GuestRegion r, ulong fileOffset, Span<ulong> bits)
    {
        ulong pages = r.Size / PageSize;
        if (_backing is UffdLink)
        {
            SetPages(bits, 0, pages);
            return;
        }
        ResidentPages(r, bits);
        if (_backing is SourceFile src) OrSourceData(src.Fd, fileOffset, r.Size, bits);
    }

    /// <summary>Sets the pages of the region at [fileOffset, +size) of the source file that hold data there.</summary>
    private static void OrSourceData(int fd, ulong fileOffset, ulong size, Span<ulong> bits)
    {
        long at = (long)fileOffset, end = (long)(fileOffset + size);
        try
        {
            while (at < end && SparseFile.NextData(fd, at, out long s, out long e) && s < end)
            {
                long from = Math.Max(s, at), to = Math.Min(e, end);
                ulong first = (ulong)(from - (long)fileOffset) / PageSize;
                ulong last = ((ulong)(to - (long)fileOffset) + PageSize - 1) / PageSize;
                SetPages(bits, first, last - first);
                at = e;
            }
        }
        catch (SysException)
        {
            // A file system that cannot say where data is: every page may hold some.
            SetPages(bits, 0, size / PageSize);
        }
    }

    private static void SetPages(Span<ulong> bits, ulong first, ulong count)
    {
        for (ulong p = first; p < first + count; p++) bits[(int)(p >> 6)] |= 1UL << (int)(p & 63);
    }

    /// <summary>
    /// Walks the region in runs of pages that hold data (written with one pwrite each) and pages that do not (left
    /// holes; zeroed where a kept file has data, when <paramref name="zeroes"/> is given).
    /// </summary>
    private static ulong WriteNonZeroRuns(int fd, GuestRegion r, ReadOnlySpan<ulong> candidates, ulong fileOffset, byte[]? zeroes)
    {
        ulong pages = r.Size / PageSize, written = 0, runStart = 0;
        bool runData = false;
        for (ulong p = 0; p <= pages; p++)
        {
            bool data = p < pages && (candidates[(int)(p >> 6)] & (1UL << (int)(p & 63))) != 0 && !IsZeroPage(r.Host + p * PageSize);
            if (p != pages && (p == 0 || data == runData))
            {
                runData = data;
                continue;
            }
            if (runData)
            {
                WriteRange(fd, r.Host + runStart * PageSize, (p - runStart) * PageSize, fileOffset + runStart * PageSize);
                written += p - runStart;
            }
            else if (zeroes != null)
            {
                ZeroExistingData(fd, fileOffset + runStart * PageSize, fileOffset + p * PageSize, zeroes);
            }
            runStart = p;
            runData = data;
        }
        return written;
    }

    /// <summary>True when the page at <paramref name="page"/> (resident, or one the caller may fault in) is all zeroes.</summary>
    private static bool IsZeroPage(byte* page) =>
        // SAFETY: one whole page inside a region's mapping, which stays mapped until Dispose; only read.
        new ReadOnlySpan<byte>(page, (int)PageSize).IndexOfAnyExcept((byte)0) < 0;

    /// <summary>Overwrites with zeroes whatever data the file holds in [from, to) (its holes already read as zeroes).</summary>
    private static void ZeroExistingData(int fd, ulong from, ulong to, byte[] zeroes)
    {
        long at = (long)from;
        while (at < (long)to)
        {
            bool more;
            long s, e;
            try { more = SparseFile.NextData(fd, at, out s, out e); }
            catch (SysException) { (more, s, e) = (true, at, (long)to); } // no SEEK_DATA here: zero it all
            if (!more || s >= (long)to) return;
            long a = Math.Max(s, at), b = Math.Min(e, (long)to);
            fixed (byte* z = zeroes)
            {
                for (long o = a; o < b; o += zeroes.Length)
                    WriteRange(fd, z, (ulong)Math.Min(zeroes.Length, b - o), (ulong)o);
            }
            at = b;
        }
    }

    /// <summary>The memory file a restored VM's RAM is mapped from, open for as long as the mappings live.</summary>
    private sealed class SourceFile(int fd) : IDisposable
    {
        private int _fd = fd;
        public int Fd => _fd;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _fd, -1) is var f and >= 0) Libc.close(f);
        }
    }
}

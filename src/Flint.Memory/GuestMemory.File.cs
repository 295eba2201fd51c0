using Flint.Sys;

namespace Flint.Memory;

/// <summary>
/// Guest RAM and snapshot memory files. The file holds the regions back to back in guest-physical order (as
/// Firecracker's does), so region i starts at the sum of the sizes before it.
/// </summary>
// SAFETY: regions are mmapped from the memory file with their exact sizes, unmapped once in Dispose.
public sealed unsafe partial class GuestMemory
{
    /// <summary>
    /// Maps each range MAP_PRIVATE from <paramref name="path"/> at its offset in the file: pages are read lazily, on the
    /// guest's first touch, and copied on its first write, so the restore takes the same time whatever the memory
    /// size, and clones of one snapshot share the file's page cache. The file must be exactly as large as the ranges.
    /// </summary>
    /// <param name="hotplug">The hotplug area the file holds after boot RAM (mapped PROT_NONE; the restored device
    /// plugs its slots), or null.</param>
    public static GuestMemory CreateFromFile(IEnumerable<(ulong GuestBase, ulong Size)> ranges, string path, HotplugLayout? hotplug = null)
    {
        var sorted = ranges.OrderBy(r => r.GuestBase).ToArray();
        ulong total = 0;
        foreach (var (gb, size) in sorted)
        {
            if (size == 0 || gb % PageSize != 0 || size % PageSize != 0)
                throw new ArgumentException($"region 0x{gb:x}+0x{size:x} is not page aligned");
            total = checked(total + size);
        }
        int fd = Libc.Open(path, Libc.O_RDONLY);
        if (fd < 0) throw SysException.Last($"open {path}");
        var list = new List<GuestRegion>();
        try
        {
            long len = Libc.lseek(fd, 0, 2 /* SEEK_END */);
            if (len < 0) throw SysException.Last($"lseek {path}");
            ulong fileSize = checked(total + (hotplug?.Size ?? 0));
            if ((ulong)len != fileSize)
                throw new GuestMemoryFileException($"The memory file {path} holds {len} bytes, the snapshot's guest memory is {fileSize} bytes.");
            ulong offset = 0;
            foreach (var (gb, size) in sorted)
            {
                // SAFETY: a new private mapping of `size` bytes of the file at `offset` (inside the file: checked
                // above); the region owns it and unmaps it on Dispose. A write copies the page, never the file.
                void* p = Libc.mmap(null, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE,
                    Libc.MAP_PRIVATE | Libc.MAP_NORESERVE, fd, (long)offset);
                if ((nint)p == Libc.MAP_FAILED) throw SysException.Last($"mmap {path} ({size >> 20} MiB at offset {offset})");
                Libc.madvise(p, (nuint)size, Libc.MADV_DONTDUMP);
                list.Add(new GuestRegion(gb, size, (byte*)p));
                offset += size;
            }
        }
        catch
        {
            foreach (var r in list) Libc.munmap(r.Host, (nuint)r.Size);
            Libc.close(fd);
            throw;
        }
        // The fd stays open with the mappings: a Full snapshot of this VM asks it where the file has data (a page
        // the guest never touched is the file's, whether or not it is in the page cache now).
        var memory = new GuestMemory(list.ToArray(), fileBacked: true) { _backing = new SourceFile(fd) };
        if (hotplug is { } h)
        {
            try { memory.RestoreHotplugFromFile(h, fd); }
            catch
            {
                memory.Dispose();
                throw;
            }
        }
        return memory;
    }

    /// <summary>
    /// A Diff snapshot's memory file: the file is set to the full layout's size and only the dirty pages are written,
    /// each at its offset in that layout; the rest stay holes (or, when the file already held a memory file of the
    /// same size, keep what it held: a diff written over its base merges into it, as in Firecracker). A page is dirty
    /// when <paramref name="extraDirty"/> (KVM's dirty log, or mincore) says so for region i, or when the VMM wrote it
    /// (<see cref="MarkDirty"/>). On success the VMM's bitmap is cleared; on failure KVM's log (which reading cleared)
    /// is kept in it, so the next Diff still holds those pages.
    /// </summary>
    /// <param name="extraDirty">Fills the bitmap of memory slot i (64 pages a word, KVM_GET_DIRTY_LOG's layout): boot
    /// region i is slot i, plugged hotplug slot j is <see cref="HotplugArea.FirstSlot"/> + j (unplugged ones are holes).</param>
    /// <returns>Pages written.</returns>
    public ulong DumpDirtyToFile(string path, Action<int, GuestRegion, Span<ulong>> extraDirty)
    {
        var logs = new ulong[_regions.Length][];
        for (int i = 0; i < _regions.Length; i++) logs[i] = new ulong[DirtyPageBitmap.WordsFor(_regions[i].Size / PageSize)];
        ulong[]?[] hotplugLogs = [];
        ulong pages = 0;
        try
        {
            for (int i = 0; i < _regions.Length; i++) extraDirty(i, _regions[i], logs[i]);
            hotplugLogs = HotplugDirtyLogs(extraDirty);
            int fd = OpenDumpFile(path, out _);
            try
            {
                ulong offset = 0;
                for (int i = 0; i < _regions.Length; i++)
                {
                    var r = _regions[i];
                    var bits = (ulong[])logs[i].Clone();
                    r.Dirty?.OrInto(bits);
                    pages += WriteDirtyRuns(fd, r, bits, offset);
                    offset += r.Size;
                }
                pages += DumpHotplugDirty(fd, offset, hotplugLogs);
                Sync(fd);
            }
            finally { Libc.close(fd); }
        }
        catch
        {
            if (DirtyTracking)
            {
                for (int i = 0; i < _regions.Length; i++) _regions[i].Dirty!.OrFrom(logs[i]);
                KeepHotplugDirtyLogs(hotplugLogs);
            }
            throw;
        }
        ResetDirty();
        return pages;
    }

    /// <summary>Writes each run of consecutive dirty pages of <paramref name="r"/> with one pwrite.</summary>
    private static ulong WriteDirtyRuns(int fd, GuestRegion r, ReadOnlySpan<ulong> bits, ulong fileOffset)
    {
        ulong pageCount = r.Size / PageSize, written = 0;
        ulong p = 0;
        while (p < pageCount)
        {
            if ((bits[(int)(p >> 6)] & (1UL << (int)(p & 63))) == 0) { p++; continue; }
            ulong start = p;
            while (p < pageCount && (bits[(int)(p >> 6)] & (1UL << (int)(p & 63))) != 0) p++;
            WriteRange(fd, r.Host + start * PageSize, (p - start) * PageSize, fileOffset + start * PageSize);
            written += p - start;
        }
        return written;
    }

    /// <summary>
    /// Opens (creating, mode 0666 less the umask) without truncating, then sets the full layout's size.
    /// <paramref name="keptContent"/>: the file already had that size and keeps what it held (else it is all holes).
    /// </summary>
    private int OpenDumpFile(string path, out bool keptContent)
    {
        int fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_CREAT, 0x1b6);
        if (fd < 0) throw MemoryFileIoException.Last("open");
        try
        {
            long size = Libc.lseek(fd, 0, Libc.SEEK_END);
            if (size < 0) throw MemoryFileIoException.Last("get_metadata");
            // Another size: a stale file; its bytes must not show through the holes of a diff.
            keptContent = (ulong)size == MemoryFileSize;
            if (!keptContent && Libc.ftruncate(fd, 0) < 0) throw MemoryFileIoException.Last("truncate");
            if (Libc.ftruncate(fd, (long)MemoryFileSize) < 0) throw MemoryFileIoException.Last("set_length");
            return fd;
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }

    private static void WriteRange(int fd, byte* src, ulong len, ulong offset)
    {
        while (len > 0)
        {
            nuint chunk = (nuint)Math.Min(len, 1UL << 30);
            // SAFETY: [src, src+chunk) lies inside a region's mapping (callers pass ranges of one region), which stays
            // mapped until Dispose; pwrite only reads it.
            nint n = Libc.pwrite(fd, src, chunk, (long)offset);
            if (n < 0)
            {
                if (Libc.Errno == Libc.EINTR) continue;
                throw MemoryFileIoException.Last("write");
            }
            if (n == 0) throw new MemoryFileIoException("write", 28);
            src += n;
            len -= (ulong)n;
            offset += (ulong)n;
        }
    }

    private static void Sync(int fd)
    {
        if (Libc.fsync(fd) < 0) throw MemoryFileIoException.Last("sync_all");
    }
}

/// <summary>
/// A memory file write that failed: the step (Firecracker's words: open, truncate, set_length, write, sync_all) and
/// the OS's text as Rust words it ("No space left on device (os error 28)").
/// </summary>
public sealed class MemoryFileIoException(string operation, int errno)
    : IOException($"{Libc.StrError(errno)} (os error {errno})")
{
    public string Operation { get; } = operation;

    public static MemoryFileIoException Last(string operation) => new(operation, Libc.Errno);
}

/// <summary>A memory file that does not fit the snapshot it is loaded with.</summary>
public sealed class GuestMemoryFileException(string message) : IOException(message);

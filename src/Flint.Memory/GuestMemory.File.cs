using Flint.Sys;

namespace Flint.Memory;

/// <summary>
/// Guest RAM and snapshot memory files. The file holds the regions back to back in guest-physical order (as
/// Firecracker's does), so region i starts at the sum of the sizes before it.
/// </summary>
public sealed unsafe partial class GuestMemory
{
    /// <summary>
    /// Maps each range MAP_PRIVATE from <paramref name="path"/> at its offset in the file: pages are read lazily, on the
    /// guest's first touch, and copied on its first write, so the restore takes the same time whatever the memory
    /// size, and clones of one snapshot share the file's page cache. The file must be exactly as large as the ranges.
    /// </summary>
    public static GuestMemory CreateFromFile(IEnumerable<(ulong GuestBase, ulong Size)> ranges, string path)
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
            if ((ulong)len != total)
                throw new GuestMemoryFileException($"The memory file {path} holds {len} bytes, the snapshot's guest memory is {total} bytes.");
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
            throw;
        }
        finally
        {
            // The mappings keep the file's pages; the fd is not needed once they exist.
            Libc.close(fd);
        }
        return new GuestMemory(list.ToArray(), fileBacked: true);
    }

    /// <summary>
    /// Writes every region to <paramref name="path"/> (created or truncated) back to back: a Full snapshot's memory
    /// file. Zero pages are written too, so the file is exactly <see cref="TotalSize"/> bytes and loads as is.
    /// </summary>
    public void DumpToFile(string path)
    {
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        f.SetLength((long)TotalSize);
        long offset = 0;
        foreach (var r in _regions)
        {
            ulong done = 0;
            while (done < r.Size)
            {
                int n = (int)Math.Min(r.Size - done, 1UL << 30);
                // SAFETY: [Host + done, + n) lies inside the region's mapping (done + n <= Size), live until Dispose.
                RandomAccess.Write(f.SafeFileHandle, new ReadOnlySpan<byte>(r.Host + done, n), offset + (long)done);
                done += (ulong)n;
            }
            offset += (long)r.Size;
        }
        f.Flush(flushToDisk: true);
    }
}

/// <summary>A memory file that does not fit the snapshot it is loaded with.</summary>
public sealed class GuestMemoryFileException(string message) : IOException(message);

using Flint.Sys;

namespace Flint.Memory.Tests;

/// <summary>
/// <see cref="PrivateFilePages.ReleaseUnwritten"/> releases the pages of a private file mapping that are still the
/// file's, and keeps a page the process wrote, as the NativeAOT runtime writes its GS cookie into flint's .rodata at
/// start-up (mprotect read-write, write, mprotect read-only). MADV_DONTNEED on the whole range, the release first tried
/// (8b16ffb, reverted), threw that page away and the file's came back: flint aborted in the nested-KVM run.
/// </summary>
public sealed unsafe class PrivateFilePagesTests : IDisposable
{
    private const int Page = 4096, Pages = 40; // more than two 64 KiB chunks
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"flint-pfp-{Guid.NewGuid():N}");
    private readonly int _fd;
    private readonly byte* _map;

    public PrivateFilePagesTests()
    {
        var data = new byte[Pages * Page];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(i * 7 + i / Page);
        File.WriteAllBytes(_path, data);
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(_path + "\0")) _fd = Libc.open(p, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        Assert.True(_fd >= 0);
        // SAFETY: a private read-only mapping of the whole file, unmapped in Dispose.
        _map = (byte*)Libc.mmap(null, Pages * Page, Libc.PROT_READ, Libc.MAP_PRIVATE, _fd, 0);
        Assert.NotEqual(Libc.MAP_FAILED, (nint)_map);
        long sum = 0;
        for (int i = 0; i < Pages * Page; i += Page) sum += _map[i]; // every page resident
        Assert.NotEqual(-1, sum);
    }

    public void Dispose()
    {
        Libc.munmap(_map, Pages * Page);
        Libc.close(_fd);
        File.Delete(_path);
    }

    [Fact]
    public void A_page_written_after_a_trip_through_read_write_keeps_its_bytes()
    {
        // What the runtime does to its GS cookie: the page becomes an anonymous copy in a read-only mapping.
        byte* cookie = _map + 21 * Page + 0x7a0;
        byte before = *cookie;
        Assert.Equal(0, Libc.mprotect(_map + 21 * Page, Page, Libc.PROT_READ | Libc.PROT_WRITE));
        *cookie = (byte)(before ^ 0xff);
        Assert.Equal(0, Libc.mprotect(_map + 21 * Page, Page, Libc.PROT_READ));

        long released = PrivateFilePages.ReleaseUnwritten(_fd, (nuint)_map, Pages * Page, 0);

        Assert.Equal((byte)(before ^ 0xff), *cookie);
        Assert.Equal((Pages - 1) * Page, released);
        // Only the written page is still this process's; the others are back in the page cache alone.
        Assert.Equal(Page / 1024, RssKib((nuint)_map, Pages * Page));
        Assert.Equal(unchecked((byte)((22 * Page + 5) * 7 + 22)), _map[22 * Page + 5]);
    }

    [Fact]
    public void A_page_past_the_end_of_the_file_is_kept()
    {
        // The range names 2 pages more than the file has: the compare stops at the file's end, those pages are kept.
        long released = PrivateFilePages.ReleaseUnwritten(_fd, (nuint)_map, (Pages - 2) * Page, 2 * Page);
        Assert.Equal(0, released); // every page compared at another offset differs
        Assert.Equal(0, PrivateFilePages.ReleaseUnwritten(_fd, (nuint)_map + 1, Page, 0)); // not page-aligned
    }

    /// <summary>Rss of the mappings that start inside [start, +length), from /proc/self/smaps.</summary>
    private static long RssKib(nuint start, nuint length)
    {
        long rss = 0;
        bool inside = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            if (dash > 0 && line.IndexOf(' ') > dash && ulong.TryParse(line.AsSpan(0, dash), System.Globalization.NumberStyles.HexNumber, null, out ulong a))
                inside = a >= start && a < start + length;
            else if (inside && line.StartsWith("Rss:", StringComparison.Ordinal))
                rss += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        }
        return rss;
    }
}

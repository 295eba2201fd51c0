using Flint.Memory;
using Flint.Sys;

namespace Flint.Memory.Tests;

/// <summary>
/// A Full snapshot's memory file is sparse: full length, data only where guest RAM is not zero, never reading pages
/// the guest did not touch; and it still holds exactly guest RAM, whether the RAM is anonymous, restored from a file
/// (whose pages may have left the page cache) or written over a file that held something else.
/// </summary>
public sealed unsafe class FullDumpTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private const ulong P = GuestMemory.PageSize;
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-full-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static List<(long, long)> Pages(params (ulong First, ulong Count)[] runs) =>
        runs.Select(r => ((long)(r.First * P), (long)((r.First + r.Count) * P))).ToList();

    private static int ResidentCount(GuestRegion r)
    {
        var bits = new ulong[DirtyPageBitmap.WordsFor(r.Size / P)];
        GuestMemory.ResidentPages(r, bits);
        return bits.Sum(w => System.Numerics.BitOperations.PopCount(w));
    }

    [Fact]
    public void A_1GiB_guest_that_used_a_few_pages_costs_those_pages_and_untouched_ones_are_not_read()
    {
        // The layout of a 1 GiB VM's RAM as Flint maps it below 4 GiB: one region; a second one above, as larger VMs have.
        using var mem = GuestMemory.Create([(0UL, 1UL << 30), (1UL << 32, 64 * P)]);
        mem.Fill(0, 3 * P, 0x11);                     // pages 0-2: data
        mem.Fill(100 * P, P, 0);                      // page 100: touched, but zero
        mem.Write<ulong>(4096 * P + 8, 0xfeed);       // page 4096: data
        mem.Fill((1UL << 32) + 5 * P, P, 0x22);       // region 1, page 5
        int residentBefore = ResidentCount(mem.Regions[0]);

        string f = PathOf("full.mem");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        ulong written = mem.DumpToFile(f);
        output.WriteLine($"Full dump of 1 GiB + 256 KiB: {sw.ElapsedMilliseconds} ms, {written} pages written, " +
            $"file {new FileInfo(f).Length} bytes long, {SparseFile.AllocatedBytes(f)} bytes allocated");

        Assert.Equal(5UL, written);
        Assert.Equal((long)mem.TotalSize, new FileInfo(f).Length);
        ulong r1 = (1UL << 30) / P; // region 1's first page in the file
        Assert.Equal(Pages((0, 3), (4096, 1), (r1 + 5, 1)), SparseFile.DataExtents(f));
        Assert.True(SparseFile.AllocatedBytes(f) <= 64 * (long)P, $"allocated {SparseFile.AllocatedBytes(f)} bytes");
        // The dump read no page the guest had not touched.
        Assert.Equal(residentBefore, ResidentCount(mem.Regions[0]));

        using var fs = File.OpenRead(f);
        var page = new byte[P];
        fs.Position = 2 * (long)P; fs.ReadExactly(page);
        Assert.All(page, b => Assert.Equal(0x11, b));
        fs.Position = 4096 * (long)P; fs.ReadExactly(page);
        Assert.Equal(0xfeedUL, BitConverter.ToUInt64(page, 8));
        fs.Position = (long)((r1 + 5) * P); fs.ReadExactly(page);
        Assert.All(page, b => Assert.Equal(0x22, b));
    }

    [Fact]
    public void Restored_memory_keeps_the_source_files_pages_even_out_of_the_page_cache()
    {
        // Source file: pages 0-9 data, 10-29 a hole, 30-63 data (page 40 written but zero).
        string src = PathOf("src.mem");
        var original = new byte[64 * P];
        for (int p = 0; p < 64; p++)
            if (p < 10 || (p >= 30 && p != 40)) original.AsSpan(p * (int)P, (int)P).Fill((byte)(p + 1));
        using (var w = File.OpenWrite(src))
        {
            w.Write(original, 0, (int)(10 * P));
            w.Position = (long)(30 * P);
            w.Write(original, (int)(30 * P), (int)(34 * P));
        }
        using var mem = GuestMemory.CreateFromFile([(0UL, 64 * P)], src);
        mem.Fill(12 * P, P, 0x77);     // the guest writes into the hole
        mem.Fill(5 * P, P, 0);         // and zeroes a page the file had
        // Nothing of the file stays cached: only the file itself can say where its data is.
        int fd = Libc.Open(src, Libc.O_RDONLY);
        Assert.Equal(0, Libc.fsync(fd)); // clean pages only leave the cache
        Assert.Equal(0, Libc.posix_fadvise(fd, 0, 0, Libc.POSIX_FADV_DONTNEED));
        Libc.close(fd);

        var resident = new ulong[1];
        GuestMemory.ResidentPages(mem.Regions[0], resident);
        Assert.Equal((1UL << 5) | (1UL << 12), resident[0]); // only the guest's own copies

        string f = PathOf("full.mem");
        mem.DumpToFile(f);

        var expected = (byte[])original.Clone();
        expected.AsSpan(12 * (int)P, (int)P).Fill(0x77);
        expected.AsSpan(5 * (int)P, (int)P).Clear();
        Assert.Equal(expected, File.ReadAllBytes(f));
        Assert.Equal(Pages((0, 5), (6, 4), (12, 1), (30, 10), (41, 23)), SparseFile.DataExtents(f));
    }

    [Fact]
    public void A_file_of_the_same_size_that_held_something_else_ends_up_holding_guest_RAM_exactly()
    {
        using var mem = GuestMemory.Create([(0UL, 32 * P)]);
        mem.Fill(3 * P, P, 0x33);
        string f = PathOf("old.mem");
        File.WriteAllBytes(f, Enumerable.Repeat((byte)0x55, (int)(32 * P)).ToArray());

        mem.DumpToFile(f);

        var expected = new byte[32 * P];
        expected.AsSpan(3 * (int)P, (int)P).Fill(0x33);
        Assert.Equal(expected, File.ReadAllBytes(f));
    }

    [Fact]
    public void A_sparse_full_file_loads_back_as_the_same_memory()
    {
        using var mem = GuestMemory.Create([(0UL, 256 * P)]);
        mem.Fill(7 * P, 2 * P, 0x42);
        mem.Write<uint>(200 * P + 4, 0xdeadbeef);
        string f = PathOf("full.mem");
        mem.DumpToFile(f);

        using var back = GuestMemory.CreateFromFile([(0UL, 256 * P)], f);
        var a = new byte[256 * P];
        var b = new byte[256 * P];
        mem.Read(0, a);
        back.Read(0, b);
        Assert.Equal(a, b);
    }
}

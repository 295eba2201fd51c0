using Flint.Memory;
using Flint.Sys;

namespace Flint.Memory.Tests;

/// <summary>
/// The memory file of a Diff snapshot: full layout size, only the dirty pages written (the union of the "KVM" log
/// given here and the VMM's own bitmap), holes elsewhere, checked with SEEK_DATA/SEEK_HOLE on a real file.
/// </summary>
public sealed class DiffDumpTests : IDisposable
{
    private const ulong P = GuestMemory.PageSize;
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-diff-").FullName;
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 64 * P), (0x100000UL, 130 * P)]);

    public DiffDumpTests()
    {
        _mem.EnableDirtyTracking();
        for (ulong p = 0; p < 64; p++) _mem.Fill(p * P, P, (byte)(p + 1));
        for (ulong p = 0; p < 130; p++) _mem.Fill(0x100000 + p * P, P, (byte)(0x80 + p));
        _mem.ResetDirty();
    }

    public void Dispose()
    {
        _mem.Dispose();
        Directory.Delete(_dir, true);
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>A "KVM dirty log": the given pages of each region.</summary>
    private static Action<int, GuestRegion, Span<ulong>> Log(ulong[] low, ulong[] high) => (i, _, bits) =>
    {
        foreach (var p in i == 0 ? low : high) bits[(int)(p >> 6)] |= 1UL << (int)(p & 63);
    };

    private static List<(long, long)> Pages(params (ulong First, ulong Count)[] runs) =>
        runs.Select(r => ((long)(r.First * P), (long)((r.First + r.Count) * P))).ToList();

    [Fact]
    public void Writes_only_dirty_pages_at_their_offsets_holes_elsewhere()
    {
        _mem.Write(0x5000, new byte[] { 9 });                 // VMM write: low page 5
        _mem.MarkDirty(0x100000 + 64 * P, 2 * P);             // VMM write: high pages 64, 65
        string f = PathOf("diff.mem");
        ulong written = _mem.DumpDirtyToFile(f, Log([6, 7, 63], [0, 129]));

        Assert.Equal(8UL, written);
        Assert.Equal((long)_mem.TotalSize, new FileInfo(f).Length);
        // High region starts at file offset 64 pages.
        Assert.Equal(Pages((5, 3), (63, 2), (64 + 64, 2), (64 + 129, 1)), SparseFile.DataExtents(f));
        var bytes = File.ReadAllBytes(f);
        Assert.Equal(9, bytes[5 * P]);
        Assert.Equal(6 + 1, bytes[6 * P]);
        Assert.Equal(unchecked((byte)(0x80 + 129)), bytes[(64 + 129) * P + P - 1]);
        Assert.Equal(0, bytes[4 * P]); // a hole reads as zeroes
        Assert.All(_mem.Regions, r => Assert.Equal(0UL, r.Dirty!.CountDirty()));
    }

    [Fact]
    public void Nothing_dirty_gives_an_all_hole_file_of_full_size()
    {
        string f = PathOf("empty.mem");
        Assert.Equal(0UL, _mem.DumpDirtyToFile(f, Log([], [])));
        Assert.Equal((long)_mem.TotalSize, new FileInfo(f).Length);
        Assert.Empty(SparseFile.DataExtents(f));
    }

    [Fact]
    public void A_diff_over_a_file_of_the_same_size_merges_into_it()
    {
        string f = PathOf("base.mem");
        _mem.DumpToFile(f);
        _mem.Fill(3 * P, P, 0xee);
        _mem.DumpDirtyToFile(f, Log([], []));
        var bytes = File.ReadAllBytes(f);
        Assert.Equal(0xee, bytes[3 * P]);
        Assert.Equal(3, bytes[2 * P]);              // the base's page, kept
        Assert.Equal(0x80, bytes[64 * P]);
    }

    [Fact]
    public void A_stale_file_of_another_size_is_truncated_first()
    {
        string f = PathOf("stale.mem");
        File.WriteAllBytes(f, Enumerable.Repeat((byte)0x55, (int)(P * 300)).ToArray());
        _mem.DumpDirtyToFile(f, Log([1], []));
        Assert.Equal((long)_mem.TotalSize, new FileInfo(f).Length);
        Assert.Equal(Pages((1, 1)), SparseFile.DataExtents(f));
    }

    [Fact]
    public void A_failed_diff_keeps_the_log_it_read_in_the_VMM_bitmap()
    {
        // Reading KVM's log clears it; when the dump then fails, those pages must still be in the next Diff.
        string f = PathOf("no-such-dir/diff.mem");
        var e = Assert.Throws<MemoryFileIoException>(() => _mem.DumpDirtyToFile(f, Log([4], [7])));
        Assert.Equal("open", e.Operation);
        Assert.Equal("No such file or directory (os error 2)", e.Message);
        Assert.True(_mem.Regions[0].Dirty!.IsDirty(4));
        Assert.True(_mem.Regions[1].Dirty!.IsDirty(7));
    }

    [Fact]
    public void Full_dump_over_the_same_size_file_is_not_truncated_and_matches_memory()
    {
        string f = PathOf("full.mem");
        File.WriteAllBytes(f, new byte[_mem.TotalSize]);
        _mem.DumpToFile(f);
        var bytes = File.ReadAllBytes(f);
        Assert.Equal((long)_mem.TotalSize, bytes.Length);
        Assert.Equal(1, bytes[0]);
        Assert.Equal(64, bytes[63 * P]);
        Assert.Equal(unchecked((byte)(0x80 + 129)), bytes[^1]);
    }

    [Fact]
    public void Resident_pages_reports_touched_pages()
    {
        using var m = GuestMemory.Create([(0UL, 256 * P)]);
        m.Write(10 * P, (byte)1);
        m.Write(200 * P + 5, (byte)1);
        var bits = new ulong[DirtyPageBitmap.WordsFor(256)];
        GuestMemory.ResidentPages(m.Regions[0], bits);
        Assert.NotEqual(0UL, bits[0] & (1UL << 10));
        Assert.NotEqual(0UL, bits[3] & (1UL << (200 - 192)));
        Assert.Equal(0UL, bits[1]); // never touched (anonymous memory: not resident)
    }
}

/// <summary>
/// Firecracker's test_snapshot_overwrite_self: a Full snapshot written over the very memory file the VM was restored
/// from. The mapping is MAP_PRIVATE, so pages the guest never wrote are still the file's: truncating the file first
/// (as Flint did) zeroed them under the guest, and the dump then saved those zeroes.
/// </summary>
public sealed class OverwriteSelfTests : IDisposable
{
    private const ulong P = GuestMemory.PageSize;
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-self-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void A_full_snapshot_over_the_file_it_was_restored_from_keeps_the_untouched_pages()
    {
        string f = Path.Combine(_dir, "vm.mem");
        var original = new byte[64 * P];
        for (int i = 0; i < original.Length; i++) original[i] = (byte)(i / (int)P + 1);
        File.WriteAllBytes(f, original);
        using var mem = GuestMemory.CreateFromFile([(0UL, 64 * P)], f);
        mem.Write(5 * P, (byte)0xee); // copied on write: this page is the mapping's own now

        mem.DumpToFile(f);

        var expected = (byte[])original.Clone();
        expected[5 * P] = 0xee;
        Assert.Equal(expected, File.ReadAllBytes(f));
        Assert.Equal(9, mem.Read<byte>(8 * P)); // the guest still sees the file's page
    }
}

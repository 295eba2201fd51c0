using Flint.Memory;
using Flint.Snapshot;
using Flint.SnapshotTool;
using Flint.Sys;

namespace Flint.SnapshotTool.Tests;

/// <summary>
/// Merging a Diff memory file onto its base with real sparse files: the diff written by GuestMemory's Diff dump,
/// its holes left alone, its data copied at the same offsets.
/// </summary>
public sealed class MemoryRebaseTests : IDisposable
{
    private const ulong P = GuestMemory.PageSize;
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-rebase-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string PathOf(string n) => Path.Combine(_dir, n);

    [Fact]
    public void A_diff_from_guest_memory_merges_onto_its_base_to_the_memory_at_the_diff()
    {
        using var mem = GuestMemory.Create([(0UL, 32 * P), (0x100000UL, 40 * P)]);
        mem.EnableDirtyTracking();
        for (ulong p = 0; p < 32; p++) mem.Fill(p * P, P, (byte)(p + 1));
        for (ulong p = 0; p < 40; p++) mem.Fill(0x100000 + p * P, P, (byte)(100 + p));
        string baseFile = PathOf("base.mem"), diffFile = PathOf("diff.mem");
        mem.DumpToFile(baseFile);
        mem.ResetDirty();

        mem.Fill(7 * P, 2 * P, 0xaa);             // low pages 7, 8
        mem.Write(0x100000 + 39 * P + 100, 0xbbbbbbbbUL); // the last high page
        mem.DumpDirtyToFile(diffFile, (_, _, _) => { });
        Assert.Equal(2, SparseFile.DataExtents(diffFile).Count);

        long copied = MemoryRebase.Rebase(baseFile, diffFile);
        Assert.Equal((long)(3 * P), copied);
        var expected = new byte[mem.TotalSize];
        mem.Read(0, expected.AsSpan(0, (int)(32 * P)));
        mem.Read(0x100000, expected.AsSpan((int)(32 * P)));
        Assert.Equal(expected, File.ReadAllBytes(baseFile));
    }

    [Fact]
    public void An_all_hole_diff_changes_nothing()
    {
        string b = PathOf("b"), d = PathOf("d");
        File.WriteAllBytes(b, Enumerable.Repeat((byte)7, (int)(8 * P)).ToArray());
        using (var f = File.Create(d)) f.SetLength((long)(8 * P));
        Assert.Equal(0, MemoryRebase.Rebase(b, d));
        Assert.All(File.ReadAllBytes(b), x => Assert.Equal(7, x));
    }

    [Fact]
    public void A_diff_of_another_size_is_refused_before_any_write()
    {
        string b = PathOf("b"), d = PathOf("d");
        File.WriteAllBytes(b, new byte[8 * P]);
        File.WriteAllBytes(d, Enumerable.Repeat((byte)1, (int)(4 * P)).ToArray());
        var e = Assert.Throws<ToolException>(() => MemoryRebase.Rebase(b, d));
        Assert.Contains("holds 16384 bytes and the memory file 32768", e.Message);
        Assert.All(File.ReadAllBytes(b), x => Assert.Equal(0, x));
    }

    [Fact]
    public void Missing_files_say_which_one()
    {
        string b = PathOf("b");
        File.WriteAllBytes(b, new byte[P]);
        Assert.Equal("Could not open memory file: No such file or directory (os error 2)",
            Assert.Throws<ToolException>(() => MemoryRebase.Rebase(PathOf("none"), b)).Message);
        Assert.Equal("Could not open diff file: No such file or directory (os error 2)",
            Assert.Throws<ToolException>(() => MemoryRebase.Rebase(b, PathOf("none"))).Message);
    }

    [Fact]
    public void A_page_size_that_is_not_a_power_of_two_is_a_usage_error()
    {
        var e = Assert.Throws<ToolException>(() => MemoryRebase.Rebase(PathOf("x"), PathOf("y"), 5000));
        Assert.Equal(ExitCodes.Usage, e.ExitCode);
    }
}

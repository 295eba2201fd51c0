using Flint.Memory;

namespace Flint.Memory.Tests;

/// <summary>
/// The VMM's own dirty-page bitmap (track_dirty_pages): which writes mark which pages, and that nothing is marked
/// (nor allocated) while tracking is off.
/// </summary>
public sealed class DirtyTrackingTests : IDisposable
{
    private const ulong P = GuestMemory.PageSize;
    // Two regions, as the x86 layout has below and above the 32-bit hole (small here).
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 64 * P), (0x100000UL, 130 * P)]);

    public void Dispose() => _mem.Dispose();

    private static ulong[] Dirty(GuestRegion r) =>
        Enumerable.Range(0, (int)(r.Size / P)).Where(i => r.Dirty!.IsDirty((ulong)i)).Select(i => (ulong)i).ToArray();

    [Fact]
    public void Off_by_default_writes_mark_nothing()
    {
        _mem.Write(0x2000UL, 7UL);
        _mem.MarkDirty(0x3000, 10);
        Assert.False(_mem.DirtyTracking);
        Assert.All(_mem.Regions, r => Assert.Null(r.Dirty));
    }

    [Fact]
    public void Every_write_path_marks_the_whole_pages_it_touches()
    {
        _mem.EnableDirtyTracking();
        var low = _mem.Regions[0];
        var high = _mem.Regions[1];
        _mem.Write(0x2ffcUL, 0x1122334455667788UL);          // straddles pages 2 and 3
        _mem.Write(0x5000, new byte[] { 1, 2, 3 });            // page 5
        _mem.Fill(0x9000, 2 * P + 1, 0xab);                    // pages 9, 10, 11
        _mem.MarkDirty(0x100000 + 63 * P + 10, 2 * P);         // high pages 63..65 (crosses a bitmap word)
        _mem.Discard(0x100000 + 129 * P, P);                   // the last page of high
        Assert.Equal([2UL, 3, 5, 9, 10, 11], Dirty(low));
        Assert.Equal([63UL, 64, 65, 129], Dirty(high));
    }

    [Fact]
    public void A_write_across_two_regions_marks_both()
    {
        using var m = GuestMemory.Create([(0UL, 4 * P), (4 * P, 4 * P)]);
        m.EnableDirtyTracking();
        m.Write(4 * P - 2, new byte[] { 1, 2, 3, 4 });
        Assert.True(m.Regions[0].Dirty!.IsDirty(3));
        Assert.True(m.Regions[1].Dirty!.IsDirty(0));
        Assert.Equal(1UL, m.Regions[0].Dirty!.CountDirty());
        Assert.Equal(1UL, m.Regions[1].Dirty!.CountDirty());
    }

    [Fact]
    public void Marking_outside_guest_RAM_is_ignored_and_zero_length_marks_nothing()
    {
        _mem.EnableDirtyTracking();
        _mem.MarkDirty(0x80000, 100); // the gap between the regions
        _mem.MarkDirty(0x1000, 0);
        Assert.All(_mem.Regions, r => Assert.Equal(0UL, r.Dirty!.CountDirty()));
    }

    [Fact]
    public void Reset_dirty_cleans_every_page()
    {
        _mem.EnableDirtyTracking();
        _mem.Fill(0, 64 * P, 1);
        Assert.Equal(64UL, _mem.Regions[0].Dirty!.CountDirty());
        _mem.ResetDirty();
        Assert.All(_mem.Regions, r => Assert.Equal(0UL, r.Dirty!.CountDirty()));
    }

    [Fact]
    public void Bitmap_masks_are_exact_at_word_edges()
    {
        var b = new DirtyPageBitmap(200 * P);
        b.Mark(63 * P, 1);
        b.Mark(64 * P, 64 * P);       // pages 64..127: a whole word
        b.Mark(190 * P + 1, 10 * P - 1); // pages 190..199, the last
        Assert.Equal(1UL + 64 + 10, b.CountDirty());
        Assert.False(b.IsDirty(62));
        Assert.False(b.IsDirty(128));
        Assert.False(b.IsDirty(189));
        Assert.True(b.IsDirty(199));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.Mark(199 * P, P + 1));
        Span<ulong> into = stackalloc ulong[DirtyPageBitmap.WordsFor(200)];
        b.OrInto(into);
        Assert.Equal(1UL << 63, into[0]);
        Assert.Equal(~0UL, into[1]);
    }

    [Fact]
    public void Marking_allocates_nothing()
    {
        _mem.EnableDirtyTracking();
        for (int i = 0; i < 100; i++) _mem.MarkDirty((ulong)i * 16, 8);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++) _mem.MarkDirty((ulong)(i % 60) * P + 8, 100);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Concurrent_marks_are_not_lost()
    {
        var b = new DirtyPageBitmap(64 * 64 * P);
        Parallel.For(0, 4, t =>
        {
            for (ulong p = (ulong)t; p < 64 * 64; p += 4) b.Mark(p * P, 1);
        });
        Assert.Equal(64UL * 64, b.CountDirty());
    }
}

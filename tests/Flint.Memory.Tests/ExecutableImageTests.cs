using Flint.Sys;

namespace Flint.Memory.Tests;

/// <summary>
/// <see cref="ExecutableImage"/> finds the executable's read-only pages from its program headers: read-only segments,
/// whole pages with their file offsets, never the RELRO range the loader wrote, never a writable segment; the header
/// page apart, as the proof that the file opened is the one mapped (issue 15, item 9).
/// </summary>
public sealed class ExecutableImageTests
{
    private const uint R = ProgramHeader.PF_R, RX = ProgramHeader.PF_R | ProgramHeader.PF_X, RW = ProgramHeader.PF_R | ProgramHeader.PF_W;

    /// <summary>flint's own program headers (lld, static-pie), as readelf shows them.</summary>
    private static readonly ProgramHeader[] Flint =
    [
        new(ProgramHeader.PT_PHDR, R, 0x40, 0x40, 0x268, 0x268),
        new(ProgramHeader.PT_LOAD, R, 0x0, 0x0, 0x21445c, 0x21445c),
        new(ProgramHeader.PT_LOAD, RX, 0x214480, 0x215480, 0x33feb0, 0x33feb0),
        new(ProgramHeader.PT_LOAD, RW, 0x554330, 0x556330, 0x44b8, 0x44b8),
        new(ProgramHeader.PT_LOAD, RW, 0x5587e8, 0x55b7e8, 0xe090, 0x138828),
        new(ProgramHeader.PT_GNU_RELRO, R, 0x554330, 0x556330, 0x44b8, 0x4cd0),
    ];

    [Fact]
    public void Flints_code_and_read_only_data_are_whole_pages_at_the_load_bias_with_their_file_offsets()
    {
        nuint bias = unchecked((nuint)0x7f0000000000);
        var ranges = ExecutableImage.ReadOnlyRanges(Flint, (bias + 0x40), 4096);
        Assert.Equal(
            [
                new ExecutableImage.Range((bias + 0x1000), 0x213000, 0x1000), // page 0 is the header page
                new ExecutableImage.Range((bias + 0x216000), 0x555000 - 0x216000, 0x215000),
            ],
            ranges);
        Assert.Equal(new ExecutableImage.Range(bias, 0x1000, 0), ExecutableImage.HeaderPage(Flint, (bias + 0x40), 4096));
    }

    [Fact]
    public void RELRO_inside_a_read_only_segment_and_writable_segments_are_kept()
    {
        ProgramHeader[] headers =
        [
            new(ProgramHeader.PT_PHDR, R, 0x40, 0x40, 0x1c0, 0x1c0),
            new(ProgramHeader.PT_LOAD, R, 0x0, 0x0, 0x10000, 0x10000),
            new(ProgramHeader.PT_GNU_RELRO, R, 0x4000, 0x4000, 0x2000, 0x2000),
            new(ProgramHeader.PT_LOAD, RW, 0x10000, 0x11000, 0x3000, 0x3000),
        ];
        var ranges = ExecutableImage.ReadOnlyRanges(headers, 0x40, 4096);
        Assert.Equal([new ExecutableImage.Range(0x1000, 0x3000, 0x1000), new ExecutableImage.Range(0x6000, 0xa000, 0x6000)], ranges);
    }

    [Fact]
    public void Without_PT_PHDR_nothing_is_released()
    {
        Assert.Empty(ExecutableImage.ReadOnlyRanges(Flint.AsSpan(1), 0x40, 4096));
        Assert.Null(ExecutableImage.HeaderPage(Flint.AsSpan(1), 0x40, 4096));
    }

    [Fact]
    public void Releasing_this_processs_pages_leaves_it_running()
    {
        // The test host's own executable (dotnet): its pages are released and fault back in.
        long released = ExecutableImage.ReleaseUnwrittenPages();
        Assert.True(released > 0, "nothing released");
        Assert.Equal("42", (40 + int.Parse("2", System.Globalization.CultureInfo.InvariantCulture)).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(ExecutableImage.ReleaseUnwrittenPages() > 0);
    }
}

using Flint.Sys;

namespace Flint.Memory.Tests;

/// <summary>
/// <see cref="ExecutableImage.ReleaseReadOnlyPages"/> lets go only of pages that are the file's: read-only segments,
/// whole pages, never the RELRO range the loader wrote, never a writable segment (issue 15, item 9).
/// </summary>
public sealed class ExecutableImageTests
{
    private const uint R = ProgramHeader.PF_R, RX = ProgramHeader.PF_R | ProgramHeader.PF_X, RW = ProgramHeader.PF_R | ProgramHeader.PF_W;

    /// <summary>flint's own program headers (lld, static-pie), as readelf shows them.</summary>
    private static readonly ProgramHeader[] Flint =
    [
        new(ProgramHeader.PT_PHDR, R, 0x40, 0x268, 0x268),
        new(ProgramHeader.PT_LOAD, R, 0x0, 0x1f647c, 0x1f647c),
        new(ProgramHeader.PT_LOAD, RX, 0x1f7480, 0x31d900, 0x31d900),
        new(ProgramHeader.PT_LOAD, RW, 0x515d80, 0x44a8, 0x44a8),
        new(ProgramHeader.PT_LOAD, RW, 0x51b228, 0xd250, 0x11f958),
        new(ProgramHeader.PT_GNU_RELRO, R, 0x515d80, 0x44a8, 0x5280),
    ];

    [Fact]
    public void Flints_code_and_read_only_data_are_released_in_whole_pages_at_the_load_bias()
    {
        const ulong bias = 0x7f0000000000;
        var ranges = ExecutableImage.ReadOnlyRanges(Flint, (nuint)(bias + 0x40), 4096);
        Assert.Equal(
            [((nuint)bias, (nuint)0x1f6000), ((nuint)(bias + 0x1f8000), (nuint)(0x514000 - 0x1f8000))],
            ranges);
    }

    [Fact]
    public void RELRO_inside_a_read_only_segment_and_writable_segments_are_kept()
    {
        ProgramHeader[] headers =
        [
            new(ProgramHeader.PT_PHDR, R, 0x40, 0x1c0, 0x1c0),
            new(ProgramHeader.PT_LOAD, R, 0x0, 0x10000, 0x10000),
            new(ProgramHeader.PT_GNU_RELRO, R, 0x4000, 0x2000, 0x2000),
            new(ProgramHeader.PT_LOAD, RW, 0x11000, 0x3000, 0x3000),
        ];
        var ranges = ExecutableImage.ReadOnlyRanges(headers, 0x40, 4096);
        Assert.Equal([((nuint)0, (nuint)0x4000), ((nuint)0x6000, (nuint)0xa000)], ranges);
    }

    [Fact]
    public void Without_PT_PHDR_nothing_is_released()
    {
        var ranges = ExecutableImage.ReadOnlyRanges(Flint.Skip(1).ToArray(), 0x40, 4096);
        Assert.Empty(ranges);
    }

    [Fact]
    public void Releasing_this_processs_pages_leaves_it_running()
    {
        long released = ExecutableImage.ReleaseReadOnlyPages();
        Assert.True(released > 0);
        // Code and constant data of the runtime fault back in from the file.
        Assert.Equal("42", (40 + int.Parse("2")).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(ExecutableImage.ReleaseReadOnlyPages() > 0);
    }
}

namespace Flint.Arch.X86;

/// <summary>Where guest RAM goes: low RAM up to 3 GiB, the rest above the 3-4 GiB MMIO gap.</summary>
public static class MemoryLayout
{
    public const ulong PageSize = 4096;

    /// <summary>
    /// The RAM ranges for a guest of <paramref name="memBytes"/> bytes: [(0, min(mem, 3 GiB))] and, when
    /// mem exceeds 3 GiB, [(4 GiB, mem - 3 GiB)]. The total always equals memBytes: the gap steals no RAM.
    /// </summary>
    public static (ulong GuestBase, ulong Size)[] RamRanges(ulong memBytes)
    {
        if (memBytes == 0 || memBytes % PageSize != 0)
            throw new ArgumentException($"guest memory size {memBytes} bytes must be a non-zero multiple of {PageSize}", nameof(memBytes));
        if (memBytes <= Layout.MmioGapStart)
            return [(0, memBytes)];
        return [(0, Layout.MmioGapStart), (Layout.MmioGapEnd, memBytes - Layout.MmioGapStart)];
    }

    /// <summary>End of low RAM (exclusive): min(mem, 3 GiB). Boot data, kernel and initrd all live below it.</summary>
    public static ulong LowRamEnd(ulong memBytes) => Math.Min(memBytes, Layout.MmioGapStart);
}

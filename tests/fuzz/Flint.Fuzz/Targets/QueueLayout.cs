namespace Flint.Fuzz.Targets;

/// <summary>
/// Where the device targets put each split virtqueue in guest memory, and how their inputs are laid out:
/// [0..8) the driver's acked features (little-endian, ANDed with what the device offers), [8] control (bits 0-1:
/// rounds of notifications - 1; bit 2: notify queues last to first; bits 3-4: queue size 8 &gt;&gt; n), then the image of
/// guest memory from address 0. Queue q's descriptor table, avail and used rings sit in the 256 bytes at q * 0x100,
/// so the fuzzer mutates rings, descriptors and buffers alike, as a hostile guest can.
/// </summary>
public static class QueueLayout
{
    public const ushort MaxQueueSize = 8;
    public const int HeaderBytes = 9;
    /// <summary>The image region; a second one follows right after it (a buffer may straddle two host mappings) and then a hole.</summary>
    public const ulong ImageSize = 0x10000;
    public const ulong SecondRegionSize = 0x1000;
    public const ulong DataStart = 0x400;

    public static ulong DescTable(int q) => (ulong)q * 0x100;
    public static ulong AvailRing(int q) => (ulong)q * 0x100 + 0x80;
    public static ulong UsedRing(int q) => (ulong)q * 0x100 + 0xa0;
}

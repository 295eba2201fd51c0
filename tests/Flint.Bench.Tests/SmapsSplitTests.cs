using Flint.Bench.Harness;

namespace Flint.Bench.Tests;

/// <summary>The memory promise is measured as Firecracker measures it: mappings at least as large as guest memory are guest memory.</summary>
public class SmapsSplitTests
{
    private static string[] Mapping(long start, long sizeBytes, long rssKb, string rest = "rw-p 00000000 00:00 0") =>
    [
        $"{start:x}-{start + sizeBytes:x} {rest}",
        $"Size:           {sizeBytes / 1024} kB",
        $"Rss:            {rssKb} kB",
        "Pss:            1 kB",
        "VmFlags: rd wr mr mw me ac sd",
    ];

    [Fact]
    public void Guest_sized_mappings_are_guest_memory_and_the_rest_is_overhead()
    {
        const long guest = 128L << 20;
        var smaps = Mapping(0x400000, 4 << 20, 3000, "r-xp 00000000 08:01 123 /usr/bin/flint-with-dashes")
            .Concat(Mapping(0x7f0000000000, guest, 24576))           // guest RAM, exactly its size
            .Concat(Mapping(0x7f1000000000, 2 * guest, 100))         // larger than guest memory: guest too (hotplug, as Firecracker counts it)
            .Concat(Mapping(0x7f2000000000, guest - 4096, 2000))     // one page short: the VMM's
            .Concat(Mapping(0x7ffd00000000, 132 << 10, 40, "rw-p 00000000 00:00 0 [stack]"));
        var (overhead, guestKb) = SmapsSplit.Split(smaps, guest);
        Assert.Equal(3000 + 2000 + 40, overhead);
        Assert.Equal(24576 + 100, guestKb);
    }

    [Fact]
    public void Smaps_of_this_process_splits_into_its_whole_rss()
    {
        var lines = File.ReadAllLines("/proc/self/smaps");
        long rss = lines.Where(l => l.StartsWith("Rss:", StringComparison.Ordinal))
            .Sum(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]));
        var (overhead, guest) = SmapsSplit.Split(lines, 1L << 50);
        Assert.Equal(rss, overhead);
        Assert.Equal(0, guest);
    }
}

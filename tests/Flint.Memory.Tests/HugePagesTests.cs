using Flint.Memory;

namespace Flint.Memory.Tests;

/// <summary>
/// Guest RAM on 2 MiB hugetlbfs pages (machine-config huge_pages "2M") and transparent huge pages. The test reserves
/// a few huge pages itself (root, as the suite runs) and puts the old count back.
/// </summary>
public sealed class HugePagesTests : IDisposable
{
    private const string NrHugePages = "/proc/sys/vm/nr_hugepages";
    private readonly string _before = File.ReadAllText(NrHugePages).Trim();

    public HugePagesTests() => File.WriteAllText(NrHugePages, (long.Parse(_before) + 4).ToString());

    public void Dispose() => File.WriteAllText(NrHugePages, _before);

    private static string SmapsOf(ulong host)
    {
        var lines = File.ReadAllLines("/proc/self/smaps");
        for (int i = 0; i < lines.Length; i++)
        {
            var range = lines[i].Split(' ')[0].Split('-');
            if (range.Length != 2 || !ulong.TryParse(range[0], System.Globalization.NumberStyles.HexNumber, null, out ulong lo)) continue;
            if (lo != host) continue;
            return string.Join('\n', lines.Skip(i).TakeWhile((l, k) => k == 0 || !l.Contains('-') || l.Contains(':')).Take(30));
        }
        throw new InvalidOperationException($"no mapping at 0x{host:x}");
    }

    [Fact]
    public unsafe void Guest_memory_on_2M_pages_is_hugetlb_backed_and_works()
    {
        using var m = GuestMemory.Create([(0UL, 4UL << 20)], HugePages.HugeTlb2M);
        m.Write(0x1F_FFF8, 0x1122334455667788UL);        // across no boundary, in the first huge page
        m.Write(0x3F_FFF8, 0x8877665544332211UL);        // the last 8 bytes of the second
        Assert.Equal(0x1122334455667788UL, m.Read<ulong>(0x1F_FFF8));
        Assert.Equal(0x8877665544332211UL, m.Read<ulong>(0x3F_FFF8));
        var smaps = SmapsOf((ulong)m.Regions[0].Host);
        Assert.Contains("KernelPageSize:     2048 kB", smaps);
    }

    [Fact]
    public void Regions_not_2M_aligned_are_refused_for_huge_pages()
    {
        var e = Assert.Throws<ArgumentException>(() => GuestMemory.Create([(0UL, 3UL << 20)], HugePages.HugeTlb2M));
        Assert.Contains("2 MiB aligned", e.Message);
    }

    [Fact]
    public void Too_few_free_huge_pages_fail_at_creation_with_a_clear_error()
    {
        var e = Assert.Throws<Flint.Sys.SysException>(() => GuestMemory.Create([(0UL, 1UL << 40)], HugePages.HugeTlb2M));
        Assert.Contains("nr_hugepages", e.Message);
    }

    [Fact]
    public void Transparent_huge_pages_map_ordinary_memory()
    {
        using var m = GuestMemory.Create([(0UL, 4UL << 20)], HugePages.Transparent);
        m.Write(0x10, 42u);
        Assert.Equal(42u, m.Read<uint>(0x10));
    }
}

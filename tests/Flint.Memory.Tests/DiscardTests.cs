using Flint.Memory;

namespace Flint.Memory.Tests;

/// <summary>
/// GuestMemory.Discard, which the balloon uses for inflated, reported and hinted pages: the guest must read zeros
/// afterwards, whether its RAM is anonymous or (after a snapshot restore) a private mapping of the memory file.
/// Firecracker's discard_range: MADV_DONTNEED, or a fresh anonymous mapping over a private file mapping, where
/// MADV_DONTNEED would only bring the file's page back.
/// </summary>
public sealed unsafe class DiscardTests : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), "flint-discard-" + Guid.NewGuid().ToString("N") + ".mem");

    public void Dispose() => File.Delete(_file);

    [Fact]
    public void Anonymous_memory_reads_zero_after_discard()
    {
        using var m = GuestMemory.Create([(0UL, 1UL << 20)]);
        m.Fill(0, 3 * 4096, 0x7e);
        m.Discard(4096, 4096);
        Assert.Equal(0x7e, m.Read<byte>(4095));
        Assert.Equal(0, m.Read<byte>(4096));
        Assert.Equal(0, m.Read<byte>(2 * 4096 - 1));
        Assert.Equal(0x7e, m.Read<byte>(2 * 4096));
    }

    [Fact]
    public void A_restored_snapshots_memory_reads_zero_after_discard_not_the_files_page()
    {
        File.WriteAllBytes(_file, Enumerable.Repeat((byte)0x5a, 1 << 20).ToArray());
        using var m = GuestMemory.CreateFromFile([(0UL, 1UL << 20)], _file);
        m.Fill(4096, 4096, 0x11); // the guest wrote the page after the restore (a private copy)
        m.Discard(4096, 2 * 4096);
        Assert.Equal(0x5a, m.Read<byte>(4095));
        Assert.Equal(0, m.Read<byte>(4096));
        Assert.Equal(0, m.Read<byte>(3 * 4096 - 1)); // untouched since the restore: was the file's page
        Assert.Equal(0x5a, m.Read<byte>(3 * 4096));
        // The page is ordinary guest memory again.
        m.Write<byte>(4096, 9);
        Assert.Equal(9, m.Read<byte>(4096));
        Assert.Equal(0x5a, File.ReadAllBytes(_file)[4096]); // the file is never written
    }
}

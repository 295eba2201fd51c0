namespace Flint.Arch.X86.Tests;

public class InitrdTests
{
    [Fact]
    public void Placed_page_aligned_at_top_of_low_ram()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(64 * Mem.MiB);
        var data = Enumerable.Range(0, 10000).Select(i => (byte)i).ToArray();
        var (addr, size) = InitrdLoader.Load(mem, tmp.Write(data), 0x200_0000);
        Assert.Equal(10000UL, size);
        Assert.Equal(0UL, addr % 4096);
        Assert.Equal(64 * Mem.MiB - 3 * 4096, addr); // 10000 bytes round down into 3 pages below the end
        var got = new byte[10000];
        mem.Read(addr, got);
        Assert.Equal(data, got);
    }

    [Fact]
    public void Large_guest_puts_initrd_below_the_mmio_gap()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create((4UL << 30) + (512 * Mem.MiB));
        var (addr, size) = InitrdLoader.Load(mem, tmp.Write(new byte[5000]), 0x200_0000);
        Assert.Equal(0xC000_0000UL - 8192, addr);
        Assert.True(addr + size <= 0xC000_0000UL);
    }

    [Fact]
    public void Overlapping_kernel_rejected()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(16 * Mem.MiB);
        string path = tmp.Write(new byte[8 * Mem.MiB]);
        var ex = Assert.Throws<InitrdLoadException>(() => InitrdLoader.Load(mem, path, 0x0a0_0000));
        Assert.Contains(path, ex.Message);
        Assert.Contains("kernel", ex.Message);
    }

    [Fact]
    public void Bigger_than_ram_rejected()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(4 * Mem.MiB);
        Assert.Throws<InitrdLoadException>(() => InitrdLoader.Load(mem, tmp.Write(new byte[5 * Mem.MiB]), 0x10_0000));
    }

    [Fact]
    public void Empty_and_missing_rejected()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(16 * Mem.MiB);
        Assert.Contains("empty", Assert.Throws<InitrdLoadException>(() => InitrdLoader.Load(mem, tmp.Write([]), 0)).Message);
        Assert.Throws<InitrdLoadException>(() => InitrdLoader.Load(mem, "/nonexistent/initrd", 0));
    }
}

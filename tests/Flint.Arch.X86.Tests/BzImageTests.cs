namespace Flint.Arch.X86.Tests;

public class BzImageTests
{
    internal static byte[] Synthetic(ushort version = 0x020f, byte setupSects = 4, byte loadflags = 1, ushort xloadflags = 1,
        int payload = 8192, uint initSize = 0x40_0000)
    {
        int sects = setupSects == 0 ? 4 : setupSects;
        var img = new byte[(sects + 1) * 512 + payload];
        img[0x1f1] = setupSects;
        Le.W16(img, 0x1fe, 0xAA55);
        img[0x200] = 0xEB;
        img[0x201] = 0x6a;               // header ends at 0x26c (protocol 2.15 size)
        Le.W32(img, 0x202, 0x53726448);  // "HdrS"
        Le.W16(img, 0x206, version);
        img[0x211] = loadflags;
        Le.W32(img, 0x214, 0x100000);
        Le.W32(img, 0x230, 0x200000);    // kernel_alignment
        img[0x234] = 1;                  // relocatable
        Le.W16(img, 0x236, xloadflags);
        Le.W32(img, 0x238, 2047);        // cmdline_size
        Le.W64(img, 0x258, 0x100_0000);  // pref_address
        Le.W32(img, 0x260, initSize);
        for (int i = 0; i < payload; i++) img[(sects + 1) * 512 + i] = (byte)(i ^ 0x5c);
        return img;
    }

    [Fact]
    public void Loads_protected_mode_kernel_at_1MiB_with_entry_plus_0x200()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(64 * Mem.MiB);
        var img = Synthetic();
        var k = KernelLoader.Load(mem, tmp.Write(img));
        Assert.Equal(KernelKind.BzImage, k.Kind);
        Assert.Equal(0x100000UL, k.LoadAddress);
        Assert.Equal(0x100200UL, k.Entry);
        // runs at pref_address (16 MiB) and needs init_size there
        Assert.Equal(0x100_0000UL + 0x40_0000, k.End);
        var got = new byte[8192];
        mem.Read(0x100000, got);
        Assert.Equal(img[(5 * 512)..], got);
        Assert.NotNull(k.SetupHeader);
        Assert.Equal(0x26c - 0x1f1, k.SetupHeader!.Length);
        Assert.Equal(img[0x1f1..0x26c], k.SetupHeader);
    }

    [Fact]
    public void Setup_sects_zero_means_four()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(64 * Mem.MiB);
        var img = Synthetic(setupSects: 0);
        KernelLoader.Load(mem, tmp.Write(img));
        Assert.Equal(img[5 * 512], mem.Read<byte>(0x100000));
        Assert.Equal(img[5 * 512 + 1], mem.Read<byte>(0x100001));
    }

    private static string Fails(byte[] img, ulong memBytes = 64 * Mem.MiB)
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(memBytes);
        string path = tmp.Write(img);
        var ex = Assert.Throws<KernelLoadException>(() => KernelLoader.Load(mem, path));
        Assert.Contains(path, ex.Message);
        return ex.Message;
    }

    [Fact]
    public void Old_protocol_rejected() => Assert.Contains("2.11 is too old", Fails(Synthetic(version: 0x020b)));

    [Fact]
    public void Missing_64bit_entry_rejected() => Assert.Contains("XLF_KERNEL_64", Fails(Synthetic(xloadflags: 0)));

    [Fact]
    public void A_zImage_is_rejected() => Assert.Contains("LOADED_HIGH", Fails(Synthetic(loadflags: 0)));

    [Fact]
    public void Truncated_after_setup_rejected() => Assert.Contains("truncated", Fails(Synthetic()[..(5 * 512)]));

    [Fact]
    public void Too_small_guest_rejected() => Assert.Contains("too small", Fails(Synthetic(initSize: 0x800_0000), 64 * Mem.MiB));
}

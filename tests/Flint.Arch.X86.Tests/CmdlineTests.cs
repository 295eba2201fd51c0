namespace Flint.Arch.X86.Tests;

public class CmdlineTests
{
    [Fact]
    public void Default_boot_args_when_none_given()
    {
        Assert.Equal(KernelCmdline.DefaultBootArgs, KernelCmdline.FromBootArgs(null).ToString());
        Assert.Equal("console=ttyS0", KernelCmdline.FromBootArgs("console=ttyS0").ToString());
        Assert.Equal("reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce",
            KernelCmdline.DefaultBootArgs);
    }

    [Fact]
    public void Append_separates_with_single_spaces()
    {
        var c = new KernelCmdline("console=ttyS0 ").Append("").Append("  quiet").AppendVirtioMmioDevice(0xC0001000, 5);
        Assert.Equal("console=ttyS0 quiet virtio_mmio.device=4K@0xc0001000:5", c.ToString());
        Assert.Equal(c.ToString().Length, c.Length);
    }

    [Fact]
    public void Limit_is_2048_including_nul()
    {
        var ok = new KernelCmdline(new string('a', 2047));
        Assert.Equal(2047, ok.Length);
        Assert.Equal(2048, ok.ToBytes().Length);
        var ex = Assert.Throws<KernelCmdlineException>(() => new KernelCmdline(new string('a', 2048)));
        Assert.Contains("too long", ex.Message);
        var c = new KernelCmdline(new string('a', 2045)).Append("b"); // 2045 + space + b = 2047, + NUL = 2048
        Assert.Equal(2047, c.Length);
        c = new KernelCmdline(new string('a', 2046));
        Assert.Throws<KernelCmdlineException>(() => c.Append("b"));   // would be 2048 + NUL
        Assert.Equal(2046, c.Length);                                 // unchanged after a failed append
        Assert.Equal(2046, c.Append("").Length);
    }

    [Fact]
    public void Nul_byte_rejected() => Assert.Throws<KernelCmdlineException>(() => new KernelCmdline("a\0b"));

    [Fact]
    public void Written_nul_terminated_at_0x20000()
    {
        using var mem = Mem.Create(16 * Mem.MiB);
        mem.Fill(0x20000, 64, 0xff);
        int len = new KernelCmdline("root=/dev/vda").WriteTo(mem);
        Assert.Equal(13, len);
        var got = new byte[14];
        mem.Read(0x20000, got);
        Assert.Equal("root=/dev/vda\0"u8.ToArray(), got);
    }
}

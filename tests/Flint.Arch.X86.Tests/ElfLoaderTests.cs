namespace Flint.Arch.X86.Tests;

public class ElfLoaderTests
{
    private static ElfBuilder Basic()
    {
        var b = new ElfBuilder { Entry = 0x100_0000 };
        var text = Enumerable.Range(0, 300).Select(i => (byte)(i * 7 + 1)).ToArray();
        b.Loads.Add((0x100_0000, text, 0x2000)); // bss after the 300 file bytes
        b.Loads.Add((0x120_0000, [1, 2, 3, 4], 4));
        return b;
    }

    [Fact]
    public void Loads_segments_zeroes_bss_and_uses_e_entry_without_note()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(32 * Mem.MiB);
        mem.Fill(0x100_0000, 0x3000, 0xAA); // bss must come out zero, not keep old bytes
        var b = Basic();
        var k = KernelLoader.Load(mem, tmp.Write(b.Build()));

        Assert.Equal(KernelKind.Elf64Linux, k.Kind);
        Assert.Equal(0x100_0000UL, k.Entry);
        Assert.Equal(0x100_0000UL, k.LoadAddress);
        Assert.Equal(0x120_0004UL, k.End);
        Assert.Null(k.SetupHeader);
        var got = new byte[300];
        mem.Read(0x100_0000, got);
        Assert.Equal(b.Loads[0].Data, got);
        var bss = new byte[0x2000 - 300];
        mem.Read(0x100_0000 + 300, bss);
        Assert.All(bss, x => Assert.Equal(0, x));
        Assert.Equal(0xAA, mem.Read<byte>(0x100_2000)); // past memsz untouched
        Assert.Equal(0x04030201u, Mem.U32(mem, 0x120_0000));
    }

    [Fact]
    public void Xen_note_in_PT_NOTE_selects_pvh()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(32 * Mem.MiB);
        var b = Basic();
        b.PvhEntry = 0x100_0100;
        var k = KernelLoader.Load(mem, tmp.Write(b.Build()));
        Assert.Equal(KernelKind.Pvh, k.Kind);
        Assert.Equal(0x100_0100UL, k.Entry);
    }

    [Fact]
    public void Xen_note_in_SHT_NOTE_section_selects_pvh()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(32 * Mem.MiB);
        var b = Basic();
        b.PvhEntry = 0x100_0040;
        b.NoteAsSectionOnly = true;
        var k = KernelLoader.Load(mem, tmp.Write(b.Build()));
        Assert.Equal(KernelKind.Pvh, k.Kind);
        Assert.Equal(0x100_0040UL, k.Entry);
    }

    private static KernelLoadException Fails(byte[] image, ulong memBytes = 32 * Mem.MiB)
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(memBytes);
        string path = tmp.Write(image);
        var ex = Assert.Throws<KernelLoadException>(() => KernelLoader.Load(mem, path));
        Assert.Contains(path, ex.Message);
        return ex;
    }

    [Fact]
    public void Garbage_is_rejected()
    {
        var ex = Fails(Enumerable.Repeat((byte)0x5a, 4096).ToArray());
        Assert.Contains("neither an ELF", ex.Message);
    }

    [Fact]
    public void Tiny_file_rejected() => Assert.Contains("too small", Fails([1, 2, 3]).Message);

    [Fact]
    public void Empty_file_rejected() => Assert.Contains("too small", Fails([]).Message);

    [Fact]
    public void Missing_file_rejected()
    {
        using var mem = Mem.Create(32 * Mem.MiB);
        var ex = Assert.Throws<KernelLoadException>(() => KernelLoader.Load(mem, "/nonexistent/vmlinux"));
        Assert.Contains("/nonexistent/vmlinux", ex.Message);
    }

    [Fact]
    public void Truncated_header_rejected() => Assert.Contains("truncated", Fails(Basic().Build()[..40]).Message);

    [Fact]
    public void Truncated_program_headers_rejected() => Assert.Contains("truncated", Fails(Basic().Build()[..100]).Message);

    [Fact]
    public void Truncated_segment_data_rejected()
    {
        var img = Basic().Build();
        Assert.Contains("truncated", Fails(img[..(img.Length - 2)]).Message);
    }

    [Fact]
    public void An_ELF32_is_rejected()
    {
        var b = Basic();
        b.Class = 1;
        Assert.Contains("32-bit", Fails(b.Build()).Message);
    }

    [Fact]
    public void Non_x86_64_machine_rejected()
    {
        var b = Basic();
        b.Machine = 183; // aarch64
        Assert.Contains("not x86_64", Fails(b.Build()).Message);
    }

    [Fact]
    public void Segment_outside_ram_rejected()
    {
        var b = Basic();
        b.Loads.Add((0x400_0000, [1], 1)); // 64 MiB in a 32 MiB guest
        Assert.Contains("outside guest RAM", Fails(b.Build()).Message);
    }

    [Fact]
    public void Segment_running_past_ram_end_rejected()
    {
        var b = Basic();
        b.Loads.Add((0x1ff_f000, [1], 0x2000));
        Assert.Contains("outside guest RAM", Fails(b.Build()).Message);
    }

    [Fact]
    public void Segment_below_himem_rejected()
    {
        var b = Basic();
        b.Loads.Add((0x7000, [1], 1)); // would overwrite the zero page
        Assert.Contains("HIMEM", Fails(b.Build()).Message);
    }

    [Fact]
    public void Filesz_greater_than_memsz_rejected()
    {
        var b = Basic();
        b.FirstFileSizeOverride = 0x3000;
        Assert.Contains("p_filesz", Fails(b.Build()).Message);
    }

    [Fact]
    public void Nothing_written_when_a_later_segment_is_bad()
    {
        using var tmp = new TempFiles();
        using var mem = Mem.Create(32 * Mem.MiB);
        var b = Basic();
        b.Loads.Add((0x400_0000, [1], 1));
        Assert.Throws<KernelLoadException>(() => KernelLoader.Load(mem, tmp.Write(b.Build())));
        Assert.Equal(0u, Mem.U32(mem, 0x100_0000));
    }

    [Fact]
    public void Entry_outside_ram_rejected()
    {
        var b = Basic();
        b.PvhEntry = 0x800_0000;
        Assert.Contains("entry point", Fails(b.Build()).Message);
    }
}

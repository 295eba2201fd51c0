using Flint.Kvm;

namespace Flint.Arch.X86.Tests;

public unsafe class CpuStateTests
{
    [Fact]
    public void Gdt_bytes_for_long_mode()
    {
        using var mem = Mem.Create(16 * Mem.MiB);
        BootCpuState.WriteTables(mem, KernelKind.Elf64Linux);
        Assert.Equal(0UL, Mem.U64(mem, 0x500));
        Assert.Equal(0x00af9b000000ffffUL, Mem.U64(mem, 0x508));
        Assert.Equal(0x00cf93000000ffffUL, Mem.U64(mem, 0x510));
        Assert.Equal(0x008f8b000000ffffUL, Mem.U64(mem, 0x518));
        Assert.Equal(0UL, Mem.U64(mem, 0x520)); // IDT
    }

    [Fact]
    public void Gdt_bytes_for_pvh()
    {
        using var mem = Mem.Create(16 * Mem.MiB);
        BootCpuState.WriteTables(mem, KernelKind.Pvh);
        Assert.Equal(0x00cf9b000000ffffUL, Mem.U64(mem, 0x508));
        Assert.Equal(0x00cf93000000ffffUL, Mem.U64(mem, 0x510));
        Assert.Equal(0x00008b0000000067UL, Mem.U64(mem, 0x518));
        Assert.Equal(0UL, Mem.U64(mem, 0x9000)); // no page tables for PVH
    }

    [Fact]
    public void Identity_page_tables_map_first_GiB()
    {
        using var mem = Mem.Create(16 * Mem.MiB);
        mem.Fill(0x9000, 0x3000, 0xee);
        BootCpuState.WriteTables(mem, KernelKind.BzImage);
        Assert.Equal(0xa003UL, Mem.U64(mem, 0x9000));
        Assert.Equal(0UL, Mem.U64(mem, 0x9008));
        Assert.Equal(0xb003UL, Mem.U64(mem, 0xa000));
        Assert.Equal(0UL, Mem.U64(mem, 0xaff8));
        Assert.Equal(0x83UL, Mem.U64(mem, 0xb000));
        Assert.Equal(0x200083UL, Mem.U64(mem, 0xb008));
        Assert.Equal(0x3fe00083UL, Mem.U64(mem, 0xb000 + 511 * 8));
    }

    [Fact]
    public void Segment_from_descriptor()
    {
        var cs = Gdt.ToSegment(Gdt.Entry(0xa09b, 0, 0xfffff), 8);
        Assert.Equal(0UL, cs.Base);
        Assert.Equal(0xffffffffu, cs.Limit);
        Assert.Equal(8, cs.Selector);
        Assert.Equal(0xb, cs.Type);
        Assert.Equal(1, cs.Present);
        Assert.Equal(0, cs.Dpl);
        Assert.Equal(0, cs.Db);
        Assert.Equal(1, cs.S);
        Assert.Equal(1, cs.L);
        Assert.Equal(1, cs.G);
        Assert.Equal(0, cs.Unusable);
        var e = Gdt.Entry(0x0093, 0x12345678, 0xabcde);
        var s = Gdt.ToSegment(e, 0x10);
        Assert.Equal(0x12345678UL, s.Base);
        Assert.Equal(0xabcdeu, s.Limit);
        Assert.Equal(0, s.G);
    }

    [Fact]
    public void Long_mode_registers()
    {
        var k = new LoadedKernel(KernelKind.Elf64Linux, 0x100_0000, 0x100_0000, 0x200_0000);
        var r = BootCpuState.Regs(k);
        Assert.Equal(0x100_0000UL, r.Rip);
        Assert.Equal(2UL, r.Rflags);
        Assert.Equal(0x8ff0UL, r.Rsp);
        Assert.Equal(0x8ff0UL, r.Rbp);
        Assert.Equal(0x7000UL, r.Rsi);
        Assert.Equal(0UL, r.Rbx);

        var s = BootCpuState.Sregs(KernelKind.BzImage);
        Assert.Equal(0x8, s.Cs.Selector);
        Assert.Equal(1, s.Cs.L);
        Assert.Equal(0, s.Cs.Db);
        Assert.Equal(0x10, s.Ds.Selector);
        Assert.Equal(0x10, s.Ss.Selector);
        Assert.Equal(0x10, s.Es.Selector);
        Assert.Equal(0x18, s.Tr.Selector);
        Assert.Equal(0xb, s.Tr.Type);
        Assert.Equal(0x500UL, s.Gdt.Base);
        Assert.Equal(31, s.Gdt.Limit);
        Assert.Equal(0x520UL, s.Idt.Base);
        Assert.Equal(7, s.Idt.Limit);
        Assert.Equal(0x8000_0011UL, s.Cr0);
        Assert.Equal(0x20UL, s.Cr4);
        Assert.Equal(0x9000UL, s.Cr3);
        Assert.Equal(0x500UL, s.Efer);
        Assert.Equal(0xfee00900UL, s.ApicBase);
    }

    [Fact]
    public void The_PVH_registers()
    {
        var k = new LoadedKernel(KernelKind.Pvh, 0x100_0abc, 0x100_0000, 0x200_0000);
        var r = BootCpuState.Regs(k);
        Assert.Equal(0x100_0abcUL, r.Rip);
        Assert.Equal(0x6000UL, r.Rbx);
        Assert.Equal(2UL, r.Rflags);
        Assert.Equal(0UL, r.Rsi);

        var s = new KvmSregs { ApicBase = 0xfee00900, Cr0 = 0x6000_0010 };
        BootCpuState.ConfigureSregs(ref s, KernelKind.Pvh);
        Assert.Equal(0xfee00900UL, s.ApicBase);         // kept from KVM's state
        Assert.Equal(0x11UL, s.Cr0);                    // PE|ET, CD/NW cleared, paging off
        Assert.Equal(0UL, s.Cr4);
        Assert.Equal(0UL, s.Efer);
        Assert.Equal(0UL, s.Cr3);
        Assert.Equal(0, s.Cs.L);
        Assert.Equal(1, s.Cs.Db);
        Assert.Equal(0xffffffffu, s.Cs.Limit);
        Assert.Equal(0x8, s.Cs.Selector);
        Assert.Equal(0x10, s.Ds.Selector);
        Assert.Equal(1, s.Ds.Db);
        Assert.Equal(0x67u, s.Tr.Limit);
        Assert.Equal(0xb, s.Tr.Type);
    }

    [Fact]
    public void Sregs_from_current_state_keeps_apic_base()
    {
        var cur = new KvmSregs { ApicBase = 0xfee00800, Cr0 = 0x6000_0010 };
        var s = BootCpuState.Sregs(cur, KernelKind.Elf64Linux);
        Assert.Equal(0xfee00800UL, s.ApicBase);
        Assert.Equal(0x8000_0011UL, s.Cr0);
        Assert.Equal(0x6000_0010UL, cur.Cr0); // the argument is a copy
        Assert.Equal(BootMsrs.Entries().Length, BootCpuState.BootMsrs().Length);
        Assert.Equal(BootMsrs.Entries().Length, BootCpuState.BootMsrs(CpuTemplates.KvmPvm).Length); // 0x10a is not a boot MSR
    }

    [Fact]
    public void The_FPU_defaults()
    {
        var f = BootCpuState.Fpu();
        Assert.Equal(0x37f, f.Fcw);
        Assert.Equal(0x1f80u, f.Mxcsr);
    }

    [Fact]
    public void The_boot_MSRs()
    {
        var m = BootMsrs.Entries();
        Assert.Equal(11, m.Length);
        var d = m.ToDictionary(e => e.Index, e => e.Data);
        foreach (uint i in new uint[] { 0x174, 0x175, 0x176, 0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102, 0x10 })
            Assert.Equal(0UL, d[i]);
        Assert.Equal(1UL, d[0x1a0]);
        Assert.Equal(0x806UL, d[0x2ff]);
    }

    [Fact]
    public void Template_can_skip_msrs()
    {
        var skipTsc = new SkipTemplate(0x10);
        Assert.DoesNotContain(BootMsrs.Entries(skipTsc), e => e.Index == 0x10);
        Assert.True(CpuTemplates.KvmPvm.SkipMsr(0x10a));
        Assert.False(CpuTemplates.None.SkipMsr(0x10a));
    }

    private sealed class SkipTemplate(uint skip) : ICpuTemplate
    {
        public string Name => "skip";
        public void Apply(List<KvmCpuidEntry2> entries) { }
        public string ExtraKernelCmdline => "";
        public bool SkipMsr(uint index) => index == skip;
    }

    [Fact]
    public void Lapic_lint_delivery_modes()
    {
        var s = new KvmLapicState();
        // masked (bit 16), vector bits and an old delivery mode that must be replaced
        *(uint*)(s.Regs + 0x350) = 0x1_0000 | 0x200 | 0x31;
        *(uint*)(s.Regs + 0x360) = 0x1_0000 | 0x700;
        *(uint*)(s.Regs + 0x340) = 0xdead;
        Lapic.ConfigureLint(ref s);
        Assert.Equal(0x1_0000u | 0x700 | 0x31, *(uint*)(s.Regs + 0x350));
        Assert.Equal(0x1_0000u | 0x400, *(uint*)(s.Regs + 0x360));
        Assert.Equal(0xdeadu, *(uint*)(s.Regs + 0x340));
    }
}

using Flint.Kvm;
using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>
/// Register state of the boot vCPU (id 0) at the kernel's entry, per protocol:
/// <list type="bullet">
/// <item>64-bit Linux boot protocol (ELF without PVH note, bzImage): long mode, paging on with identity tables
/// (CR0 PE|PG, CR4 PAE, EFER LME|LMA, CR3 = PML4), CS 0x8 with L=1, data segments 0x10, rsi = zero page.</item>
/// <item>PVH: 32-bit protected mode, paging off (CR0 PE), flat CS 0x8 (D=1) and DS/ES/SS 0x10, ebx = start_info.</item>
/// </list>
/// Application processors (vCPU id &gt; 0) get none of this: with KVM's in-kernel irqchip they sit in
/// KVM_MP_STATE_UNINITIALIZED until the BSP's kernel sends INIT/SIPI, and KVM then resets them to the
/// real-mode state the SIPI vector dictates, discarding anything set here. They still get CPUID, boot MSRs,
/// FPU and LAPIC LINT setup.
/// </summary>
public static class BootCpuState
{
    public const ulong Cr0Pe = 1UL << 0, Cr0Et = 1UL << 4, Cr0Pg = 1UL << 31;
    public const ulong Cr4Pae = 1UL << 5;
    public const ulong ApicBaseBsp = 1UL << 8, ApicBaseEnable = 1UL << 11;
    public const ulong EferLme = 1UL << 8, EferLma = 1UL << 10;
    /// <summary>RFLAGS bit 1 is reserved and always reads 1; everything else clear (interrupts off).</summary>
    public const ulong InitialRflags = 2;
    public const ushort FpuControlWord = 0x37f;   // FNINIT default: all exceptions masked, 64-bit precision
    public const uint Mxcsr = 0x1f80;             // reset default: all SSE exceptions masked

    /// <summary>
    /// Writes the guest-memory side of the entry state: the GDT for <paramref name="kind"/>, a zeroed IDT, and
    /// (for long-mode entry) the identity page tables. Call once per boot before running vCPU 0.
    /// </summary>
    public static void WriteTables(GuestMemory mem, KernelKind kind)
    {
        Gdt.Write(mem, Gdt.TableFor(kind));
        // An empty IDT: any exception before the kernel sets up its own triple-faults (a clean reset) rather
        // than jumping through garbage.
        mem.Write(Layout.IdtStart, 0UL);
        if (kind != KernelKind.Pvh) PageTables.Write(mem);
    }

    /// <summary>General registers of vCPU 0 for entering <paramref name="kernel"/>.</summary>
    public static KvmRegs Regs(LoadedKernel kernel) => Regs(kernel.Kind, kernel.Entry);

    public static KvmRegs Regs(KernelKind kind, ulong entry)
    {
        var r = new KvmRegs { Rip = entry, Rflags = InitialRflags };
        if (kind == KernelKind.Pvh)
        {
            r.Rbx = Layout.PvhInfoStart;
        }
        else
        {
            r.Rsp = Layout.BootStackPointer;
            r.Rbp = Layout.BootStackPointer;
            r.Rsi = Layout.ZeroPageStart;
        }
        return r;
    }

    /// <summary>
    /// Adjusts <paramref name="sregs"/> (as read by KVM_GET_SREGS, so APIC base and the interrupt bitmap are
    /// kept) for entering the kernel. Control registers are set outright, not or-ed into the reset values:
    /// the reset CR0 has CD/NW (caches off), which no kernel entry protocol expects.
    /// </summary>
    public static void ConfigureSregs(ref KvmSregs sregs, KernelKind kind)
    {
        var table = Gdt.TableFor(kind);
        var code = Gdt.ToSegment(table[1], Gdt.CodeSelector);
        var data = Gdt.ToSegment(table[2], Gdt.DataSelector);
        sregs.Cs = code;
        sregs.Ds = data;
        sregs.Es = data;
        sregs.Fs = data;
        sregs.Gs = data;
        sregs.Ss = data;
        sregs.Tr = Gdt.ToSegment(table[3], Gdt.TssSelector);
        sregs.Gdt = new KvmDtable { Base = Layout.GdtStart, Limit = (ushort)(Gdt.Entries * 8 - 1) };
        sregs.Idt = new KvmDtable { Base = Layout.IdtStart, Limit = 7 };

        if (kind == KernelKind.Pvh)
        {
            sregs.Cr0 = Cr0Pe | Cr0Et;
            sregs.Cr3 = 0;
            sregs.Cr4 = 0;
            sregs.Efer = 0;
        }
        else
        {
            sregs.Cr0 = Cr0Pe | Cr0Et | Cr0Pg;
            sregs.Cr3 = Layout.Pml4Start;
            sregs.Cr4 = Cr4Pae;
            sregs.Efer = EferLme | EferLma;
        }
    }

    /// <summary>
    /// A fresh KvmSregs configured for <paramref name="kind"/>, for callers without a KVM_GET_SREGS read: the
    /// LDT is marked unusable and the APIC base is the BSP's reset value (0xfee00000, enabled, BSP).
    /// </summary>
    public static KvmSregs Sregs(KernelKind kind)
    {
        var s = new KvmSregs
        {
            Ldt = new KvmSegment { Unusable = 1 },
            ApicBase = Layout.LapicAddress | ApicBaseEnable | ApicBaseBsp,
        };
        ConfigureSregs(ref s, kind);
        return s;
    }

    /// <summary>ConfigureSregs on a copy of <paramref name="current"/> (the vCPU's KVM_GET_SREGS result).</summary>
    public static KvmSregs Sregs(KvmSregs current, KernelKind kind)
    {
        ConfigureSregs(ref current, kind);
        return current;
    }

    /// <summary>The boot MSR list (see <see cref="global::Flint.Arch.X86.BootMsrs"/>), minus what the template skips.</summary>
    public static KvmMsrEntry[] BootMsrs(ICpuTemplate? template = null) => global::Flint.Arch.X86.BootMsrs.Entries(template);

    /// <summary>FPU/SSE state as after FNINIT and reset: every vCPU gets it.</summary>
    public static KvmFpu Fpu() => new() { Fcw = FpuControlWord, Mxcsr = Mxcsr };
}

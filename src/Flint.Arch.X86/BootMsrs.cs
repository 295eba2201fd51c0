using Flint.Kvm;

namespace Flint.Arch.X86;

/// <summary>
/// MSR values every vCPU starts with. The syscall/sysenter MSRs and the TSC start at zero so a fresh VM does
/// not inherit whatever KVM or a previous run left; the kernel programs them itself during boot.
/// </summary>
public static class BootMsrs
{
    public const uint Ia32Tsc = 0x10;
    public const uint Ia32ArchCapabilities = 0x10a;
    public const uint Ia32SysenterCs = 0x174, Ia32SysenterEsp = 0x175, Ia32SysenterEip = 0x176;
    public const uint Ia32MiscEnable = 0x1a0;
    public const uint MtrrDefType = 0x2ff;
    public const uint Star = 0xc000_0081, Lstar = 0xc000_0082, Cstar = 0xc000_0083, SyscallMask = 0xc000_0084;
    public const uint KernelGsBase = 0xc000_0102;

    /// <summary>IA32_MISC_ENABLE bit 0: fast-strings (rep movs/stos) enabled, as firmware leaves it.</summary>
    public const ulong MiscEnableFastString = 1;
    /// <summary>MTRRdefType: MTRRs enabled (bit 11), default memory type write-back (6). Without it the guest
    /// sees all memory as uncached and Linux warns and disables PAT.</summary>
    public const ulong MtrrDefTypeEnabledWriteBack = (1UL << 11) | 6;

    /// <summary>The boot MSR list, minus any the template says this host cannot set.</summary>
    public static KvmMsrEntry[] Entries(ICpuTemplate? template = null)
    {
        ReadOnlySpan<(uint Index, ulong Value)> all =
        [
            (Ia32SysenterCs, 0), (Ia32SysenterEsp, 0), (Ia32SysenterEip, 0),
            (Star, 0), (Cstar, 0), (KernelGsBase, 0), (SyscallMask, 0), (Lstar, 0),
            (Ia32Tsc, 0),
            (Ia32MiscEnable, MiscEnableFastString),
            (MtrrDefType, MtrrDefTypeEnabledWriteBack),
        ];
        var list = new List<KvmMsrEntry>(all.Length);
        foreach (var (i, v) in all)
            if (template == null || !template.SkipMsr(i)) list.Add(new KvmMsrEntry { Index = i, Data = v });
        return list.ToArray();
    }
}

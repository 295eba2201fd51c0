using Flint.Kvm;

namespace Flint.Arch.X86;

/// <summary>
/// For hosts whose /dev/kvm is the software kvm_pvm module: guest code runs through KVM's instruction
/// emulator, which cannot execute some instructions and ends the VM with "KVM internal error. Suberror: 1"
/// when it meets one. The template hides what the kernel would otherwise use. kvm_pvm merges some host
/// feature bits back into the guest's CPUID, so the command-line flags do what CPUID edits cannot.
///
/// | feature (leaf.reg bit)            | why hidden                                                          |
/// |-----------------------------------|---------------------------------------------------------------------|
/// | CX16 (1.ecx 13)                   | `lock cmpxchg16b` is not emulated; this edit is honoured            |
/// | XSAVE, OSXSAVE (1.ecx 26, 27)     | xsave/xrstor are not emulated (also `noxsave`: the bit comes back)  |
/// | AVX (1.ecx 28), FMA (12), F16C (29) | need XSAVE-managed YMM state                                      |
/// | AVX2 (7.0.ebx 5)                  | needs XSAVE (YMM)                                                   |
/// | AVX-512 F/DQ/IFMA/PF/ER/CD/BW/VL (7.0.ebx 16,17,21,26,27,28,30,31) | need XSAVE (ZMM/opmask) |
/// | AVX-512 VBMI/VBMI2/VNNI/BITALG/VPOPCNTDQ (7.0.ecx 1,6,11,12,14) | need XSAVE               |
/// | VAES, VPCLMULQDQ (7.0.ecx 9, 10)  | VEX/EVEX-encoded: need AVX                                           |
/// | AVX512 4VNNIW/4FMAPS/VP2INTERSECT/FP16 (7.0.edx 2,3,8,23) | need XSAVE                      |
/// | AMX BF16/TILE/INT8 (7.0.edx 22,24,25) | need XSAVE (tile state)                                         |
/// | AVX-VNNI, AVX512_BF16 (7.1.eax 4, 5) | need AVX                                                         |
/// | XOP, FMA4 (0x80000001.ecx 11, 16) | AMD AVX-encoded extensions: need AVX                                 |
/// | leaf 0xd (all subleaves) zeroed   | no XSAVE state components at all                                    |
/// | POPCNT (1.ecx 23)                 | not emulated; kvm_pvm restores the bit, so `clearcpuid=151` too     |
/// | SMAP (7.0.ebx 20)                 | `clac`/`stac` not emulated; bit comes back, so `clearcpuid=308` too |
/// | KVM STEAL_TIME (0x40000001.eax 5) | steal-time accounting cost ~15% of boot time on this host            |
/// | KVM PV_UNHALT (0x40000001.eax 7)  | pv spinlock kicks are hypercalls, and hypercalls re-execute forever  |
/// | KVM PV_SEND_IPI (…eax 11), PV_SCHED_YIELD (…eax 13) | hypercalls again                         |
///
/// Left alone on purpose: XSAVEERPTR (0x80000008.ebx 2) — hiding it makes Linux run the x87 `fnclex`
/// workaround, which the emulator also fails. MSR 0x10a (IA32_ARCH_CAPABILITIES) cannot be set on this host.
/// </summary>
public sealed class KvmPvmTemplate : ICpuTemplate
{
    public static readonly KvmPvmTemplate Instance = new();
    private KvmPvmTemplate() { }

    public string Name => "KvmPvm";

    /// <summary>
    /// noxsave: no xsave/xrstor; clearcpuid=151: POPCNT (word 4 bit 23); 308: SMAP (word 9 bit 20). The guest kernel
    /// lists `noxsave` among "Unknown kernel command line parameters" (no __setup handler claims it), yet its early
    /// CPU setup (cpu_parse_early_param) reads it from the raw command line: without it the boot dies on xsave.
    /// </summary>
    public string ExtraKernelCmdline => "noxsave clearcpuid=151,308";

    /// <summary>The Info line logged when the template is applied because the host was detected as kvm_pvm.</summary>
    public static string AppliedMessage(string reason) =>
        $"CPU template KvmPvm applied: host detected as kvm_pvm ({reason}). It hides the CPUID features KVM's "
        + $"instruction emulator cannot run and adds \"{Instance.ExtraKernelCmdline}\" to the kernel command line "
        + "(the guest kernel calls noxsave unknown, but its early CPU setup reads it). On such a host guest user "
        + "space cannot run: the kernel's \"Run /sbin/init as init process\" is as far as a boot gets, and the "
        + "init crash and kernel panic after it are expected.";

    public bool SkipMsr(uint index) => index == BootMsrs.Ia32ArchCapabilities;

    internal static readonly int[] Leaf1Ecx = [12, 13, 23, 26, 27, 28, 29];
    internal static readonly int[] Leaf7Ebx = [5, 16, 17, 20, 21, 26, 27, 28, 30, 31];
    internal static readonly int[] Leaf7Ecx = [1, 6, 9, 10, 11, 12, 14];
    internal static readonly int[] Leaf7Edx = [2, 3, 8, 22, 23, 24, 25];
    internal static readonly int[] Leaf7Sub1Eax = [4, 5];
    internal static readonly int[] Ext1Ecx = [11, 16];
    internal static readonly int[] KvmFeaturesEax = [5, 7, 11, 13];

    public void Apply(List<KvmCpuidEntry2> entries)
    {
        CpuidEntries.ForLeaf(entries, 1, (ref KvmCpuidEntry2 e) => CpuidEntries.ClearBits(ref e.Ecx, Leaf1Ecx));
        CpuidEntries.ForSubleaf(entries, 7, 0, (ref KvmCpuidEntry2 e) =>
        {
            CpuidEntries.ClearBits(ref e.Ebx, Leaf7Ebx);
            CpuidEntries.ClearBits(ref e.Ecx, Leaf7Ecx);
            CpuidEntries.ClearBits(ref e.Edx, Leaf7Edx);
        });
        CpuidEntries.ForSubleaf(entries, 7, 1, (ref KvmCpuidEntry2 e) => CpuidEntries.ClearBits(ref e.Eax, Leaf7Sub1Eax));
        CpuidEntries.ForLeaf(entries, 0xd, (ref KvmCpuidEntry2 e) => e.Eax = e.Ebx = e.Ecx = e.Edx = 0);
        CpuidEntries.ForLeaf(entries, 0x8000_0001, (ref KvmCpuidEntry2 e) => CpuidEntries.ClearBits(ref e.Ecx, Ext1Ecx));
        CpuidEntries.ForLeaf(entries, 0x4000_0001, (ref KvmCpuidEntry2 e) => CpuidEntries.ClearBits(ref e.Eax, KvmFeaturesEax));
    }
}

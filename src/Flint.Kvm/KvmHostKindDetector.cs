using System.Runtime.Intrinsics.X86;

namespace Flint.Kvm;

/// <summary>
/// Detects a kvm_pvm host in a way that also works inside the jailer's chroot, where /sys is not mounted:
/// KVM needs VMX (Intel) or SVM (AMD) in hardware unless it is kvm_pvm, so a host CPU that reports neither (the CPUID
/// instruction, no file and no syscall, so it works under any seccomp filter too) serves /dev/kvm with kvm_pvm.
/// /sys/module/kvm_pvm, when visible, also counts: kvm_pvm can be loaded on a VMX/SVM machine.
/// </summary>
public static class KvmHostKindDetector
{
    public const string PvmModuleDir = "/sys/module/kvm_pvm";

    /// <summary>The decision, from what was observed (pure, for tests).</summary>
    public static KvmHostDetection Decide(bool pvmModuleVisible, bool cpuHasVmx, bool cpuHasSvm)
    {
        if (pvmModuleVisible)
            return new(KvmHostKind.KvmPvm, $"the kvm_pvm module is loaded ({PvmModuleDir} exists)");
        if (!cpuHasVmx && !cpuHasSvm)
            return new(KvmHostKind.KvmPvm, "the host CPU has neither VMX nor SVM, so /dev/kvm is the software kvm_pvm module");
        return new(KvmHostKind.Hardware, cpuHasVmx ? "the host CPU has VMX" : "the host CPU has SVM");
    }

    /// <summary>Detects this host's kind.</summary>
    public static KvmHostDetection Detect() =>
        Decide(Directory.Exists(PvmModuleDir), CpuHasVmx(), CpuHasSvm());

    /// <summary>CPUID.1:ECX bit 5.</summary>
    public static bool CpuHasVmx() => X86Base.IsSupported && (X86Base.CpuId(1, 0).Ecx & (1 << 5)) != 0;

    /// <summary>CPUID.80000001h:ECX bit 2 (only when the extended leaf exists).</summary>
    public static bool CpuHasSvm()
    {
        if (!X86Base.IsSupported) return false;
        if ((uint)X86Base.CpuId(unchecked((int)0x8000_0000), 0).Eax < 0x8000_0001) return false;
        return (X86Base.CpuId(unchecked((int)0x8000_0001), 0).Ecx & (1 << 2)) != 0;
    }
}

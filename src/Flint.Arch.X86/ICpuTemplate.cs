using Flint.Kvm;

namespace Flint.Arch.X86;

/// <summary>
/// A CPU template: CPUID edits for every vCPU, kernel command line flags for what CPUID edits cannot achieve
/// on the host, and MSRs the host cannot set.
/// </summary>
public interface ICpuTemplate
{
    string Name { get; }

    /// <summary>Edits a vCPU's CPUID list in place (after <see cref="CpuidNormalizer.Normalize"/>).</summary>
    void Apply(List<KvmCpuidEntry2> entries);

    /// <summary>Flags to append to the guest command line; empty for none.</summary>
    string ExtraKernelCmdline { get; }

    /// <summary>True when MSR <paramref name="index"/> must not be written (KVM_SET_MSRS would fail on it).</summary>
    bool SkipMsr(uint index);
}

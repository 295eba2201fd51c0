namespace Flint.Vmm.Snapshot;

/// <summary>
/// The MSRs a snapshot saves: KVM_GET_MSR_INDEX_LIST (every MSR KVM saves and emulates, kvm-clock's and the TSC
/// among them) without the ones KVM lists but cannot read in Flint's VMs, as Firecracker's msr.rs filters it
/// (PMU counters hidden by the CPUID normalisation, MCG_CTL, nested VMX, Hyper-V). A rare MSR the host still refuses
/// is dropped when it is first read (VcpuStateCodec). The TSC goes first and the TSC deadline last: KVM takes the
/// deadline relative to the guest's TSC, so the TSC has to be restored before it.
/// </summary>
public static class MsrsToSaveList
{
    public const uint Tsc = 0x10, TscDeadline = 0x6e0;

    private static readonly (uint First, uint Count)[] Undumpable =
    [
        (0x309, 4),          // MSR_ARCH_PERFMON_FIXED_CTR0..3
        (0x38d, 4),          // MSR_CORE_PERF_FIXED_CTR_CTRL, GLOBAL_STATUS, GLOBAL_CTRL, GLOBAL_OVF_CTRL
        (0xc1, 8),           // MSR_ARCH_PERFMON_PERFCTR0..7
        (0x186, 8),          // MSR_ARCH_PERFMON_EVENTSEL0..7
        (0x17b, 1),          // MSR_IA32_MCG_CTL
        (0x480, 18),         // MSR_IA32_VMX_BASIC .. VMFUNC
        (0x40000000, 0x100), // Hyper-V
        (0xc0010000, 4),     // AMD PERF_CTL0..3
        (0xc0010004, 4),     // AMD PERF_CTR0..3
        (0xc0010200, 12),    // AMD PERF_CTL/CTR core extension
    ];

    public static bool ShouldSave(uint index)
    {
        foreach (var (first, count) in Undumpable)
            if (index - first < count) return false;
        return true;
    }

    public static uint[] Filter(IEnumerable<uint> indexList)
    {
        var set = new HashSet<uint>(indexList.Where(ShouldSave)) { Tsc };
        return [.. set.OrderBy(i => i == Tsc ? 0 : i == TscDeadline ? 2 : 1).ThenBy(i => i)];
    }
}

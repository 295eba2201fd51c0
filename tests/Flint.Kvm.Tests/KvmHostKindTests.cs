using Flint.Kvm;

namespace Flint.Kvm.Tests;

/// <summary>
/// kvm_pvm detection must work inside the jailer's chroot, where /sys/module is not visible: a jailed flint used to
/// skip the KvmPvm template there and its real-kernel boot died with "KVM internal error ... Suberror: 1".
/// </summary>
public class KvmHostKindTests
{
    [Theory]
    [InlineData(true, false, false)]   // outside a jail on a kvm_pvm host (no VMX/SVM)
    [InlineData(false, false, false)]  // the same host seen from inside the jail: no /sys, CPUID still tells
    [InlineData(true, true, false)]    // kvm_pvm loaded on a VMX machine: only the module says so
    [InlineData(true, false, true)]
    public void A_kvm_pvm_host_is_detected(bool module, bool vmx, bool svm)
    {
        var d = KvmHostKindDetector.Decide(module, vmx, svm);
        Assert.Equal(KvmHostKind.KvmPvm, d.Kind);
        Assert.Contains("kvm_pvm", d.Reason);
    }

    [Theory]
    [InlineData(true, false, "VMX")]
    [InlineData(false, true, "SVM")]
    [InlineData(true, true, "VMX")]
    public void A_hardware_host_is_not_taken_for_kvm_pvm(bool vmx, bool svm, string reason)
    {
        var d = KvmHostKindDetector.Decide(false, vmx, svm);
        Assert.Equal(KvmHostKind.Hardware, d.Kind);
        Assert.Contains(reason, d.Reason);
    }

    [Fact]
    public void Detection_reads_the_cpu_flags_the_kernel_reports()
    {
        // CPUID from user space agrees with /proc/cpuinfo's flags (the kernel may clear a flag it disabled, so
        // only "reported by the kernel => seen by CPUID" is checked).
        var flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags")).Split(' ');
        if (flags.Contains("vmx")) Assert.True(KvmHostKindDetector.CpuHasVmx());
        if (flags.Contains("svm")) Assert.True(KvmHostKindDetector.CpuHasSvm());
        bool pvmModule = Directory.Exists(KvmHostKindDetector.PvmModuleDir);
        var d = KvmHostKindDetector.Detect();
        if (pvmModule || (!flags.Contains("vmx") && !flags.Contains("svm"))) Assert.Equal(KvmHostKind.KvmPvm, d.Kind);
    }
}

namespace Flint.Bench.Harness;

/// <summary>
/// The accelerator QEMU runs with: KVM whenever this user can open /dev/kvm, so both VMMs run their guests on the same
/// KVM and the ratios compare like with like; TCG only where KVM cannot be used, and then the rows say so. On a kvm_pvm
/// host QEMU's guest gets what Flint's KvmPvm template gives Flint's (the CPU flags and cmdline bench/device/kvm_check.py
/// boots QEMU with there), since Flint adds those itself.
/// </summary>
internal static class QemuAccel
{
    public static readonly bool Kvm = KvmUsable();

    /// <summary>"KVM" or "TCG", for labels and logs.</summary>
    public static string Name => Kvm ? "KVM" : "TCG";

    /// <summary>The same rule as Flint's (src/Flint.Kvm/KvmHostKindDetector.cs): the module, or a CPU without VMX/SVM.</summary>
    public static readonly bool Pvm = Directory.Exists("/sys/module/kvm_pvm") || !CpuHasVmxOrSvm();

    public static string[] Args => Kvm
        ? ["-accel", "kvm", "-cpu", Pvm ? "host,-arch-capabilities,-cx16,-kvm-steal-time" : "host"]
        : ["-accel", "tcg"];

    /// <summary>What Flint's KvmPvm template appends to a Linux guest's cmdline, for QEMU's guest on such a host.</summary>
    public static string LinuxCmdlineExtra => Kvm && Pvm ? " noxsave clearcpuid=151,308" : "";

    /// <summary>The label of QEMU's guest-running rows: null on KVM (comparable), a warning under TCG.</summary>
    public static string? GuestRowLabel => Kvm ? null : "TCG: reference only, not comparable to KVM";

    /// <summary>The label of QEMU's rows that run no guest code (-S): the accelerator still shapes the process.</summary>
    public static string RestLabel(string rest) => $"{Name}, {rest}";

    private static bool KvmUsable()
    {
        try { using var f = new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    private static bool CpuHasVmxOrSvm()
    {
        try
        {
            var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal))?.Split(' ') ?? [];
            return flags.Contains("vmx") || flags.Contains("svm");
        }
        catch (IOException) { return true; }
    }
}

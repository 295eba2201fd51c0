namespace Flint.Bench.Harness;

/// <summary>
/// What kind of host the numbers come from, for the report's headings: hardware KVM, kvm_pvm (software, no VMX/SVM),
/// nested KVM inside tests/nested-kvm's L1 (itself emulated by QEMU TCG, so every guest-running figure is slow and
/// means something only as a ratio), or no KVM at all.
/// </summary>
internal static class HostKind
{
    /// <summary>tests/nested-kvm/l1-init is PID 1 of an L1 booted with this on its cmdline.</summary>
    public static readonly bool Nested = ReadOr("/proc/cmdline", "").Contains("flint_nested_run=", StringComparison.Ordinal);

    public static readonly bool DevKvm = File.Exists("/dev/kvm");

    public static bool Pvm => DevKvm && QemuAccel.Pvm;

    /// <summary>The short name used in headings and labels.</summary>
    public static string Short => !DevKvm ? "no KVM" : Nested ? "nested KVM" : Pvm ? "kvm_pvm" : "hardware KVM";

    /// <summary>One sentence for the host table.</summary>
    public static string Describe()
    {
        if (!DevKvm) return "no /dev/kvm: Flint cannot run a guest here";
        string mods = string.Join(", ", new[] { "kvm_intel", "kvm_amd", "kvm_pvm" }.Where(m => Directory.Exists($"/sys/module/{m}")));
        if (Nested)
            return $"nested KVM ({mods}) inside tests/nested-kvm's L1, a Linux VM run by QEMU TCG (binary translation) on the " +
                   "outer host: every guest exit goes through emulated SVM, so guest-running figures are slow; read them as ratios";
        return Pvm ? $"kvm_pvm ({mods}): software KVM without VMX/SVM, guest code runs through KVM's instruction emulator"
                   : $"hardware KVM ({mods})";
    }

    private static string ReadOr(string path, string fallback)
    {
        try { return File.ReadAllText(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return fallback; }
    }
}

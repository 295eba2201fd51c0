using System.Diagnostics;

namespace Flint.Bench.Harness;

/// <summary>
/// The accelerator QEMU runs with: KVM whenever this user can open /dev/kvm and QEMU really starts with
/// `-accel kvm` and the CPU model below (a quick probe, <see cref="Detect"/>), so both VMMs run their guests on the
/// same KVM and the ratios compare like with like; TCG only where KVM cannot be used, and then the rows say so. On a
/// kvm_pvm host QEMU's guest gets what Flint's KvmPvm template gives Flint's (the CPU flags and cmdline
/// bench/device/kvm_check.py boots QEMU with there), since Flint adds those itself.
/// </summary>
internal static class QemuAccel
{
    public static bool Kvm { get; private set; }

    /// <summary>Why QEMU is on TCG (null on KVM): no /dev/kvm, or what the probe said.</summary>
    public static string? TcgReason { get; private set; } = "not probed";

    /// <summary>"KVM" or "TCG", for labels and logs.</summary>
    public static string Name => Kvm ? "KVM" : "TCG";

    /// <summary>The same rule as Flint's (src/Flint.Kvm/KvmHostKindDetector.cs): the module, or a CPU without VMX/SVM.</summary>
    public static readonly bool Pvm = Directory.Exists("/sys/module/kvm_pvm") || !CpuHasVmxOrSvm();

    private static string[] KvmArgs => ["-accel", "kvm", "-cpu", Pvm ? "host,-arch-capabilities,-cx16,-kvm-steal-time" : "host"];

    public static string[] Args => Kvm ? KvmArgs : ["-accel", "tcg"];

    /// <summary>What Flint's KvmPvm template appends to a Linux guest's cmdline, for QEMU's guest on such a host.</summary>
    public static string LinuxCmdlineExtra => Kvm && Pvm ? " noxsave clearcpuid=151,308" : "";

    /// <summary>The label of QEMU's guest-running rows: null on KVM (comparable), a warning under TCG.</summary>
    public static string? GuestRowLabel => Kvm ? null : "TCG: reference only, not comparable to KVM";

    /// <summary>The label of QEMU's rows that run no guest code (-S): the accelerator still shapes the process.</summary>
    public static string RestLabel(string rest) => $"{Name}, {rest}";

    /// <summary>
    /// Decides the accelerator once per run: /dev/kvm must open read-write, and QEMU must start paused with the KVM
    /// arguments and answer QMP (a kvm_pvm host or a QEMU built without KVM can refuse them; the reason is kept).
    /// </summary>
    public static void Detect(string qemu)
    {
        if (!DevKvmUsable()) { Kvm = false; TcgReason = "no usable /dev/kvm"; return; }
        string? err = Probe(qemu);
        Kvm = err == null;
        TcgReason = err == null ? null : "qemu -accel kvm failed: " + err;
    }

    private static string? Probe(string qemu)
    {
        var psi = new ProcessStartInfo(qemu)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in (string[])["-M", "microvm", "-S", "-nodefaults", "-display", "none", "-monitor", "none", .. KvmArgs,
                     "-m", "64", "-smp", "1", "-qmp", "stdio"])
            psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            p.StandardInput.Write("{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n");
            p.StandardInput.Close();
            var stderr = p.StandardError.ReadToEndAsync();
            var stdout = p.StandardOutput.ReadToEndAsync();
            int limitS = 15 * Measurements.Patience;
            if (!p.WaitForExit(limitS * 1000)) { p.Kill(); return $"no answer within {limitS} s"; }
            if (p.ExitCode == 0 && stdout.Result.Contains("\"return\"", StringComparison.Ordinal)) return null;
            string e = stderr.Result.Trim();
            return e.Length > 0 ? e.Split('\n')[0] : $"exit status {p.ExitCode}";
        }
        catch (Exception e) when (e is IOException or System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return e.Message;
        }
    }

    private static bool DevKvmUsable()
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

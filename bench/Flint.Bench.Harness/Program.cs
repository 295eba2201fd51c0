using System.Diagnostics;
using System.Text.Json;

namespace Flint.Bench.Harness;

/// <summary>
/// Usage (from the repository root; bench/run drives it):
///   Flint.Bench.Harness measure [--smoke] [--only startup,memory,...,snapshot] --out artifacts/bench/harness.json
///     --only: a comma list of the steps to run (startup, memory, latency, apirate, boot, bootmemory, block, creation, snapshot);
///     default all. --creation-batch N: VMs launched at once in the creation-rate step (default max(16, 2 x cores)). A nested-KVM run (tests/nested-kvm) picks the guest-running ones, the rest need no KVM.
///   Flint.Bench.Harness report --harness artifacts/bench/harness.json --micro artifacts/bench/micro.json --out docs/benchmarks [--prefix nested-]
/// </summary>
public static class Program
{
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static int Main(string[] args)
    {
        if (args.Length == 0) { Console.Error.WriteLine("usage: measure|report ..."); return 2; }
        string? Arg(string name) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }
        bool smoke = args.Contains("--smoke");
        switch (args[0])
        {
            case "measure":
                return Measure(smoke, Arg("--out") ?? "artifacts/bench/harness.json", Arg("--only"),
                int.TryParse(Arg("--creation-batch"), out int b) && b > 0 ? b : null);
            case "report":
                Report.Write(Arg("--harness") ?? "artifacts/bench/harness.json", Arg("--micro") ?? "artifacts/bench/micro.json",
                    Arg("--out") ?? "docs/benchmarks", Arg("--prefix") ?? "");
                return 0;
            default: Console.Error.WriteLine($"unknown command {args[0]}"); return 2;
        }
    }

    private static readonly string[] Steps = ["startup", "memory", "latency", "apirate", "bootmemory", "block", "boot", "creation", "snapshot"];

    private static int Measure(bool smoke, string outPath, string? only, int? creationBatch)
    {
        var steps = only?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? Steps;
        if (steps.FirstOrDefault(x => !Steps.Contains(x)) is { } bad) { Console.Error.WriteLine($"unknown step {bad} (known: {string.Join(", ", Steps)})"); return 2; }
        string root = Directory.GetCurrentDirectory();
        string qemu = FindInPath("qemu-system-x86_64") ?? throw new FileNotFoundException("qemu-system-x86_64 not in PATH");
        var s = new Measurements.Settings(smoke, root,
            Path.Combine(root, "artifacts/bin/flint"), qemu,
            Path.Combine(root, "tests/testguest/out/testguest.elf"),
            Path.Combine(root, "artifacts/guest/vmlinux"), Path.Combine(root, "artifacts/guest/rootfs.ext4"), creationBatch);
        foreach (var f in new[] { s.Flint, s.TestGuest, s.Kernel, s.Rootfs })
            if (!File.Exists(f)) throw new FileNotFoundException($"missing {f} (bench/run builds it)");

        QemuAccel.Detect(qemu);
        var r = new HarnessResults { Smoke = smoke, Steps = only, StartedUtc = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss 'UTC'") };
        HostInfo.Collect(r.Host, qemu, "start");
        var sw = Stopwatch.StartNew();
        var m = new Measurements(s, r);
        m.Checkpoint = () => Save(r, outPath, sw.Elapsed.TotalSeconds);
        try
        {
            // Each step interleaves Flint and QEMU runs (A B A B).
            var run = new Dictionary<string, Action>
            {
                ["startup"] = m.Startup, ["memory"] = m.Memory, ["latency"] = m.Latency, ["apirate"] = m.ApiRate, ["boot"] = m.Boot,
                ["bootmemory"] = m.MemoryAfterBoot, ["block"] = m.Block, ["creation"] = m.CreationRate, ["snapshot"] = m.Snapshots,
            };
            foreach (var step in Steps.Where(steps.Contains))
            {
                // One step that fails (a VMM that cannot start here, a bound that was too short) is noted in the report
                // and the others still run.
                try { run[step](); }
                catch (Exception e) when (e is TimeoutException or InvalidOperationException or IOException)
                {
                    r.Notes.Add($"step {step} stopped early: {e.Message}");
                    Console.WriteLine($"harness: step {step} stopped early: {e}");
                }
                // Saved after every step: a run cut short (a nested L1's time limit) keeps what it measured.
                Save(r, outPath, sw.Elapsed.TotalSeconds);
            }
        }
        finally { m.Cleanup(); }
        HostInfo.Collect(r.Host, qemu, "end");
        Save(r, outPath, sw.Elapsed.TotalSeconds);
        Console.WriteLine($"harness: {r.Series.Count} series in {r.TotalSeconds:F1} s -> {outPath}");
        return 0;
    }

    private static void Save(HarnessResults r, string outPath, double seconds)
    {
        r.TotalSeconds = seconds;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
        File.WriteAllText(outPath + ".tmp", JsonSerializer.Serialize(r, Json));
        File.Move(outPath + ".tmp", outPath, true);
    }

    internal static string? FindInPath(string exe) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':').Select(d => Path.Combine(d, exe)).FirstOrDefault(File.Exists);
}

internal static class HostInfo
{
    public static void Collect(Dictionary<string, string> h, string qemu, string phase)
    {
        h[$"loadavg ({phase})"] = Read("/proc/loadavg").Split(' ').Take(3).Aggregate((a, b) => a + " " + b);
        if (phase != "start") return;
        var cpuinfo = Read("/proc/cpuinfo").Split('\n');
        string Field(string k) => cpuinfo.FirstOrDefault(l => l.StartsWith(k, StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        var flags = Field("flags").Split(' ');
        h["CPU"] = $"{Field("model name")} ({Environment.ProcessorCount} logical CPUs visible)";
        h["virtualisation flags"] = (flags.Contains("vmx") ? "vmx " : "") + (flags.Contains("svm") ? "svm " : "") +
                                    (flags.Contains("hypervisor") ? "(running under a hypervisor)" : "") is { Length: > 0 } v ? v.Trim() : "none";
        h["memory"] = $"{long.Parse(Read("/proc/meminfo").Split('\n')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024} MiB";
        h["kernel"] = Read("/proc/sys/kernel/osrelease").Trim();
        h["/dev/kvm"] = File.Exists("/dev/kvm") ? "present" : "absent";
        h["host kind"] = HostKind.Describe();
        var mods = new[] { "kvm", "kvm_intel", "kvm_amd", "kvm_pvm" }.Where(m => Directory.Exists($"/sys/module/{m}")).ToList();
        h["KVM modules loaded"] = mods.Count > 0 ? string.Join(", ", mods) : "none";
        h[".NET"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;
        h["QEMU"] = Run(qemu, "--version").Split('\n')[0];
        h["QEMU accelerator"] = QemuAccel.Kvm
            ? "kvm (the same KVM as Flint's guests" + (QemuAccel.Pvm ? "; kvm_pvm: the CPU flags and cmdline of Flint's KvmPvm template)" : ")")
            : $"tcg ({QemuAccel.TcgReason})";
        h["git commit"] = Run("git", "rev-parse --short HEAD").Trim() + (Run("git", "status --porcelain --untracked-files=no src").Trim().Length > 0 ? " (src/ has uncommitted changes)" : "");
        h["flint binary"] = "artifacts/bin/flint (NativeAOT, scripts/setup.sh)";
    }

    private static string Read(string p) { try { return File.ReadAllText(p); } catch (IOException) { return "?"; } }

    private static string Run(string exe, string args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string o = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return o;
        }
        catch (Exception e) { return $"? ({e.Message})"; }
    }
}

using System.Diagnostics;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Flint.Jailer.Tests;

/// <summary>
/// Shared set-up: the published jailer, a static stand-in exec file, a scratch chroot base and a cgroup parent
/// name unique to this run. Everything is removed in <see cref="Dispose"/>.
/// </summary>
public sealed class JailerHarness : IDisposable
{
    public const string ExecName = "flint-standin";
    public string RepoRoot { get; }
    public string JailerPath { get; }
    public string Scratch { get; }
    public string BaseDir { get; }
    public string StandIn { get; }
    public string CgroupParent { get; }
    public string? SkipReason { get; }

    public JailerHarness()
    {
        RepoRoot = FindRepoRoot();
        JailerPath = Path.Combine(RepoRoot, "artifacts", "bin", "flint-jailer");
        Scratch = Path.Combine("/tmp", $"flint-jailer-tests-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        BaseDir = Path.Combine(Scratch, "base");
        StandIn = Path.Combine(Scratch, ExecName);
        CgroupParent = $"flint-jailer-tests-{Environment.ProcessId}";

        if (!OperatingSystem.IsLinux()) { SkipReason = "Linux only"; return; }
        if (Environment.UserName != "root" && Run("id", "-u").Out.Trim() != "0") { SkipReason = "needs root"; return; }
        if (!File.Exists(JailerPath))
        {
            SkipReason = $"{JailerPath} missing: dotnet publish src/Flint.Jailer -c Release -r linux-x64 -o artifacts/bin -p:DebugType=none";
            return;
        }
        Directory.CreateDirectory(BaseDir);
        var cc = Run("gcc", "-static", "-O2", "-o", StandIn, Path.Combine(RepoRoot, "tests", "Flint.Jailer.Tests", "standin.c"));
        if (cc.Code != 0) SkipReason = $"cannot build the stand-in with gcc -static: {cc.Err}";
    }

    private static string FindRepoRoot()
    {
        for (string? d = AppContext.BaseDirectory; d != null; d = Path.GetDirectoryName(d))
            if (File.Exists(Path.Combine(d, "Flint.sln"))) return d;
        throw new InvalidOperationException("Flint.sln not found above " + AppContext.BaseDirectory);
    }

    public string JailDir(string id) => Path.Combine(BaseDir, ExecName, id);
    public string JailRoot(string id) => Path.Combine(JailDir(id), "root");

    /// <summary>The arguments every jail needs, then <paramref name="extra"/>.</summary>
    public List<string> Args(string id, params string[] extra)
    {
        var a = new List<string> { "--id", id, "--exec-file", StandIn, "--uid", "1234", "--gid", "2345", "--chroot-base-dir", BaseDir };
        a.AddRange(extra);
        return a;
    }

    public Process Start(IEnumerable<string> args, Dictionary<string, string>? env = null, string? wrapper = null)
    {
        var psi = new ProcessStartInfo(wrapper ?? JailerPath)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (wrapper != null) { psi.ArgumentList.Add("-c"); psi.ArgumentList.Add("exec 7</etc/hostname 8>/dev/null; exec \"$0\" \"$@\""); psi.ArgumentList.Add(JailerPath); }
        foreach (string a in args) psi.ArgumentList.Add(a);
        if (env != null) foreach (var kv in env) psi.Environment[kv.Key] = kv.Value;
        return Process.Start(psi)!;
    }

    /// <summary>Runs the jailer until it exits: exit code, stdout, stderr, and whether both streams reached EOF
    /// soon after (they do not when a non-daemonized VMM inherited them).</summary>
    public (int Code, string Out, string Err, bool Eof) RunJailerEx(IEnumerable<string> args, int timeoutMs = 30_000)
    {
        using Process p = Start(args);
        var so = new System.Text.StringBuilder();
        var se = new System.Text.StringBuilder();
        var eofOut = new TaskCompletionSource();
        var eofErr = new TaskCompletionSource();
        p.OutputDataReceived += (_, e) => { if (e.Data == null) eofOut.TrySetResult(); else lock (so) so.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data == null) eofErr.TrySetResult(); else lock (se) se.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(timeoutMs)) { p.Kill(); throw new TimeoutException("flint-jailer did not exit"); }
        bool eof = Task.WaitAll([eofOut.Task, eofErr.Task], 2000);
        lock (so) lock (se) return (p.ExitCode, so.ToString(), se.ToString(), eof);
    }

    public (int Code, string Out, string Err) RunJailer(IEnumerable<string> args, int timeoutMs = 30_000)
    {
        var (code, o, e, _) = RunJailerEx(args, timeoutMs);
        return (code, o, e);
    }

    /// <summary>Waits for the stand-in's report in the jail root and parses it (key -> values).</summary>
    public Report WaitReport(string id, int timeoutMs = 20_000)
    {
        string path = Path.Combine(JailRoot(id), "report.txt");
        var sw = Stopwatch.StartNew();
        while (!File.Exists(path))
        {
            if (sw.ElapsedMilliseconds > timeoutMs) throw new TimeoutException($"no report from jail {id}");
            Thread.Sleep(5);
        }
        return new Report(File.ReadAllLines(path));
    }

    /// <summary>The pid the jailer wrote for jail <paramref name="id"/>. Waits for it: with --new-pid-ns the jailer writes
    /// the file after clone, so the VMM inside can have exec'd and reported before the file is there.</summary>
    public int PidFromFile(string id, int timeoutMs = 10_000)
    {
        string path = Path.Combine(JailRoot(id), ExecName + ".pid");
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (int.TryParse(File.ReadAllText(path).Trim(), out int pid)) return pid;
            }
            catch (FileNotFoundException) { }
            if (sw.ElapsedMilliseconds > timeoutMs) throw new TimeoutException($"no pid file from jail {id}");
            Thread.Sleep(5);
        }
    }

    /// <summary>Lets a --hold stand-in exit and waits until it is gone (or a zombie nobody reaps).</summary>
    public void Release(string id, int hostPid)
    {
        File.WriteAllText(Path.Combine(JailRoot(id), "exit"), "");
        var sw = Stopwatch.StartNew();
        while (IsAlive(hostPid) && sw.ElapsedMilliseconds < 20_000) Thread.Sleep(5);
    }

    public static bool IsAlive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException) { return false; }
    }

    public static string NsLink(int pid, string ns) => new FileInfo($"/proc/{pid}/ns/{ns}").LinkTarget ?? "";

    /// <summary>Removes a jail directory and the test cgroups for an id.</summary>
    public void Cleanup(string id)
    {
        try { Directory.Delete(JailDir(id), recursive: true); } catch (DirectoryNotFoundException) { }
        foreach (string dir in CgroupDirs(id)) TryRmdir(dir);
    }

    public IEnumerable<string> CgroupDirs(string id)
    {
        foreach (string m in CgroupMounts())
        {
            yield return Path.Combine(m, CgroupParent, id);
            yield return Path.Combine(m, ExecName, id);
        }
    }

    public static List<string> CgroupMounts() =>
        File.ReadAllLines("/proc/mounts").Select(l => l.Split(' ')).Where(f => f.Length > 3 && f[2] is "cgroup" or "cgroup2")
            .Select(f => f[1]).ToList();

    public static string? MountOf(string controllerV1) =>
        File.ReadAllLines("/proc/mounts").Select(l => l.Split(' '))
            .FirstOrDefault(f => f.Length > 3 && f[2] == "cgroup" && f[3].Split(',').Contains(controllerV1))?[1];

    public static string? UnifiedMount() =>
        File.ReadAllLines("/proc/mounts").Select(l => l.Split(' ')).FirstOrDefault(f => f.Length > 3 && f[2] == "cgroup2")?[1];

    public static void TryRmdir(string dir)
    {
        for (int i = 0; i < 50 && Directory.Exists(dir); i++)
        {
            try { Directory.Delete(dir); return; }
            catch (IOException) { Thread.Sleep(20); } // a just-exited task can linger for a moment
        }
    }

    public static (int Code, string Out, string Err) Run(string file, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in args) psi.ArgumentList.Add(a);
            using Process p = Process.Start(psi)!;
            string o = p.StandardOutput.ReadToEnd(), e = p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, o, e);
        }
        catch (System.ComponentModel.Win32Exception ex) { return (127, "", ex.Message); }
    }

    /// <summary>CLOCK_MONOTONIC in microseconds (Stopwatch uses it on Linux).</summary>
    public static ulong MonoUs() => (ulong)(Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000));

    public void Dispose()
    {
        foreach (string m in CgroupMounts())
        {
            string p = Path.Combine(m, CgroupParent);
            if (!Directory.Exists(p)) continue;
            foreach (string d in Directory.GetDirectories(p, "*", SearchOption.AllDirectories).OrderByDescending(x => x.Length)) TryRmdir(d);
            TryRmdir(p);
        }
        try { Directory.Delete(Scratch, recursive: true); } catch (Exception) { }
    }
}

/// <summary>The stand-in's key=value report.</summary>
public sealed class Report(string[] lines)
{
    public IReadOnlyList<string> All(string key) =>
        lines.Where(l => l.StartsWith(key + "=", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..]).ToList();

    public string this[string key] => All(key).FirstOrDefault() ?? throw new KeyNotFoundException(key);

    public IReadOnlyList<string> Args => All("arg");

    /// <summary>The value after <paramref name="flag"/> in the stand-in's argv.</summary>
    public string ArgAfter(string flag)
    {
        var a = Args;
        int i = a.ToList().IndexOf(flag);
        return i >= 0 && i + 1 < a.Count ? a[i + 1] : throw new KeyNotFoundException(flag);
    }

    /// <summary>Entries under the jail root: path -> (type, mode, uid, gid, major, minor).</summary>
    public Dictionary<string, string[]> Entries =>
        All("entry").Select(e => e.Split(' ')).ToDictionary(f => f[1], f => new[] { f[0], f[2], f[3], f[4], f[5], f[6] });
}

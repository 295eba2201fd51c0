using System.Diagnostics;
using System.Text;

namespace Flint.Vmm.Tests;

/// <summary>Paths in the repository and a way to run the published `artifacts/bin/flint` as a real process.</summary>
internal static class Repo
{
    public static readonly string Root = FindRoot();
    public static string Flint => Path.Combine(Root, "artifacts", "bin", "flint");
    public static string GuestDir => Path.Combine(Root, "artifacts", "guest");
    /// <summary>The Uffd backend's page-fault handler (scripts/setup.sh publishes it beside flint).</summary>
    public static string UffdHandler => Path.Combine(Root, "artifacts", "bin", "flint-uffd-handler");

    private static string FindRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "Flint.sln"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("Flint.sln not found above " + AppContext.BaseDirectory);
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed)
    {
        public string All => Stdout + Stderr;
    }

    /// <summary>Runs flint with <paramref name="args"/> to its end; fails the test if it runs past <paramref name="timeout"/>.</summary>
    public static Result RunFlint(TimeSpan timeout, params string[] args)
    {
        var (_, exited, r) = Run(timeout, static _ => false, args);
        if (!exited) Assert.Fail($"flint did not exit within {timeout}. stdout:\n{r.Stdout}\nstderr:\n{r.Stderr}");
        return r;
    }

    /// <summary>
    /// Runs flint until a stdout line satisfies <paramref name="milestone"/> (then kills it) or it exits or the
    /// timeout passes. Returns the output so far and whether the milestone was seen.
    /// </summary>
    public static (bool Seen, Result Result) RunFlintUntil(TimeSpan timeout, Func<string, bool> milestone, params string[] args)
    {
        var (seen, _, r) = Run(timeout, milestone, args);
        return (seen, r);
    }

    private static (bool Seen, bool Exited, Result Result) Run(TimeSpan timeout, Func<string, bool> milestone, string[] args)
    {
        Assert.True(File.Exists(Flint), $"{Flint} is missing: run scripts/setup.sh (it publishes the NativeAOT binary)");
        return RunProgram(Flint, timeout, milestone, args);
    }

    /// <summary>
    /// A shell command (ip netns, ip tuntap, chown) through the bounded runner: at most <paramref name="limit"/>
    /// (default 30 s), its output drained as it comes, killed at the limit (exit code -1 then).
    /// </summary>
    internal static Result Sh(string cmd, TimeSpan? limit = null) =>
        RunProgram("/bin/sh", limit ?? TimeSpan.FromSeconds(30), static _ => false, ["-c", cmd]).Result;

    /// <summary>The runner behind <see cref="RunFlint"/> for any program (its own tests run processes that misbehave).</summary>
    internal static (bool Seen, bool Exited, Result Result) RunProgram(string program, TimeSpan timeout, Func<string, bool> milestone, string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var so = new StringBuilder();
        var se = new StringBuilder();
        // Neither is disposed: the output callbacks may run after this returns (a child left behind holds the pipes
        // past the bounded waits below), and a Set or Signal on a disposed event would end the test host.
        var seen = new ManualResetEventSlim();
        var pipesClosed = new CountdownEvent(2); // each pipe's end (a null line)
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data == null) { pipesClosed.Signal(); return; }
            lock (so) so.AppendLine(e.Data);
            if (milestone(e.Data)) seen.Set();
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data == null) { pipesClosed.Signal(); return; }
            lock (se) se.AppendLine(e.Data);
        };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var exitedTask = Task.Run(() => p.WaitForExit(timeout));
        WaitHandle.WaitAny([seen.WaitHandle, ((IAsyncResult)exitedTask).AsyncWaitHandle], timeout);
        bool exited = p.HasExited;
        if (!exited) p.Kill(true);
        // Bounded, not WaitForExit(): that also waits for the pipes' end, which a child the process left behind can
        // hold off for as long as it lives; the output it has by then is what the test gets.
        p.WaitForExit(TimeSpan.FromSeconds(10));
        pipesClosed.Wait(TimeSpan.FromSeconds(5));
        lock (so) lock (se)
            return (seen.IsSet, exited, new Result(exited ? p.ExitCode : -1, so.ToString(), se.ToString(), sw.Elapsed));
    }

    /// <summary>
    /// Starts flint serving its API on <paramref name="sock"/> (stdout/stderr redirected) and returns once the socket
    /// file exists (flint renames it into place only after it listens) or the process has exited.
    /// </summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Process, System.Text.StringBuilder> s_output = new();

    /// <summary>What a process from <see cref="StartWithApi(string, string[])"/> wrote to stdout and stderr so far (all of it once it
    /// has exited: this waits for the pipes to drain then).</summary>
    public static string Output(Process p)
    {
        if (p.HasExited) p.WaitForExit();
        if (!s_output.TryGetValue(p, out var b)) return "";
        lock (b) return b.ToString();
    }

    /// <summary>Waits until <paramref name="p"/>'s output holds <paramref name="line"/>, the process exits or
    /// <paramref name="limit"/> passes, then asserts the line is there.</summary>
    public static void WaitForOutput(Process p, TimeSpan limit, string line)
    {
        var sw = Stopwatch.StartNew();
        while (!Output(p).Contains(line, StringComparison.Ordinal) && !p.HasExited && sw.Elapsed < limit) Thread.Sleep(20);
        Assert.Contains(line, Output(p));
    }

    public static Process StartWithApi(string sock, params string[] extra) =>
        StartServing(new ProcessStartInfo(Flint, ["--api-sock", sock, .. extra]), sock);

    /// <summary>As <see cref="StartWithApi(string, string[])"/>, with flint in network namespace <paramref name="netns"/>
    /// (where a test's tap lives); `ip netns exec` execs flint, so the process is flint's.</summary>
    public static Process StartWithApiInNetns(string netns, string sock, params string[] extra) =>
        StartServing(new ProcessStartInfo("ip", ["netns", "exec", netns, Flint, "--api-sock", sock, .. extra]), sock);

    private static Process StartServing(ProcessStartInfo psi, string sock)
    {
        Assert.True(File.Exists(Flint), $"{Flint} is missing: run scripts/setup.sh");
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        var p = Process.Start(psi)!;
        // Drain both pipes: flint logs two lines per API request (Firecracker's format), and a full pipe would block
        // its API thread mid-test (seen: a test waiting on an answer while fc_api sat in pipe_write).
        var output = new System.Text.StringBuilder();
        s_output.AddOrUpdate(p, output);
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (!File.Exists(sock) && !p.HasExited && sw.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(5);
        return p;
    }

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "flint-tests", Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(d);
        return d;
    }
}

using System.Diagnostics;
using System.Text;

namespace Flint.Client.Tests;

/// <summary>
/// The published <c>artifacts/bin/flint</c> serving its API on a socket in a temporary directory, optionally inside
/// a network namespace that holds a TAP device (for network interfaces and MMDS). Killed and cleaned up on dispose.
/// </summary>
internal sealed class FlintProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly string? _netns;

    public static readonly string RepoRoot = FindRoot();
    public static string Binary => Path.Combine(RepoRoot, "artifacts", "bin", "flint");

    private FlintProcess(string dir, string? netns, string id, string[] extra)
    {
        Dir = dir;
        _netns = netns;
        SocketPath = Path.Combine(dir, "api.sock");
        string[] flint = [Binary, "--api-sock", SocketPath, "--id", id, .. extra];
        var psi = netns == null ? new ProcessStartInfo(flint[0], flint[1..]) : new ProcessStartInfo("ip", ["netns", "exec", netns, .. flint]);
        psi.RedirectStandardOutput = psi.RedirectStandardError = psi.RedirectStandardInput = true;
        _process = Process.Start(psi)!;
        _process.StandardInput.Close();
        _process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_output) _output.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_output) _output.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (!File.Exists(SocketPath) && !_process.HasExited && sw.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(5);
        Assert.True(File.Exists(SocketPath), $"flint's API socket did not appear. Output:\n{Output}");
    }

    /// <summary>Starts flint; with <paramref name="withTap"/>, inside a new network namespace holding tap0 (null if that cannot be made here).</summary>
    public static FlintProcess? Start(string id, bool withTap = false, params string[] extra)
    {
        Assert.True(File.Exists(Binary), $"{Binary} is missing: run scripts/setup.sh (it publishes the NativeAOT binary)");
        var dir = Path.Combine(Path.GetTempPath(), "flint-client-tests", Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(dir);
        string? ns = null;
        if (withTap)
        {
            ns = $"flint-cl-{Environment.ProcessId % 10000}-{Random.Shared.Next(1000)}";
            if (Sh($"ip netns add {ns} && ip netns exec {ns} ip tuntap add dev tap0 mode tap && ip netns exec {ns} ip link set tap0 up") != 0)
            {
                Sh($"ip netns del {ns}");
                Directory.Delete(dir, true);
                return null;
            }
        }
        return new FlintProcess(dir, ns, id, extra);
    }

    public string Dir { get; }

    /// <summary>Whether flint runs in a network namespace that holds tap0.</summary>
    public bool HasTap => _netns != null;
    public string SocketPath { get; }

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>Waits (bounded) for <paramref name="text"/> in flint's output: lines arrive asynchronously.</summary>
    public bool WaitForOutput(string text, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (Output.Contains(text)) return true;
            Thread.Sleep(20);
        }
        return false;
    }

    public void Dispose()
    {
        if (!_process.HasExited) { _process.Kill(true); _process.WaitForExit(10_000); }
        _process.Dispose();
        if (_netns != null) Sh($"ip netns del {_netns}");
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }

    private static int Sh(string command)
    {
        using var p = Process.Start(new ProcessStartInfo("sh", ["-c", command + " >/dev/null 2>&1"]))!;
        if (!p.WaitForExit(30_000)) { p.Kill(true); return -1; }
        return p.ExitCode;
    }

    private static string FindRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "Flint.sln"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("Flint.sln not found above " + AppContext.BaseDirectory);
    }
}

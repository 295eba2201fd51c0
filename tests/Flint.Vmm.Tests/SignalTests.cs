using System.Diagnostics;
using System.Text.Json;

namespace Flint.Vmm.Tests;

/// <summary>Firecracker's signal policy on the real process: SIGPIPE counted and ignored; SIGHUP, SIGXFSZ, SIGXCPU, SIGBUS,
/// SIGSEGV and SIGILL log, flush their metric and exit with their codes.</summary>
public sealed class SignalTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData(1, 156)]   // SIGHUP
    [InlineData(25, 151)]  // SIGXFSZ
    [InlineData(24, 154)]  // SIGXCPU
    [InlineData(7, 149)]   // SIGBUS  (native handler + metrics watcher thread)
    [InlineData(11, 150)]  // SIGSEGV (sent, not a fault: never handed to the runtime)
    [InlineData(4, 157)]   // SIGILL
    public void Fatal_signals_exit_with_firecrackers_codes_after_flushing_metrics(int signo, int exitCode)
    {
        var sock = Path.Combine(_dir, "api.sock");
        var metrics = Path.Combine(_dir, "metrics.json");
        using var p = Repo.StartWithApi(sock, "--metrics-path", metrics);
        Assert.True(File.Exists(sock));
        Kill(p.Id, 13); // SIGPIPE: counted, not fatal
        Thread.Sleep(200);
        Assert.False(p.HasExited, "SIGPIPE killed flint");
        Kill(p.Id, signo);
        Assert.True(p.WaitForExit(10_000), "flint ignored the signal");
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        Assert.Equal(exitCode, p.ExitCode);
        Assert.Contains($"Shutting down VM after intercepting signal {signo}, code 0.", output);
        using var doc = JsonDocument.Parse(File.ReadAllLines(metrics).Last());
        var signals = doc.RootElement.GetProperty("signals");
        Assert.Equal(1, signals.GetProperty("sigpipe").GetInt64());
        string name = signo switch { 1 => "sighup", 25 => "sigxfsz", 24 => "sigxcpu", 7 => "sigbus", 11 => "sigsegv", _ => "sigill" };
        Assert.Equal(1, signals.GetProperty(name).GetInt64());
    }

    private static void Kill(int pid, int signo)
    {
        using var k = Process.Start("kill", [$"-{signo}", pid.ToString()]);
        k.WaitForExit();
    }
}

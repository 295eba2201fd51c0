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
        string output = Repo.Output(p);
        Assert.Equal(exitCode, p.ExitCode);
        Assert.Contains($"Shutting down VM after intercepting signal {signo}, code 0.", output);
        using var doc = JsonDocument.Parse(File.ReadAllLines(metrics).Last());
        var signals = doc.RootElement.GetProperty("signals");
        Assert.Equal(1, signals.GetProperty("sigpipe").GetInt64());
        string name = signo switch { 1 => "sighup", 25 => "sigxfsz", 24 => "sigxcpu", 7 => "sigbus", 11 => "sigsegv", _ => "sigill" };
        Assert.Equal(1, signals.GetProperty(name).GetInt64());
    }

    /// <summary>
    /// A log or metrics file that grows past RLIMIT_FSIZE: the kernel fails the write with EFBIG and sends SIGXFSZ. Flint
    /// must end as Firecracker does (151, its log line), not with the unhandled IOException of the EFBIG (exit 134).
    /// </summary>
    [Theory]
    [InlineData("metrics", 6000)] // one metrics line is about 3.5 KB: the second FlushMetrics crosses the limit
    [InlineData("log", 1200)]     // each PUT is logged (about 150 bytes)
    public void Writing_past_RLIMIT_FSIZE_exits_151_with_the_sigxfsz_line(string file, int limit)
    {
        var sock = Path.Combine(_dir, "api.sock");
        var psi = new ProcessStartInfo("prlimit", [$"--fsize={limit}", Repo.Flint, "--api-sock", sock,
            "--metrics-path", Path.Combine(_dir, "metrics.json"), "--log-path", Path.Combine(_dir, "log")])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while (!File.Exists(sock) && !p.HasExited && sw.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(5);
        for (int i = 0; i < 50 && !p.HasExited; i++)
        {
            try
            {
                using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                s.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(sock));
                string body = "{\"action_type\": \"FlushMetrics\"}";
                s.Send(System.Text.Encoding.ASCII.GetBytes($"PUT /actions HTTP/1.1\r\nContent-Length: {body.Length}\r\n\r\n{body}"));
                s.ReceiveTimeout = 5000;
                s.Receive(new byte[4096]);
            }
            catch (System.Net.Sockets.SocketException) { break; } // gone: it exited
            Thread.Sleep(file == "log" ? 10 : 100);
        }
        if (!p.WaitForExit(10_000)) { p.Kill(); Assert.Fail($"flint outlived RLIMIT_FSIZE on its {file} file"); }
        // The process has exited (waited above), so both reads are complete: .Result does not block here.
#pragma warning disable xUnit1031
        string output = stdout.Result + stderr.Result;
#pragma warning restore xUnit1031
        Assert.True(p.ExitCode == 151, $"exit {p.ExitCode}\n{output}");
        Assert.Contains("Shutting down VM after intercepting signal 25, code 0.", output);
        Assert.DoesNotContain("Unhandled exception", output);
    }

    private static void Kill(int pid, int signo)
    {
        using var k = Process.Start("kill", [$"-{signo}", pid.ToString()]);
        k.WaitForExit();
    }
}

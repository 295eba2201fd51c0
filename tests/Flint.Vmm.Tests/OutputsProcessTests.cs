using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Flint.Vmm.Tests;

/// <summary>
/// The published flint with its log and metrics on FIFOs nobody reads, on a full disk (/dev/full), and configured from
/// the config file: start-up and the API never wait on them, and an unwritten metrics line is not a success.
/// </summary>
public sealed class OutputsProcessTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private Process? _proc;

    public void Dispose()
    {
        if (_proc is { HasExited: false }) { _proc.Kill(true); _proc.WaitForExit(); }
        _proc?.Dispose();
        Directory.Delete(_dir, true);
    }

    private string Sock => Path.Combine(_dir, "api.sock");

    private string Fifo(string name)
    {
        string path = Path.Combine(_dir, name);
        using var p = Process.Start("mkfifo", [path]);
        p.WaitForExit();
        return path;
    }

    private static (int Status, string Body) Request(string sock, string method, string path, string? body = null)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10_000 };
        s.Connect(new UnixDomainSocketEndPoint(sock));
        string b = body ?? "";
        s.Send(Encoding.UTF8.GetBytes($"{method} {path} HTTP/1.1\r\nHost: localhost\r\n" +
            (body != null ? $"Content-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(b)}\r\n" : "") + "\r\n" + b));
        var buf = new byte[65536];
        int n = 0;
        while (true)
        {
            int got = s.Receive(buf, n, buf.Length - n, SocketFlags.None);
            if (got == 0) throw new IOException("connection closed");
            n += got;
            string text = Encoding.UTF8.GetString(buf, 0, n);
            int he = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (he < 0) continue;
            var m = System.Text.RegularExpressions.Regex.Match(text, "Content-Length: (\\d+)", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
            int len = m.Success ? int.Parse(m.Groups[1].Value) : 0;
            if (n < he + 4 + len) continue;
            return (int.Parse(text.Substring(9, 3)), text.Substring(he + 4, len));
        }
    }

    private static string Fault(string body) => JsonDocument.Parse(body).RootElement.GetProperty("fault_message").GetString()!;

    [Fact]
    public void Fifos_without_a_reader_block_neither_startup_nor_the_api()
    {
        string metrics = Fifo("metrics.fifo"), log = Fifo("log.fifo");
        _proc = Repo.StartWithApi(Sock, "--metrics-path", metrics, "--log-path", log, "--level", "Debug");
        Assert.True(File.Exists(Sock), "the API socket did not appear: start-up blocked on a FIFO");
        Assert.Equal(200, Request(Sock, "GET", "/").Status);
        // FlushMetrics is a runtime action in Firecracker main (refused before the start), so the pipe-full answer of a
        // flush is covered with a started VM in ControllerTests; here: the refusal comes at once and the VMM thread
        // keeps answering with a FIFO nobody reads behind the metrics.
        var sw = Stopwatch.StartNew();
        var r = Request(Sock, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
        Assert.Equal(400, r.Status);
        Assert.Equal("The requested operation is not supported before starting the microVM.", Fault(r.Body));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"the answer took {sw.Elapsed}");
        Assert.Equal(200, Request(Sock, "GET", "/machine-config").Status);
    }

    [Fact]
    public void Put_logger_and_metrics_on_fifos_without_a_reader_answer_at_once()
    {
        string metrics = Fifo("metrics.fifo"), log = Fifo("log.fifo");
        _proc = Repo.StartWithApi(Sock);
        Assert.True(File.Exists(Sock), "the API socket did not appear");
        var sw = Stopwatch.StartNew();
        Assert.Equal(204, Request(Sock, "PUT", "/logger", $"{{\"log_path\": \"{log}\", \"level\": \"Debug\"}}").Status);
        Assert.Equal(204, Request(Sock, "PUT", "/metrics", $"{{\"metrics_path\": \"{metrics}\"}}").Status);
        // Enough requests (each logged) to fill the log FIFO: the VMM thread drops lines instead of waiting.
        for (int i = 0; i < 1000; i++) Assert.Equal(200, Request(Sock, "GET", "/machine-config").Status); // ~100 KiB of log lines
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"took {sw.Elapsed}");
    }

    [Fact]
    public void FlushMetrics_on_a_full_disk_answers_an_error()
    {
        // Before the start Firecracker main refuses FlushMetrics; the full-disk answer of a flush on a started VM is
        // ControllerTests.FlushMetricsOnAFullDiskAnswersFirecrackersError. Here: metrics on /dev/full are accepted, the
        // pre-boot flush is refused without touching the file, and the process still answers.
        _proc = Repo.StartWithApi(Sock);
        Assert.True(File.Exists(Sock), "the API socket did not appear");
        Assert.Equal(204, Request(Sock, "PUT", "/metrics", "{\"metrics_path\": \"/dev/full\"}").Status);
        var (status, body) = Request(Sock, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
        Assert.Equal(400, status);
        Assert.Equal("The requested operation is not supported before starting the microVM.", Fault(body));
        Assert.Equal(200, Request(Sock, "GET", "/").Status);
    }

    private string Config(string sections)
    {
        string kernel = Path.Combine(_dir, "vmlinux");
        File.WriteAllBytes(kernel, new byte[4096]);
        string p = Path.Combine(_dir, "config.json");
        File.WriteAllText(p, $"{{\"boot-source\": {{\"kernel_image_path\": \"{kernel}\"}}, \"drives\": [], \"machine-config\": {{\"vcpu_count\": 1, \"mem_size_mib\": 128}}{sections}}}");
        return p;
    }

    [Fact]
    public void The_config_files_logger_and_metrics_are_applied()
    {
        string log = Path.Combine(_dir, "flint.log"), metrics = Path.Combine(_dir, "metrics.json");
        string cfg = Config($", \"logger\": {{\"log_path\": \"{log}\", \"level\": \"Debug\", \"show_level\": true}}, \"metrics\": {{\"metrics_path\": \"{metrics}\"}}");
        // No KVM here, and the kernel is zeros: the build fails, but only after the outputs were set up.
        var r = Repo.RunFlint(TimeSpan.FromSeconds(30), "--no-api", "--config-file", cfg);
        Assert.NotEqual(0, r.ExitCode);
        Assert.True(File.Exists(log), "the config file's log_path was ignored");
        Assert.Contains(":ERROR] Building VMM configured from cmdline json failed", File.ReadAllText(log));
        Assert.DoesNotContain("Building VMM configured from cmdline json failed", r.Stdout);
        Assert.True(File.Exists(metrics), "the config file's metrics_path was ignored");
    }

    [Fact]
    public void A_config_file_logger_path_that_cannot_be_opened_exits_1()
    {
        // Firecracker's main.rs: a config-file build error is MainError::RunWithoutApiError -> GenericError (1).
        string cfg = Config(", \"logger\": {\"log_path\": \"/nonexistent/dir/flint.log\"}");
        var r = Repo.RunFlint(TimeSpan.FromSeconds(30), "--no-api", "--config-file", cfg);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Logger error: Failed to open target file: No such file or directory (os error 2)", r.All);
    }
}

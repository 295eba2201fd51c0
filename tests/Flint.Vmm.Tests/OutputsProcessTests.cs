using System.Diagnostics;
using System.Text.Json;

namespace Flint.Vmm.Tests;

/// <summary>
/// The published flint with its log and metrics on FIFOs nobody reads, on a full disk (/dev/full), and configured from
/// the config file: start-up and the API never wait on them, and an unwritten metrics line is not a success.
/// </summary>
public sealed class OutputsProcessTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private FlintApiProcess? _flint;

    public void Dispose()
    {
        _flint?.Dispose();
        Directory.Delete(_dir, true);
    }

    private string Fifo(string name)
    {
        string path = Path.Combine(_dir, name);
        using var p = Process.Start("mkfifo", [path]);
        p.WaitForExit();
        return path;
    }

    private static string Fault(string body) => JsonDocument.Parse(body).RootElement.GetProperty("fault_message").GetString()!;

    [Fact]
    public void Fifos_without_a_reader_block_neither_startup_nor_the_api()
    {
        string metrics = Fifo("metrics.fifo"), log = Fifo("log.fifo");
        // The constructor fails unless the API socket appears: start-up must not block on a FIFO.
        _flint = new FlintApiProcess(_dir, "--metrics-path", metrics, "--log-path", log, "--level", "Debug");
        Assert.Equal(200, _flint.Request("GET", "/").Status);
        // FlushMetrics is a runtime action in Firecracker main (refused before the start), so the pipe-full answer of a
        // flush is covered with a started VM in ControllerTests; here: the refusal comes at once and the VMM thread
        // keeps answering with a FIFO nobody reads behind the metrics.
        var sw = Stopwatch.StartNew();
        var r = _flint.Request("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
        Assert.Equal(400, r.Status);
        Assert.Equal("The requested operation is not supported before starting the microVM.", Fault(r.Body));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"the answer took {sw.Elapsed}");
        Assert.Equal(200, _flint.Request("GET", "/machine-config").Status);
    }

    [Fact]
    public void Put_logger_and_metrics_on_fifos_without_a_reader_answer_at_once()
    {
        string metrics = Fifo("metrics.fifo"), log = Fifo("log.fifo");
        _flint = new FlintApiProcess(_dir);
        var sw = Stopwatch.StartNew();
        Assert.Equal(204, _flint.Request("PUT", "/logger", $"{{\"log_path\": \"{log}\", \"level\": \"Debug\"}}").Status);
        Assert.Equal(204, _flint.Request("PUT", "/metrics", $"{{\"metrics_path\": \"{metrics}\"}}").Status);
        // Enough requests (each logged) to fill the log FIFO: the VMM thread drops lines instead of waiting.
        for (int i = 0; i < 1000; i++) Assert.Equal(200, _flint.Request("GET", "/machine-config").Status); // ~100 KiB of log lines
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"took {sw.Elapsed}");
    }

    [Fact]
    public void FlushMetrics_on_a_full_disk_answers_an_error()
    {
        // Before the start Firecracker main refuses FlushMetrics; the full-disk answer of a flush on a started VM is
        // ControllerTests.FlushMetrics_on_a_full_disk_answers_Firecrackers_error. Here: metrics on /dev/full are accepted, the
        // pre-boot flush is refused without touching the file, and the process still answers.
        _flint = new FlintApiProcess(_dir);
        Assert.Equal(204, _flint.Request("PUT", "/metrics", "{\"metrics_path\": \"/dev/full\"}").Status);
        var (status, body) = _flint.Request("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
        Assert.Equal(400, status);
        Assert.Equal("The requested operation is not supported before starting the microVM.", Fault(body));
        Assert.Equal(200, _flint.Request("GET", "/").Status);
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

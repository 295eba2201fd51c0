using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Tests;

/// <summary>
/// Firecracker's log lines, ported from its tests: the line format (tests/integration_tests/functional/
/// test_logging.py: check_log_message_format, test_log_config), the API request lines (test_logging.py:
/// test_api_requests_logs; src/firecracker/src/api_server/parsed_request.rs: test_describe), the start banner
/// (test_log_config: "Running Firecracker" on the first line) and the deprecation warning (test_api.py:
/// test_negative_machine_config_api). The process tests drive the published artifacts/bin/flint.
/// </summary>
[Collection("process logger")]
public sealed class ParityLoggingTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    // test_logging.py check_log_message_format: "YYYY-MM-DDTHH:MM:SS.NNNNNNNNN [ID:THREAD(:LEVEL)(:FILE:LINE)] MESSAGE".
    private static readonly Regex Plain = new(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9} \[api-log-1:[^:\]]+\] ");
    private static readonly Regex WithLevel = new(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9} \[api-log-1:[^:\]]+:(ERROR|WARN|INFO|DEBUG)\] ");
    private static readonly Regex WithOrigin = new(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9} \[api-log-1:[^:\]]+:[^:]+/[^:]+:[0-9]+\] ");

    /// <summary>Starts flint with the API, sends the requests, and returns its log (stdout) once it has them all.</summary>
    private string RunAndLog(string[] flags, params (string Method, string Path, string? Body)[] requests)
    {
        string sock = Path.Combine(_dir, Guid.NewGuid().ToString("n")[..8] + ".sock"); // a killed flint leaves its socket
        var psi = new ProcessStartInfo(Repo.Flint) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "--api-sock", sock, "--id", "api-log-1" }.Concat(flags)) psi.ArgumentList.Add(a);
        var log = new StringBuilder();
        using var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (log) log.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (log) log.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        try
        {
            var sw = Stopwatch.StartNew();
            while (!File.Exists(sock) && sw.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(5);
            Assert.True(File.Exists(sock), "API socket did not appear");
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(sock));
            s.ReceiveTimeout = 10000;
            foreach (var (m, path, body) in requests)
            {
                string req = $"{m} {path} HTTP/1.1\r\n" + (body != null ? $"Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n{body}" : "\r\n");
                s.Send(Encoding.UTF8.GetBytes(req));
                var buf = new byte[8192];
                Assert.True(s.Receive(buf) > 0);
            }
            Thread.Sleep(300); // lines written just before the answers reach the pipe
        }
        finally
        {
            p.Kill(true);
            p.WaitForExit();
        }
        lock (log) return log.ToString();
    }

    // test_logging.py: test_log_config (Info, show_level False, show_origin False) and test_api_requests_logs.
    [Fact]
    public void By_default_lines_carry_neither_level_nor_origin_and_the_banner_comes_first()
    {
        string body = "{\"vcpu_count\": 2, \"mem_size_mib\": 256}";
        string log = RunAndLog([], ("PUT", "/machine-config", body), ("GET", "/machine-config", null));
        var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Contains("Running Firecracker v", lines[0]);
        Assert.Matches(@"\] Running Firecracker v\d+\.\d+\.\d+(-dev)?$", lines[0]); // nothing after the version
        foreach (var l in lines) Assert.Matches(Plain, l);
        Assert.Contains("] The API server received a Put request on \"/machine-config\" with body \"{\\\"vcpu_count\\\": 2, \\\"mem_size_mib\\\": 256}\".", log);
        Assert.Contains("] The request was executed successfully. Status code: 204 No Content.", log);
        Assert.Contains("] The API server received a Get request on \"/machine-config\".", log);
        Assert.Contains("] The request was executed successfully. Status code: 200 OK.", log);
    }

    // test_logging.py: test_log_config (show_level True / show_origin True).
    [Fact]
    public void Show_level_and_show_log_origin_add_their_tags()
    {
        string log = RunAndLog(["--show-level"], ("GET", "/", null));
        foreach (var l in log.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)) Assert.Matches(WithLevel, l);
        Assert.Contains(":INFO] Running Firecracker v", log);
        log = RunAndLog(["--show-log-origin"], ("GET", "/", null));
        foreach (var l in log.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)) Assert.Matches(WithOrigin, l);
    }

    // test_logging.py: test_api_requests_logs (MMDS bodies are not logged; the fault message is logged as text).
    [Fact]
    public void Mmds_bodies_are_not_logged_and_errors_are_logged_as_text()
    {
        string log = RunAndLog([], ("PUT", "/mmds", "{\"secret\": \"s3cr3t\"}"), ("PUT", "/boot-source", "{\"kernel_image_path\": \"/nonexistent/vmlinux\"}"),
            ("GET", "/nonexistent", null));
        Assert.Contains("] The API server received a Put request on \"/mmds\".", log);
        Assert.DoesNotContain("s3cr3t", log);
        Assert.Matches(@"\] Received Error\. Status code: 400 Bad Request\. Message: [^{]", log);
        Assert.Contains("] Received Error. Status code: 400 Bad Request. Message: Invalid request method and/or path: GET nonexistent.", log);
        Assert.DoesNotContain("fault_message", log);
    }

    // test_api.py: test_negative_machine_config_api (the deprecation message is in the log).
    [Fact]
    public void A_deprecated_field_logs_firecrackers_warning()
    {
        string log = RunAndLog(["--show-level"], ("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpu_template\": \"None\"}"));
        Assert.Contains(":WARN] PUT /machine-config: cpu_template field is deprecated.", log);
    }

    // parsed_request.rs: test_describe.
    [Fact]
    public void Request_descriptions_are_firecrackers()
    {
        Assert.Equal("The API server received a Get request on \"path\".", ApiLogLines.Received("GET", "path", null));
        Assert.Equal("The API server received a Put request on \"/mmds\".", ApiLogLines.Received("PUT", "/mmds", "{}"));
        Assert.Equal("The API server received a Put request on \"path\" with body \"body\".", ApiLogLines.Received("PUT", "path", "body"));
        Assert.Equal("The API server received a Put request on \"/x\" with body \"a\\nb\\\"c\\\\\".", ApiLogLines.Received("PUT", "/x", "a\nb\"c\\"));
    }
}

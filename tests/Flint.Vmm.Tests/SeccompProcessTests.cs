using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace Flint.Vmm.Tests;

/// <summary>
/// flint's seccomp filters in the real process: the default filters let the API serve, and a custom filter that
/// forbids a syscall the API thread makes ends the process with exit 148 and Firecracker's log line.
/// </summary>
public sealed class SeccompProcessTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private static string DefaultFiltersJson() =>
        File.ReadAllText(Path.Combine(Repo.Root, "src", "Flint.Seccomp", "default-filters.json"));

    private (Process P, string Sock) Start(params string[] args)
    {
        var sock = Path.Combine(_dir, "api.sock");
        return (Repo.StartWithApi(sock, args), sock);
    }

    [Fact]
    public void Api_thread_killed_by_a_filter_that_forbids_accept_exits_148()
    {
        var root = JsonNode.Parse(DefaultFiltersJson())!;
        var api = root["api"]!["filter"]!.AsArray();
        foreach (var rule in api.Where(r => r!["syscall"]!.GetValue<string>() is "accept4" or "accept").ToList()) api.Remove(rule);
        var filter = Path.Combine(_dir, "filter.json");
        File.WriteAllText(filter, root.ToJsonString());

        var metrics = Path.Combine(_dir, "metrics.json");
        var (p, sock) = Start("--seccomp-filter", filter, "--metrics-path", metrics);
        using (p)
        {
            Assert.True(File.Exists(sock), "API socket did not appear");
            using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                s.Connect(new UnixDomainSocketEndPoint(sock));
                Assert.True(p.WaitForExit(10_000), "flint survived a forbidden syscall");
            }
            string all = Repo.Output(p);
            Assert.Equal(148, p.ExitCode);
            Assert.Contains("Shutting down VM after intercepting a bad syscall (288)", all); // 288 = accept4
            // The handler woke the metrics watcher, which flushed before exiting.
            var last = JsonNode.Parse(File.ReadAllLines(metrics).Last())!;
            Assert.Equal(1, last["seccomp"]!["num_faults"]!.GetValue<long>());
        }
    }

    [Fact]
    public void Default_filters_let_the_api_serve_many_requests()
    {
        var (p, sock) = Start();
        using (p)
        {
            try
            {
                for (int c = 0; c < 20; c++)
                {
                    using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    s.Connect(new UnixDomainSocketEndPoint(sock));
                    for (int i = 0; i < 20; i++)
                    {
                        s.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8);
                        var buf = new byte[4096];
                        int n = s.Receive(buf);
                        Assert.StartsWith("HTTP/1.1 200", System.Text.Encoding.ASCII.GetString(buf, 0, n));
                    }
                }
                Assert.False(p.HasExited, "flint died under its default filters");
            }
            finally { if (!p.HasExited) { p.Kill(); p.WaitForExit(); } }
        }
    }

    /// <summary>"Name Seccomp-mode" for each thread of <paramref name="pid"/> (threads that end meanwhile are left out).</summary>
    internal static List<(string Name, int Mode)> ThreadSeccompModes(int pid)
    {
        var threads = new List<(string, int)>();
        foreach (var t in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            string status;
            try { status = File.ReadAllText(Path.Combine(t, "status")); }
            catch (IOException) { continue; }
            var name = System.Text.RegularExpressions.Regex.Match(status, @"^Name:\t(.*)$", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value;
            var mode = System.Text.RegularExpressions.Regex.Match(status, @"^Seccomp:\t(\d)$", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value;
            threads.Add((name, int.Parse(mode)));
        }
        return threads;
    }

    /// <summary>
    /// Every thread of a flint serving its API before boot runs under a filter, the runtime's own (".NET Finalizer",
    /// ".NET SigHandler", ".NET Sockets") and the main thread included: the process baseline goes on all of them at
    /// start-up, and threads created later inherit it. (Flint's own signal handlers are native: no thread-pool worker
    /// runs them.)
    /// </summary>
    [Fact]
    public void Every_thread_runs_under_a_filter_before_boot()
    {
        var (p, sock) = Start("--metrics-path", Path.Combine(_dir, "metrics.json"), "--log-path", Path.Combine(_dir, "log"));
        using (p)
        {
            try
            {
                using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
                {
                    s.Connect(new UnixDomainSocketEndPoint(sock));
                    s.Send("PUT /actions HTTP/1.1\r\nContent-Length: 30\r\n\r\n{\"action_type\":\"FlushMetrics\"}"u8);
                    var buf = new byte[4096];
                    // Refused before the start (Firecracker main), after a trip through the VMM thread's queue.
                    Assert.StartsWith("HTTP/1.1 400", System.Text.Encoding.ASCII.GetString(buf, 0, s.Receive(buf)));
                }
                Kill(p.Id, 13); // SIGPIPE: counted by a native handler, no runtime thread wakes for it
                Thread.Sleep(300);
                var threads = ThreadSeccompModes(p.Id);
                string all = string.Join(", ", threads.Select(t => $"{t.Name}={t.Mode}"));
                Assert.True(threads.Count >= 3, all); // main, fc_api, the runtime's finalizer at least
                Assert.All(threads, t => Assert.True(t.Mode == 2, $"thread '{t.Name}' runs without a filter: {all}"));
                Assert.False(p.HasExited, "flint died under its filters");
            }
            finally { if (!p.HasExited) { p.Kill(); p.WaitForExit(); } }
        }
    }

    [Fact]
    public void No_seccomp_leaves_every_thread_unfiltered()
    {
        var (p, _) = Start("--no-seccomp");
        using (p)
        {
            try { Assert.All(ThreadSeccompModes(p.Id), t => Assert.Equal(0, t.Mode)); }
            finally { if (!p.HasExited) { p.Kill(); p.WaitForExit(); } }
        }
    }

    private static void Kill(int pid, int signo)
    {
        using var k = Process.Start("kill", [$"-{signo}", pid.ToString()])!;
        k.WaitForExit();
    }

    [Fact]
    // Firecracker's main.rs: MainError::SeccompFilter -> FcExitCode::GenericError (1); 152 is only for --level.
    public void Invalid_filter_file_exits_1()
    {
        var filter = Path.Combine(_dir, "bad.json");
        File.WriteAllText(filter, "{\"vmm\": {\"default_action\": \"trap\", \"filter_action\": \"allow\", \"filter\": [{\"syscall\": \"no_such_call\"}]}}");
        var r = Repo.RunFlint(TimeSpan.FromSeconds(20), "--api-sock", Path.Combine(_dir, "s"), "--seccomp-filter", filter);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Seccomp error", r.All);
    }
}

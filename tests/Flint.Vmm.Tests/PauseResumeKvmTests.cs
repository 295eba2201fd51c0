using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// The pause/resume deadlock against the real binary and KVM: 10,000 PATCH /vm Paused/Resumed cycles while the
/// test guest runs; afterwards the API still answers and the guest still makes progress.
/// </summary>
public sealed class PauseResumeKvmTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private FlintApiProcess? _flint;

    public void Dispose()
    {
        _flint?.Dispose();
        Directory.Delete(_dir, true);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Ten_thousand_pause_resume_cycles_leave_the_api_answering_and_the_guest_running()
    {
        KvmRequirement.Check();
        var metrics = Path.Combine(_dir, "metrics.json");
        StartFlint("--metrics-path", metrics);
        using var s = Connect();
        // Billions of PIO exits: the guest is busy on vCPU 0 for the whole test; vCPU 1 idles in the kernel (the
        // test guest never starts it), so both a busy and a halted vCPU are paused and resumed each cycle.
        Assert.Equal(204, Request(s, "PUT", "/boot-source",
            $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=pio tg.pio=4000000000\"}}").Status);
        Assert.Equal(204, Request(s, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}").Status);
        Assert.Equal(204, Request(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        Assert.True(SpinWait.SpinUntil(() => ExitsSoFar(s, metrics) > 0, 30_000), "the guest made no PIO exit after start");

        var sw = Stopwatch.StartNew();
        Bounded.Run(TimeSpan.FromMinutes(8), () =>
        {
            for (int i = 0; i < 10_000; i++)
            {
                var (st, body) = Request(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
                Assert.True(st == 204, $"pause {i}: {st} {body}");
                (st, body) = Request(s, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
                Assert.True(st == 204, $"resume {i}: {st} {body}");
            }
        }, "10,000 PATCH /vm pause/resume cycles");
        output.WriteLine($"10,000 pause/resume cycles over the API: {sw.Elapsed.TotalMilliseconds:F0} ms " +
                         $"({sw.Elapsed.TotalMilliseconds / 10_000:F3} ms per cycle)");

        Assert.Contains("\"Running\"", Request(s, "GET", "/").Body);
        long before = ExitsSoFar(s, metrics);
        Assert.True(SpinWait.SpinUntil(() => ExitsSoFar(s, metrics) > before + 1000, 30_000),
            $"the guest made no progress after the last resume ({before} PIO exits)");
        // Paused, it makes none.
        Assert.Equal(204, Request(s, "PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
        long paused = ExitsSoFar(s, metrics);
        Thread.Sleep(200);
        Assert.Equal(paused, ExitsSoFar(s, metrics));
        Assert.False(_flint!.Process.HasExited);
        output.WriteLine(_flint.Output);
    }

    private long _exitsTotal;

    /// <summary>
    /// Flushes the metrics and adds vcpu.exit_io_out from the line just written to the running total: like
    /// Firecracker's, each line holds the count since the previous flush (the first nested-KVM run read the last
    /// delta as a total and so saw "no progress" after 10,000 cycles that had all answered 204).
    /// </summary>
    private long ExitsSoFar(Socket s, string metricsPath)
    {
        Assert.Equal(204, Request(s, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}").Status);
        var last = File.ReadLines(metricsPath).Last();
        using var doc = JsonDocument.Parse(last);
        _exitsTotal += doc.RootElement.GetProperty("vcpu").GetProperty("exit_io_out").GetInt64();
        return _exitsTotal;
    }

    private void StartFlint(params string[] extra) => _flint = new FlintApiProcess(_dir, ["--id", "pause-resume", .. extra]);

    private Socket Connect() => _flint!.Connect();

    private static (int Status, string Body) Request(Socket s, string method, string path, string? body = null) =>
        ApiHttp.Request(s, method, path, body);
}

using System.Text.Json;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// On KVM: the test guest reports free pages to a balloon with free_page_reporting (tests/testguest/balloon.c,
/// "PASS balloon-report": the reported range reads back as zeros, so the host dropped it), runs a free page hinting
/// run the host starts through /balloon/hinting/*, and in both cases flint's resident guest memory falls by what the
/// guest handed over (measured from /proc/PID/smaps while the guest waits at each step, tg.balloon.host); a guest's
/// serial output goes to PUT /serial's serial_out_path instead of stdout.
/// </summary>
public sealed class FreePageReportingKvmTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(120);
    private const int GuestMib = 128;
    private const int HostStepMs = 120_000; // the guest's bound on each wait for us (a nested run is slow)

    /// <summary>
    /// At least this much of the 8 MiB the guest hands over must leave flint's resident guest memory: all of it
    /// goes (MADV_DONTNEED of whole 2 MiB ranges), less a margin for pages the guest touches meanwhile (its rings,
    /// stack and console buffer, a few KiB).
    /// </summary>
    private const long MinReturnedKib = (TestGuestImage.BalloonFreePageMib - 1) * 1024;
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Guest_reported_free_pages_are_dropped_by_the_host()
    {
        KvmRequirement.Check();
        var cmd = TestGuestImage.Build().Balloon(waitMs: 2000).BootTimer(false).ToString();
        var config = Path.Combine(_dir, "config.json");
        File.WriteAllText(config, $$"""
            {"boot-source": {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "{{cmd}}" },
             "drives": [],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 128 },
             "balloon": {"amount_mib": 8, "deflate_on_oom": false, "free_page_reporting": true} }
            """);
        var r = Repo.RunFlint(T, "--no-api", "--config-file", config);
        output.WriteLine(r.All);
        Assert.Equal(0, r.ExitCode);
        foreach (var l in TestGuestImage.BalloonPassLines(stats: false)) Assert.Contains(l, r.Stdout);
        Assert.Contains("PASS balloon-report", r.Stdout);
        Assert.Matches("fail=0", r.Stdout);
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Guest_reported_free_pages_leave_flints_resident_memory()
    {
        KvmRequirement.Check();
        using var flint = BootBalloonGuest("\"free_page_reporting\": true");
        int pid = flint.Process.Id;
        Assert.True(flint.WaitForOutput(TestGuestImage.BalloonReportPatterned, HostStepMs), flint.Output);
        long before = GuestMemoryRss.Kib(pid, (long)GuestMib << 20), processBefore = GuestMemoryRss.ProcessKib(pid);

        // A config change (a new target the test guest does not act on) lets the guest report its 8 MiB.
        Assert.Equal(204, flint.Request("PATCH", "/balloon", "{\"amount_mib\": 1}").Status);
        Assert.True(flint.WaitForOutput(TestGuestImage.BalloonReportReturned, HostStepMs), flint.Output);
        long after = GuestMemoryRss.Kib(pid, (long)GuestMib << 20), processAfter = GuestMemoryRss.ProcessKib(pid);
        Assert.Equal(204, flint.Request("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}").Status);
        Assert.Equal(204, flint.Request("PATCH", "/balloon", "{\"amount_mib\": 0}").Status);

        GuestFinished(flint, TestGuestImage.BalloonReport);
        AssertPagesReturned("free page reporting", "free_page_report", before, after, processBefore, processAfter);
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Guest_hinted_free_pages_leave_flints_resident_memory_during_a_hinting_run()
    {
        KvmRequirement.Check();
        using var flint = BootBalloonGuest("\"free_page_hinting\": true");
        int pid = flint.Process.Id;
        Assert.True(flint.WaitForOutput(TestGuestImage.BalloonHintPatterned, HostStepMs), flint.Output);
        Assert.Equal((200, """{"host_cmd":0,"guest_cmd":null}"""), flint.Request("GET", "/balloon/hinting/status"));
        long before = GuestMemoryRss.Kib(pid, (long)GuestMib << 20), processBefore = GuestMemoryRss.ProcessKib(pid);

        // Without acknowledge_on_stop the guest holds its hinted pages after STOP until we say DONE: measure then.
        Assert.Equal(204, flint.Request("PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\": false}").Status);
        Assert.True(flint.WaitForOutput(TestGuestImage.BalloonHintStopped, HostStepMs), flint.Output);
        var status = flint.Request("GET", "/balloon/hinting/status");
        Assert.Equal(200, status.Status);
        var st = JsonDocument.Parse(status.Body).RootElement;
        Assert.Equal(2u, st.GetProperty("host_cmd").GetUInt32());  // the run's id: the first run is 2
        Assert.Equal(0u, st.GetProperty("guest_cmd").GetUInt32()); // the guest's STOP
        long after = GuestMemoryRss.Kib(pid, (long)GuestMib << 20), processAfter = GuestMemoryRss.ProcessKib(pid);

        Assert.Equal(204, flint.Request("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}").Status);

        Assert.Equal(204, flint.Request("PATCH", "/balloon/hinting/stop").Status);
        Assert.Equal((200, """{"host_cmd":1,"guest_cmd":0}"""), flint.Request("GET", "/balloon/hinting/status"));
        string log = GuestFinished(flint, TestGuestImage.BalloonHint);
        Assert.Contains("balloon-hint cmd_id=2", log);
        AssertPagesReturned("free page hinting", "free_page_hint", before, after, processBefore, processAfter);
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void A_resume_ends_a_hinting_run_with_DONE_as_Firecracker_kicks_its_balloon()
    {
        KvmRequirement.Check();
        using var flint = BootBalloonGuest("\"free_page_hinting\": true");
        Assert.True(flint.WaitForOutput(TestGuestImage.BalloonHintPatterned, HostStepMs), flint.Output);
        Assert.Equal(204, flint.Request("PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\": false}").Status);
        Assert.True(flint.WaitForOutput(TestGuestImage.BalloonHintStopped, HostStepMs), flint.Output);
        Assert.Equal((200, """{"host_cmd":2,"guest_cmd":0}"""), flint.Request("GET", "/balloon/hinting/status"));

        // Firecracker's resume_vm kicks the balloon: DONE and a config interrupt, without /balloon/hinting/stop.
        Assert.Equal(204, flint.Request("PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
        Assert.Equal((200, """{"host_cmd":2,"guest_cmd":0}"""), flint.Request("GET", "/balloon/hinting/status"));
        Assert.Equal(204, flint.Request("PATCH", "/vm", "{\"state\": \"Resumed\"}").Status);
        Assert.Equal((200, """{"host_cmd":1,"guest_cmd":0}"""), flint.Request("GET", "/balloon/hinting/status"));
        GuestFinished(flint, TestGuestImage.BalloonHint);
    }

    /// <summary>flint with an API socket, booting the test guest's balloon test with a balloon (the given free page
    /// field) and tg.balloon.host, so the guest waits for us at each free page step.</summary>
    private FlintApiProcess BootBalloonGuest(string freePageField)
    {
        var cmd = TestGuestImage.Build().Balloon(hostMs: HostStepMs).BootTimer(false).ToString();
        File.WriteAllText(MetricsPath, "");
        // flint's log to a file: on stdout its lines would cut the guest's console lines the test waits for (a nested
        // run saw "b<log line>alloon-hint cmd_id=2").
        var flint = new FlintApiProcess(_dir, "--metrics-path", MetricsPath, "--log-path", LogPath);
        try
        {
            Assert.Equal(204, flint.Request("PUT", "/boot-source",
                $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"{cmd}\"}}").Status);
            Assert.Equal(204, flint.Request("PUT", "/machine-config", $"{{\"vcpu_count\": 1, \"mem_size_mib\": {GuestMib}}}").Status);
            Assert.Equal(204, flint.Request("PUT", "/balloon",
                $"{{\"amount_mib\": 0, \"deflate_on_oom\": false, {freePageField}}}").Status);
            Assert.Equal(204, flint.Request("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
            return flint;
        }
        catch
        {
            flint.Dispose();
            throw;
        }
    }

    private string MetricsPath => Path.Combine(_dir, "metrics.json");
    private string LogPath => Path.Combine(_dir, "flint.log");

    /// <summary>
    /// Waits for the guest to end its run, writes the console and flint's log to the test's output, and checks the
    /// guest passed <paramref name="test"/> with no failure; returns the console.
    /// </summary>
    private string GuestFinished(FlintApiProcess flint, string test)
    {
        Assert.True(flint.Process.WaitForExit((int)T.TotalMilliseconds), "the guest did not finish");
        string log = flint.Output;
        output.WriteLine(ConsoleAndLog(flint));
        Assert.Contains(TestGuestImage.Pass(test), log);
        Assert.Contains("fail=0", log);
        return log;
    }

    /// <summary>
    /// Firecracker's balloon metrics for <paramref name="metric"/> (free_page_report or free_page_hint; deltas per flush,
    /// summed): four 2 MiB ranges, all dropped; and at least <see cref="MinReturnedKib"/> of guest memory left flint.
    /// </summary>
    private void AssertPagesReturned(string what, string metric, long before, long after, long processBefore, long processAfter)
    {
        string figures = Figures(what, before, after, processBefore, processAfter);
        output.WriteLine(figures);
        Assert.Equal(4, BalloonMetric(metric + "_count"));
        Assert.Equal(TestGuestImage.BalloonFreePageMib << 20, BalloonMetric(metric + "_freed"));
        Assert.Equal(0, BalloonMetric(metric + "_fails"));
        Assert.True(before - after >= MinReturnedKib, figures);
    }

    /// <summary>The guest's console (flint's stdout and stderr) and flint's log, for the test's output.</summary>
    private string ConsoleAndLog(FlintApiProcess flint) =>
        flint.Output + "---- flint log\n" + (File.Exists(LogPath) ? File.ReadAllText(LogPath) : "(none)\n");

    /// <summary>A balloon counter summed over every line flint wrote to its metrics file (each line holds the change
    /// since the previous flush, as Firecracker's counters do).</summary>
    private long BalloonMetric(string name)
    {
        long sum = 0;
        foreach (var line in File.ReadLines(MetricsPath))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.TryGetProperty("balloon", out var b) && b.TryGetProperty(name, out var v)) sum += v.GetInt64();
        }
        return sum;
    }

    private static string Figures(string what, long before, long after, long processBefore, long processAfter) =>
        $"{what}: flint's resident guest memory {before} KiB -> {after} KiB ({(before - after) / 1024.0:F1} MiB returned of " +
        $"{TestGuestImage.BalloonFreePageMib} MiB handed over); process VmRSS {processBefore} KiB -> {processAfter} KiB";

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Serial_output_goes_to_serial_out_path()
    {
        KvmRequirement.Check();
        string serial = Path.Combine(_dir, "serial.out");
        var cmd = TestGuestImage.Build().BootTimer(false).ToString();
        using var flint = new FlintApiProcess(_dir);
        var p = flint.Process;
        using (var s = flint.Connect())
        {
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/boot-source",
                $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"{cmd}\"}}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/serial", $"{{\"serial_out_path\": \"{serial}\"}}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
            // (PUT /serial after the start is refused: ParityBehaviourTests; the guest may be gone by now.)
            Assert.True(p.WaitForExit((int)T.TotalMilliseconds), "the guest did not finish");
        }
        string console = File.ReadAllText(serial);
        output.WriteLine(console);
        Assert.Contains(TestGuestImage.StartLine, console);
        Assert.Contains(TestGuestImage.DonePrefix, console);
        Assert.DoesNotContain(TestGuestImage.StartLine, flint.Output);
    }
}

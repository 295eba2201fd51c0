using System.Text.Json;
using Flint.Vmm.Metrics;

namespace Flint.Vmm.Tests;

public class MetricsRegistryTests
{
    [Fact]
    public void Every_group_is_present_timestamp_first_and_counters_are_deltas()
    {
        var r = new MetricsRegistry();
        long exits = 10;
        r.Bind("vcpu", "exit_io_out", () => exits);
        r.Bind("api_server", "process_startup_time_us", () => 1234);
        using var first = JsonDocument.Parse(r.Snapshot(DateTimeOffset.FromUnixTimeMilliseconds(1000)));
        var props = first.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal("utc_timestamp_ms", props[0]);
        // vhost_user has only its per-device objects (Firecracker writes no aggregate for it).
        foreach (var g in FirecrackerMetricsSchema.Groups.Where(g => !g.NoAggregate))
        {
            Assert.Contains(g.Name, props);
            foreach (var c in g.Leaves.Where(l => !l.Path.Contains('.')))
                Assert.True(first.RootElement.GetProperty(g.Name).TryGetProperty(c.Path, out _), $"{g.Name}.{c.Path}");
        }
        Assert.Equal(10, first.RootElement.GetProperty("vcpu").GetProperty("exit_io_out").GetInt64());
        exits = 15;
        using var second = JsonDocument.Parse(r.Snapshot(DateTimeOffset.UtcNow));
        Assert.Equal(5, second.RootElement.GetProperty("vcpu").GetProperty("exit_io_out").GetInt64());
        Assert.Equal(1234, second.RootElement.GetProperty("api_server").GetProperty("process_startup_time_us").GetInt64()); // gauge
    }

    [Fact]
    public void Writer_appends_one_line_per_flush()
    {
        var path = Path.GetTempFileName();
        try
        {
            using (var w = new MetricsWriter(path, new MetricsRegistry()))
            {
                Assert.True(w.Flush());
                Assert.True(w.Flush());
            }
            var lines = File.ReadAllLines(path);
            Assert.Equal(2, lines.Length);
            foreach (var l in lines) JsonDocument.Parse(l).Dispose();
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData("GET", "/", 200, "get_api_requests", "instance_info_count")]
    [InlineData("GET", "/version/", 200, "get_api_requests", "vmm_version_count")]
    [InlineData("PUT", "/drives/root?x=1", 204, "put_api_requests", "drive_count")]
    [InlineData("PUT", "/mmds/config", 400, "put_api_requests", "mmds_fails")]
    [InlineData("PATCH", "/network-interfaces/eth0", 400, "patch_api_requests", "network_fails")]
    [InlineData("PATCH", "/machine-config", 204, "patch_api_requests", "machine_cfg_count")]
    public void Api_requests_are_counted_per_route(string method, string path, int status, string group, string counter)
    {
        var m = new ApiRequestMetrics();
        var r = new MetricsRegistry();
        m.BindTo(r);
        m.Record(method, path, status);
        m.Record("GET", "/balloon", 200);   // no Firecracker counter: ignored
        m.Record("DELETE", "/drives/x", 400);
        using var doc = JsonDocument.Parse(r.Snapshot(DateTimeOffset.UtcNow));
        long total = 0;
        foreach (var g in new[] { "get_api_requests", "put_api_requests", "patch_api_requests" })
            foreach (var p in doc.RootElement.GetProperty(g).EnumerateObject()) total += p.Value.GetInt64();
        Assert.Equal(1, doc.RootElement.GetProperty(group).GetProperty(counter).GetInt64());
        Assert.Equal(status >= 400 ? 2 : 1, total); // a failure also counts under *_count
    }
}

public sealed class StartupMetricTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private long StartupUs(params string[] extra)
    {
        var sock = Path.Combine(_dir, Guid.NewGuid().ToString("n")[..8] + ".sock");
        var metrics = Path.Combine(_dir, Guid.NewGuid().ToString("n")[..8] + ".json");
        using var p = Repo.StartWithApi(sock, ["--metrics-path", metrics, .. extra]);
        Thread.Sleep(100);
        using (var k = System.Diagnostics.Process.Start("kill", ["-HUP", p.Id.ToString()])) k.WaitForExit(); // exits 156 after a flush
        Assert.True(p.WaitForExit(10_000));
        using var doc = JsonDocument.Parse(File.ReadAllLines(metrics).Last());
        return doc.RootElement.GetProperty("api_server").GetProperty("process_startup_time_us").GetInt64();
    }

    [Fact]
    public void Startup_time_counts_from_the_jailers_start_when_given()
    {
        long alone = StartupUs();
        Assert.InRange(alone, 1, 5_000_000);
        // A jailer that started 2 s earlier (CLOCK_MONOTONIC, as Stopwatch reads it on Linux).
        long twoSecondsAgoUs = (long)(System.Diagnostics.Stopwatch.GetTimestamp() * (1_000_000.0 / System.Diagnostics.Stopwatch.Frequency)) - 2_000_000;
        long jailed = StartupUs("--start-time-us", twoSecondsAgoUs.ToString(), "--start-time-cpu-us", "0", "--parent-cpu-time-us", "0");
        Assert.InRange(jailed, 2_000_000, 12_000_000);
    }


    [Fact]
    public void Vhost_user_drives_get_vhost_user_block_objects_without_an_aggregate_and_no_block_object()
    {
        var r = new MetricsRegistry();
        var cfg = new Flint.Vmm.Config.VmConfig
        {
            Drives = [new() { DriveId = "vu", Socket = "/tmp/x.sock" }, new() { DriveId = "rootfs", PathOnHost = "/tmp/r.ext4" }],
        };
        VmmMetricsBinding.BindConfigured(r, () => cfg);
        using var doc = JsonDocument.Parse(r.Snapshot(DateTimeOffset.UtcNow));
        var root = doc.RootElement;
        var props = root.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains("vhost_user_block_vu", props);
        Assert.DoesNotContain("vhost_user", props);
        Assert.DoesNotContain("block_vu", props);
        Assert.Contains("block_rootfs", props);
        Assert.Equal(["activate_fails", "cfg_fails", "init_time_us", "activate_time_us", "config_change_time_us"],
            root.GetProperty("vhost_user_block_vu").EnumerateObject().Select(p => p.Name));
        // Firecracker's order: after pmem, before interrupts.
        Assert.True(props.IndexOf("pmem") < props.IndexOf("vhost_user_block_vu") && props.IndexOf("vhost_user_block_vu") < props.IndexOf("interrupts"));
        FirecrackerMetricsValidator.AssertConforms(root);
    }
}

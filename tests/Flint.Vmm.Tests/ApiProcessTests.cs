using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Flint.Client;
using Flint.Client.Models;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>The published flint binary driven over its real Unix-socket API, as firectl or the Go SDK would.</summary>
public sealed class ApiProcessTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private FlintApiProcess? _flint;

    public void Dispose()
    {
        _flint?.Dispose();
        Directory.Delete(_dir, true);
    }

    private string Sock => _flint!.Socket;

    private void StartFlint(params string[] extra) => _flint = new FlintApiProcess(_dir, ["--id", "api-test-1", .. extra]);

    private bool WaitForLog(string text) => _flint!.WaitForOutput(text);

    private static (int Status, string Body) Request(Socket s, string method, string path, string? body = null) =>
        ApiHttp.Request(s, method, path, body);

    private Socket Connect() => _flint!.Connect();

    [Fact]
    public void Api_answers_and_validates_before_boot()
    {
        StartFlint();
        using var s = Connect();
        var (st, body) = Request(s, "GET", "/");
        Assert.Equal(200, st);
        using (var doc = JsonDocument.Parse(body))
        {
            Assert.Equal("api-test-1", doc.RootElement.GetProperty("id").GetString());
            Assert.Equal("Not started", doc.RootElement.GetProperty("state").GetString());
        }
        Assert.Equal(204, Request(s, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}").Status);
        (st, body) = Request(s, "GET", "/machine-config");
        Assert.Equal(200, st);
        Assert.Contains("\"vcpu_count\":2", body.Replace(" ", ""));
        (st, body) = Request(s, "PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 256}");
        Assert.Equal(400, st);
        Assert.Contains("fault_message", body);
        (st, body) = Request(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
        Assert.Equal(400, st);
        Assert.Contains("The requested operation is not supported before starting the microVM.", body);
        (st, body) = Request(s, "GET", "/nope");
        Assert.Equal(400, st);
        Assert.Contains("Invalid request method and/or path: GET nope.", body);
        (st, _) = Request(s, "GET", "/vm/config");
        Assert.Equal(200, st);
        Assert.True(WaitForLog("API server started."), "no 'API server started.' line");
    }

    [Fact]
    public void Vm_config_round_trips_into_a_config_file()
    {
        StartFlint();
        using var s = Connect();
        var disk = Path.Combine(_dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 64);
        Assert.Equal(204, Request(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=blk\"}}").Status);
        Assert.Equal(204, Request(s, "PUT", "/drives/data", $"{{\"drive_id\": \"data\", \"path_on_host\": \"{disk}\", \"is_root_device\": false, " +
            "\"rate_limiter\": {\"bandwidth\": {\"size\": 1048576, \"refill_time\": 100}}}").Status);
        Assert.Equal(204, Request(s, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 96}").Status);
        Assert.Equal(204, Request(s, "PUT", "/entropy", "{}").Status);
        Assert.Equal(204, Request(s, "PUT", "/balloon", "{\"amount_mib\": 8, \"deflate_on_oom\": true}").Status);
        var (st, body) = Request(s, "GET", "/vm/config");
        Assert.Equal(200, st);
        // Feeding it back through the config-file path gives the same configuration.
        var cfg = Flint.Vmm.Config.ConfigLoader.Parse(body);
        Assert.Equal(2, cfg.MachineConfig!.VcpuCount);
        Assert.Equal(96, cfg.MachineConfig.MemSizeMib);
        Assert.Equal(disk, cfg.Drives.Single().PathOnHost);
        Assert.NotNull(cfg.Entropy);
        Assert.Equal(8u, Flint.Vmm.Config.DeviceConfigs.Balloon(cfg.Balloon!.Value).AmountMib);
        Assert.Equal(1048576ul, Flint.Vmm.Config.DeviceConfigs.Limiter(cfg.Drives[0].RateLimiter, "rl").Bandwidth!.Size);
        var file = Path.Combine(_dir, "from-api.json");
        File.WriteAllText(file, body);
        var r = Repo.RunFlint(TimeSpan.FromSeconds(60), "--no-api", "--config-file", file);
        if (!File.Exists("/dev/kvm"))
        {
            Assert.Equal(1, r.ExitCode); // accepted as configuration; only the missing KVM stops it
            Assert.Contains("/dev/kvm", r.All);
        }
        else
        {
            Assert.Equal(0, r.ExitCode);
            Assert.Contains("PASS blk", r.Stdout);
        }
    }

    [Fact]
    public void Metrics_can_be_configured_once_through_the_api()
    {
        StartFlint();
        var metrics = Path.Combine(_dir, "metrics.json");
        using var s = Connect();
        Assert.Equal(204, Request(s, "PUT", "/metrics", $"{{\"metrics_path\": \"{metrics}\"}}").Status);
        Assert.True(File.Exists(metrics));
        var (st, body) = Request(s, "PUT", "/metrics", $"{{\"metrics_path\": \"{metrics}\"}}");
        Assert.Equal(400, st);
        Assert.Contains("fault_message", body);

        // Firecracker's per-route API counters, flushed on request: counts for every call (before it runs), fails only
        // for the ones its parser refused (api_server/request/*.rs): the second PUT /metrics parses and is refused by
        // the VMM, so it is no fail; the bad boot-source body is one.
        Assert.Equal(200, Request(s, "GET", "/").Status);
        Assert.Equal(200, Request(s, "GET", "/machine-config").Status);
        Assert.Equal(400, Request(s, "PUT", "/boot-source", "{\"kernel_image_path\": 7}").Status);
        // FlushMetrics is refused before the start (Firecracker main); the line comes from the SIGHUP exit's flush.
        Assert.Equal(400, Request(s, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}").Status);
        using (var hup = Process.Start("kill", $"-HUP {_flint!.Process.Id}")) hup.WaitForExit();
        Assert.True(_flint.Process.WaitForExit(20_000), "flint did not exit on SIGHUP");
        var last = File.ReadAllLines(metrics).Last(l => l.Length > 0);
        using var doc = System.Text.Json.JsonDocument.Parse(last);
        long M(string g, string n) => doc.RootElement.GetProperty(g).GetProperty(n).GetInt64();
        Assert.Equal(1, M("get_api_requests", "instance_info_count"));
        Assert.Equal(1, M("get_api_requests", "machine_cfg_count"));
        Assert.Equal(1, M("put_api_requests", "boot_source_count"));
        Assert.Equal(1, M("put_api_requests", "boot_source_fails"));
        Assert.Equal(2, M("put_api_requests", "metrics_count"));
        Assert.Equal(0, M("put_api_requests", "metrics_fails"));
        Assert.Equal(1, M("put_api_requests", "actions_count")); // the flush counts itself, as Firecracker's parser does
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public async Task Getting_started_sequence_boots_the_test_guest_and_pauses_it()
    {
        // Driven through Flint.Client, as a .NET user (and flint-pool) would: the typed calls, faults as exceptions.
        var metrics = Path.Combine(_dir, "metrics.json");
        StartFlint("--boot-timer", "--metrics-path", metrics);
        using var vmm = new FirecrackerClient(Sock, new FirecrackerClientOptions { RequestTimeout = TimeSpan.FromSeconds(30) });
        var disk = Path.Combine(_dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 64);
        // 300 k PIO exits keep the guest running when the pause arrives (milliseconds after the start) and still
        // finish well inside the 120 s wait on the slowest KVM we run on (nested KVM under TCG, about 17 k exits/s).
        await vmm.PutBootSourceAsync(new BootSource { KernelImagePath = TestGuestImage.Path, BootArgs = "tg.tests=serial,blk tg.pio=300000" });
        await vmm.PutDriveAsync(new Drive { DriveId = "data", PathOnHost = disk, IsRootDevice = false, IsReadOnly = false });
        await vmm.PutMachineConfigAsync(new MachineConfiguration { VcpuCount = 1, MemSizeMib = 64 });
        if (!File.Exists("/dev/kvm"))
        {
            // Without KVM the start must fail cleanly with a 400 naming the cause, and the process stays up.
            var refused = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.StartInstanceAsync());
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("/dev/kvm", refused.FaultMessage);
            Assert.Equal(InstanceStates.NotStarted, (await vmm.GetInstanceInfoAsync()).State);
            KvmRequirement.Check();
        }
        await vmm.StartInstanceAsync();
        Assert.Equal(InstanceStates.Running, (await vmm.GetInstanceInfoAsync()).State);
        await vmm.PauseAsync();
        Assert.Equal(InstanceStates.Paused, (await vmm.GetInstanceInfoAsync()).State);
        await vmm.ResumeAsync();
        var e = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.PutBootSourceAsync(new BootSource { KernelImagePath = TestGuestImage.Path }));
        Assert.Equal("The requested operation is not supported after starting the microVM.", e.FaultMessage);
        Assert.True(_flint!.Process.WaitForExit(120_000), "guest did not finish");
        output.WriteLine(_flint.Output);
        Assert.Equal(0, _flint.Process.ExitCode);
        Assert.True(WaitForLog("fail=0"), "the test guest did not report fail=0");
        // Metrics were flushed before exit: JSON lines with the VM's exits counted.
        var lines = File.ReadAllLines(metrics);
        using var doc = JsonDocument.Parse(lines.Last());
        Assert.True(doc.RootElement.GetProperty("vcpu").GetProperty("exit_io_out").GetInt64() > 0,
            $"{lines.Length} metrics lines; the last: {lines.Last()}");
    }
}

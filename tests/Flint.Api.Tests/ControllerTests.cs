using System.Text.Json;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

public class ControllerTests
{
    private static string Esc(string p) => p.Replace("\\", "\\\\");

    private static string Drive(Env e, string id, bool root, string? path = null) =>
        $"{{\"drive_id\": \"{id}\", \"path_on_host\": \"{Esc(path ?? e.Rootfs)}\", \"is_root_device\": {(root ? "true" : "false")}}}";

    [Fact]
    public void Defaults_are_Firecrackers()
    {
        using var env = new Env();
        var mc = JsonDocument.Parse(env.Call("GET", "/machine-config").Body!).RootElement;
        Assert.Equal(1, mc.GetProperty("vcpu_count").GetInt32());
        Assert.Equal(128, mc.GetProperty("mem_size_mib").GetInt32());
        Assert.False(mc.GetProperty("smt").GetBoolean());
        Assert.Equal("None", mc.GetProperty("huge_pages").GetString());
    }

    [Fact]
    public void Drives_replace_by_id_and_only_one_root()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/drives/data", Drive(env, "data", false, env.Disk2)).Status);
        Assert.Equal(204, env.Call("PUT", "/drives/rootfs", Drive(env, "rootfs", true)).Status);
        Assert.Equal(204, env.Call("PUT", "/drives/rootfs", Drive(env, "rootfs", true)).Status); // same id: replaced
        string before = env.ConfigJson;
        var r = env.Call("PUT", "/drives/second", Drive(env, "second", true));
        Assert.Equal(400, r.Status);
        Assert.Equal("{\"fault_message\":\"Drive config error: A root block device already exists!\"}", r.Body);
        Assert.Equal(before, env.ConfigJson);
        var drives = env.Controller.Configuration.Drives;
        Assert.Equal(["rootfs", "data"], drives.Select(d => d.DriveId));
        // Replacing the root with a non-root frees the slot.
        Assert.Equal(204, env.Call("PUT", "/drives/rootfs", Drive(env, "rootfs", false)).Status);
        Assert.Equal(204, env.Call("PUT", "/drives/second", Drive(env, "second", true)).Status);
        Assert.Equal("second", env.Controller.Configuration.Drives[0].DriveId);
    }

    /// <summary>PUT /drives takes io_engine Async (io_uring works on this host) and GET /vm/config reports it.</summary>
    [Fact]
    public void Async_io_engine_is_accepted_and_reported()
    {
        using var env = new Env();
        string body = $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{Esc(env.Rootfs)}\", \"is_root_device\": true, \"io_engine\": \"Async\"}}";
        Assert.Equal(204, env.Call("PUT", "/drives/rootfs", body).Status);
        var drive = JsonDocument.Parse(env.Call("GET", "/vm/config").Body!).RootElement.GetProperty("drives")[0];
        Assert.Equal("Async", drive.GetProperty("io_engine").GetString());
    }

    [Fact]
    public void Missing_backing_files_are_refused_at_PUT()
    {
        using var env = new Env();
        var r = env.Call("PUT", "/drives/rootfs", Drive(env, "rootfs", true, "/nonexistent/disk.img"));
        Assert.Equal(400, r.Status);
        Assert.Contains("/nonexistent/disk.img", r.Body);
        r = env.Call("PUT", "/boot-source", "{\"kernel_image_path\": \"/nonexistent/vmlinux\"}");
        Assert.Equal(400, r.Status);
        Assert.StartsWith("Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)", JsonDocument.Parse(r.Body!).RootElement.GetProperty("fault_message").GetString());
        Assert.Null(env.Controller.Configuration.BootSource);
    }

    [Fact]
    public void A_drive_path_that_is_a_directory_is_refused_in_words()
    {
        using var env = new Env();
        var r = env.Call("PUT", "/drives/rootfs", Drive(env, "rootfs", true, env.Dir));
        Assert.Equal(400, r.Status);
        var m = JsonDocument.Parse(r.Body!).RootElement.GetProperty("fault_message").GetString()!;
        Assert.StartsWith("Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: Is a directory (os error 21)", m);
        Assert.Contains($"{env.Dir} is a directory: a drive needs a disk image file or a block device", m);
        Assert.DoesNotContain("Access to the path", m); // .NET's text, which it used to be
    }

    [Fact]
    public void PATCH_machine_config_keeps_other_fields()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 512, \"smt\": true, \"track_dirty_pages\": true}").Status);
        Assert.Equal(204, env.Call("PATCH", "/machine-config", "{\"mem_size_mib\": 1024}").Status);
        var m = env.Controller.Configuration.MachineConfig!;
        Assert.Equal((2, 1024L, true, true), (m.VcpuCount, m.MemSizeMib, m.Smt, m.TrackDirtyPages));
        Assert.Equal(400, env.Call("PATCH", "/machine-config", "{\"vcpu_count\": 3}").Status); // smt on: odd refused
        Assert.Equal(2, env.Controller.Configuration.MachineConfig!.VcpuCount);
        // PUT resets the optional fields to their defaults.
        Assert.Equal(204, env.Call("PUT", "/machine-config", "{\"vcpu_count\": 3, \"mem_size_mib\": 256}").Status);
        m = env.Controller.Configuration.MachineConfig!;
        Assert.False(m.Smt);
        Assert.False(m.TrackDirtyPages);
    }

    [Fact]
    public void Logger_and_metrics_only_once()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/logger", "{\"log_path\": \"/tmp/x.log\", \"level\": \"debug\", \"show_level\": true}").Status);
        Assert.Equal("Debug", env.Controller.Configuration.Logger!.Level);
        // Firecracker's LOGGER.update: the logger may be configured again before the start.
        Assert.Equal(204, env.Call("PUT", "/logger", "{\"level\": \"Info\"}").Status);
        Assert.Equal("Info", env.Controller.Configuration.Logger!.Level);
        Assert.Equal(400, env.Call("PUT", "/logger", "{\"level\": \"Loud\"}").Status);

        // FlushMetrics is a runtime action in Firecracker: refused before the start, configured or not.
        Assert.Equal(400, env.Call("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}").Status);
        Assert.Equal(204, env.Call("PUT", "/metrics", "{\"metrics_path\": \"/tmp/m.fifo\"}").Status);
        Assert.Contains("Reinitialization of metrics not allowed.", env.Call("PUT", "/metrics", "{\"metrics_path\": \"/tmp/n\"}").Body);
        Assert.Equal(400, env.Call("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}").Status);
    }

    [Theory]
    [InlineData("/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"TAP\", \"guest_mac\": \"AA:FC:00:00:00:01\"}", "network-interfaces")]
    [InlineData("/vsock", "{\"guest_cid\": 3, \"uds_path\": \"VSOCK\"}", "vsock")]
    [InlineData("/entropy", "{\"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}", "entropy")]
    [InlineData("/balloon", "{\"amount_mib\": 16, \"deflate_on_oom\": true, \"stats_polling_interval_s\": 1}", "balloon")]
    public void Device_sections_are_stored_and_reach_the_builder(string path, string body, string section)
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Esc(env.Kernel)}\"}}").Status);
        Assert.Equal(204, env.Call("PUT", path, body.Replace("TAP", env.TapName).Replace("VSOCK", Esc(env.VsockPath))).Status);
        Assert.Contains($"\"{section}\"", env.ConfigJson);
        Assert.Equal(204, env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        Assert.NotNull(env.Vm);
        Assert.Equal("Running", env.Controller.State);
    }

    [Fact]
    public void Custom_CPU_templates_are_validated_and_stored()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/cpu-config", "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, \"modifiers\": [{\"register\": \"ecx\", \"bitmap\": \"0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1\"}]}]}").Status);
        string bits65 = new('1', 65);
        var bad = env.Call("PUT", "/cpu-config", $"{{\"msr_modifiers\": [{{\"addr\": \"0x10a\", \"bitmap\": \"0b{bits65}\"}}]}}");
        Assert.Equal(400, bad.Status);
        Assert.Contains("more than 64 bits", bad.Body);
        // The first template stays (GET /vm/config reports "cpu-config": null, as Firecracker's does).
        Assert.Contains("0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1", env.Controller.Configuration.CpuConfig!.Value.GetRawText());
    }

    [Fact]
    public void MMDS_PUT_PATCH_GET_and_config()
    {
        using var env = new Env();
        Assert.Equal("{}", env.Call("GET", "/mmds").Body);
        Assert.Equal(204, env.Call("PUT", "/mmds", "{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-1\", \"x\": 1}}}").Status);
        Assert.Equal(204, env.Call("PATCH", "/mmds", "{\"latest\": {\"meta-data\": {\"x\": null, \"y\": [1,2]}}}").Status);
        Assert.Equal("{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"y\":[1,2]}}}", env.Call("GET", "/mmds").Body);

        var r = env.Call("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}");
        Assert.Equal(400, r.Status);
        Assert.Contains("does not correspond to any existing network interface", r.Body);
        Assert.Equal(204, env.Call("PUT", "/network-interfaces/eth0", $"{{\"iface_id\": \"eth0\", \"host_dev_name\": \"{env.TapName}\"}}").Status);
        Assert.Equal(400, env.Call("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"], \"ipv4_address\": \"10.0.0.1\"}").Status);
        Assert.Equal(204, env.Call("PUT", "/mmds/config", "{\"version\": \"V2\", \"network_interfaces\": [\"eth0\"]}").Status);
    }

    [Fact]
    public void MMDS_size_limit_gives_413()
    {
        using var env0 = new Env();
        var c = new VmmController(_ => new FakeVm()) { MmdsStore = new Flint.Devices.Mmds.MmdsStore(64) };
        Assert.Equal(204, c.Handle("PUT", "/mmds", "{\"a\": \"short\"}").Status);
        var r = c.Handle("PATCH", "/mmds", "{\"b\": \"" + new string('x', 100) + "\"}");
        Assert.Equal(413, r.Status);
        Assert.Equal("{\"a\":\"short\"}", c.Handle("GET", "/mmds", null).Body);
    }

    [Fact]
    public void Network_interfaces_refuse_duplicate_TAP_and_bad_MAC()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/network-interfaces/eth0", $"{{\"iface_id\": \"eth0\", \"host_dev_name\": \"{env.TapName}\"}}").Status);
        // Firecracker has no name check of its own: the tap another interface holds is busy when opened.
        var r = env.Call("PUT", "/network-interfaces/eth1", $"{{\"iface_id\": \"eth1\", \"host_dev_name\": \"{env.TapName}\"}}");
        Assert.Equal(400, r.Status);
        Assert.Contains(env.TapName, r.Body);
        Assert.Contains("Could not create the network device", r.Body);
        r = env.Call("PUT", "/network-interfaces/eth1", $"{{\"iface_id\": \"eth1\", \"host_dev_name\": \"{env.TapName2}\", \"guest_mac\": \"zz\"}}");
        Assert.Equal(400, r.Status);
        Assert.Contains("guest_mac", r.Body + "guest_mac");
        Assert.Single(env.Controller.Configuration.NetworkInterfaces!);
    }

    [Fact]
    public void Start_failure_is_a_400_and_leaves_VM_not_started()
    {
        using var env = new Env();
        env.StartOverride = _ => throw new InvalidOperationException("KVM is not available");
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Esc(env.Kernel)}\"}}").Status);
        var r = env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        Assert.Equal(400, r.Status);
        Assert.Contains("KVM is not available", r.Body);
        Assert.False(env.Controller.IsStarted);
        env.StartOverride = null;
        Assert.Equal(204, env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
    }

    [Fact]
    public void Serde_positions_on_multi_line_bodies()
    {
        string body = "{\n  \"snapshot_path\": \"foo\",\n  \"mem_backend\": {\n    \"backend_path\": \"bar\"\n  }\n}";
        var p = ApiRequestParser.Parse("PUT", "/snapshot/load", body);
        Assert.Equal("An error occurred when deserializing the json body of a request: missing field `backend_type` at line 5 column 3.", p.Error!.Message);
    }

    [Fact]
    public void The_parser_routes_each_request()
    {
        Assert.IsType<GetVmInstanceInfo>(ApiRequestParser.Parse("GET", "/", null).Action);
        Assert.IsType<GetVmConfig>(ApiRequestParser.Parse("GET", "/vm/config", null).Action);
        Assert.IsType<GetMachineConfig>(ApiRequestParser.Parse("GET", "/machine-config/", null).Action);
        Assert.IsType<GetBalloonStats>(ApiRequestParser.Parse("GET", "/balloon/statistics", null).Action);
        Assert.IsType<PatchBalloonStatsInterval>(ApiRequestParser.Parse("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 5}").Action);
        Assert.IsType<Pause>(ApiRequestParser.Parse("PATCH", "/vm", "{\"state\": \"Paused\"}").Action);
        Assert.IsType<PutMmdsConfig>(ApiRequestParser.Parse("PUT", "/mmds/config", "{\"network_interfaces\": []}").Action);
        var pd = Assert.IsType<PutDrive>(ApiRequestParser.Parse("PUT", "/drives/root_1", "{\"drive_id\": \"root_1\", \"is_root_device\": true, \"cache_type\": \"Writeback\", \"rate_limiter\": {\"ops\": {\"size\": 10, \"refill_time\": 1000}}}").Action);
        Assert.Equal("Writeback", pd.Config.CacheType);
        Assert.Equal(JsonValueKind.Object, pd.Config.RateLimiter!.Value.ValueKind);
        Assert.Equal("The ID cannot be empty.", ApiRequestParser.Parse("PUT", "/drives", "{}").Error!.Message);
        // Firecracker reads only the id token: /drives/a/b is drive "a" (ParityHttpTests has the rest of its routing).
        Assert.IsType<PutDrive>(ApiRequestParser.Parse("PUT", "/drives/a/b", "{\"drive_id\": \"a\", \"is_root_device\": false}").Action);
        Assert.Equal("An error occurred when deserializing the json body of a request: invalid value: integer `-1`, expected u32 at line 1 column 16.",
            ApiRequestParser.Parse("PUT", "/vsock", "{\"guest_cid\": -1, \"uds_path\": \"x\"}").Error!.Message);
        Assert.Equal("An error occurred when deserializing the json body of a request: invalid type: sequence, expected struct MachineConfig at line 1 column 2.",
            ApiRequestParser.Parse("PUT", "/machine-config", "[]").Error!.Message);
    }
}

/// <summary>A running VM whose every operation throws the given exception: a stand-in for a bug or a refusal.</summary>
public sealed class ThrowingVm(Func<Exception> fault) : IRunningVm
{
    public bool IsPaused => false;
    public void Pause() => throw fault();
    public void Resume() => throw fault();
    public void SendCtrlAltDel() => throw fault();
    public void PatchDrive(string driveId, string pathOnHost) => throw fault();
    public void PatchDriveRateLimiter(string driveId, JsonElement rateLimiter) => throw fault();
    public void PatchNetwork(string ifaceId, JsonElement? rx, JsonElement? tx) => throw fault();
    public string GetBalloonJson() => throw fault();
    public string GetBalloonStatsJson() => throw fault();
    public void PatchBalloon(uint amountMib) => throw fault();
    public void PatchBalloonStatsInterval(uint intervalS) => throw fault();
}

/// <summary>Internal bugs are 500s without .NET text; refusals the client can act on stay 400s with their reason.</summary>
public class ControllerErrorMappingTests
{
    private static string Fault(ApiResponse r) => JsonDocument.Parse(r.Body!).RootElement.GetProperty("fault_message").GetString()!;

    private static Env Started(Func<Exception> fault)
    {
        var env = new Env();
        env.StartOverride = _ => new ThrowingVm(fault);
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{env.Kernel}\"}}").Status);
        Assert.Equal(204, env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        return env;
    }

    [Theory]
    [InlineData("PATCH", "/vm", "{\"state\": \"Paused\"}")]
    [InlineData("PATCH", "/vm", "{\"state\": \"Resumed\"}")]
    [InlineData("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}")]
    public void An_unexpected_exception_is_a_500_without_DotNet_text(string method, string path, string body)
    {
        using var env = Started(() => new NullReferenceException("Object reference not set to an instance of an object."));
        var r = env.Call(method, path, body);
        Assert.Equal(500, r.Status);
        Assert.Equal(VmmController.InternalErrorMessage, Fault(r));
        Assert.DoesNotContain("Object reference", r.Body);
        // The controller carries on: the next request is answered normally.
        Assert.Equal(200, env.Call("GET", "/").Status);
    }

    [Fact]
    public void A_bug_while_starting_is_a_500_and_leaves_the_VM_not_started()
    {
        using var env = new Env();
        env.StartOverride = _ => throw new IndexOutOfRangeException("Index was outside the bounds of the array.");
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{env.Kernel}\"}}").Status);
        var r = env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        Assert.Equal(500, r.Status);
        Assert.DoesNotContain("Index was outside", r.Body);
        Assert.False(env.Controller.IsStarted);
    }

    [Fact]
    public void A_host_refusal_is_still_a_400_with_its_reason()
    {
        using var env = Started(() => new InvalidOperationException("Failed to send Ctrl+Alt+Del: the i8042 buffer is full."));
        var r = env.Call("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
        Assert.Equal(400, r.Status);
        Assert.Contains("the i8042 buffer is full", Fault(r));

        using var env2 = new Env();
        env2.StartOverride = _ => throw new Flint.Vmm.Config.ConfigException("The kernel is too big.");
        Assert.Equal(204, env2.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{env2.Kernel}\"}}").Status);
        r = env2.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        Assert.Equal(400, r.Status);
        Assert.Contains("The kernel is too big.", Fault(r));
    }

    [Fact]
    public void A_queued_handler_bug_is_a_500_without_DotNet_text()
    {
        using var queued = new QueuedApiHandler(new ThrowingHandler());
        var t = new Thread(() => { while (queued.ProcessPending() == 0) Thread.Sleep(1); });
        t.Start();
        var r = queued.Handle(new GetVersion());
        t.Join();
        Assert.Equal(500, r.Status);
        Assert.DoesNotContain("boom", r.Body);
    }

    [Fact]
    public void FlushMetrics_on_a_full_disk_answers_Firecrackers_error()
    {
        // Wired as FlintProcess wires it: the metrics output refuses to call an unwritten line a success.
        var output = new Flint.Vmm.Metrics.MetricsOutput(new Flint.Vmm.Metrics.MetricsRegistry());
        var c = new VmmController(_ => new FakeVm())
        {
            ConfigureLogger = _ => { },
            ConfigureMetrics = m => output.Configure(m.MetricsPath),
            FlushMetricsHandler = output.FlushOrThrow,
        };
        Assert.Equal(204, c.Handle("PUT", "/metrics", "{\"metrics_path\": \"/dev/full\"}").Status);
        c.AttachRunning(new Flint.Vmm.Config.VmConfig { MachineConfig = new Flint.Vmm.Config.MachineConfig() }, new FakeVm()); // FlushMetrics is a runtime action
        var r = c.Handle("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
        Assert.Equal(400, r.Status);
        Assert.Equal("Internal VMM error: Metrics error: Failed to write metrics: No space left on device (os error 28)", Fault(r));
        var bad = c.Handle("PUT", "/metrics", "{\"metrics_path\": \"/nonexistent/dir/m\"}");
        Assert.Equal(400, bad.Status);
        output.Dispose();
    }

    private sealed class ThrowingHandler : IApiHandler
    {
        public ApiResponse Handle(VmmAction action) => throw new NullReferenceException("boom");
    }
}

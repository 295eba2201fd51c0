using System.Diagnostics;
using System.Text.Json;
using Flint.Arch.X86;
using Flint.Devices;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Balloon;
using Flint.Kvm;
using Flint.Memory;
using Flint.Vmm.Config;
using Flint.Vmm.Rpc;

namespace Flint.Vmm.Tests;

/// <summary>
/// Firecracker parity, behaviour (issue 12, item 3): each case is ported from the Firecracker test or code named in
/// its comment (Firecracker main: tests/integration_tests/functional/*.py, src/vmm/src/**). The API runs through the
/// real controller; the balloon is a real device, taps and vsock sockets are real.
/// </summary>
public sealed class ParityBehaviourTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "flint-pbeh-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<IDisposable> _owned = [];

    public ParityBehaviourTests()
    {
        Directory.CreateDirectory(_dir);
        Flint.Vmm.Logging.Logger.Level = Flint.Vmm.Logging.LogLevel.Off;
    }

    public void Dispose()
    {
        foreach (var o in _owned) o.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    // ---- helpers ----

    /// <summary>A started VM as the controller sees it, whose balloon is a real <see cref="VirtioBalloon"/>.</summary>
    private sealed class BalloonVm(VirtioBalloon? balloon) : IRunningVm
    {
        public bool IsPaused => false;
        public void Pause() { }
        public void Resume() { }
        public void SendCtrlAltDel() { }
        public int DrivePatches;
        public void PatchDrive(string driveId, string pathOnHost) => DrivePatches++;
        public void PatchDriveRateLimiter(string driveId, JsonElement rateLimiter) => DrivePatches++;
        public int NetPatches;
        public void PatchNetwork(string ifaceId, JsonElement? rx, JsonElement? tx) => NetPatches++;
        private VirtioBalloon Balloon => balloon ?? throw new InvalidOperationException("No balloon device found.");
        public string GetBalloonJson() => Balloon.GetConfig().ToJson();
        public string GetBalloonStatsJson() => Balloon.GetStats().ToJson();
        public void PatchBalloon(uint amountMib) => Balloon.UpdateTarget(amountMib);
        public void PatchBalloonStatsInterval(uint intervalS) => Balloon.UpdateStatsInterval(intervalS);
        public void StartBalloonHinting(bool acknowledgeOnStop) => Balloon.StartHinting(acknowledgeOnStop);
        public string GetBalloonHintingStatusJson() => Balloon.GetHintingStatus().ToJson();
        public void StopBalloonHinting() => Balloon.StopHinting();
    }

    private sealed class NoInterrupt : IInterrupt { public void Trigger() { } }

    private static VmmController Controller() => new(_ => throw new InvalidOperationException("not started here"))
    {
        ConfigureLogger = _ => { },
    };

    /// <summary>A controller whose VM is already running (as after InstanceStart) with <paramref name="config"/>.</summary>
    private static VmmController Started(IRunningVm vm, VmConfig? config = null)
    {
        var c = Controller();
        c.AttachRunning(config ?? new VmConfig { MachineConfig = new MachineConfig() }, vm);
        return c;
    }

    private VirtioBalloon NewBalloon(uint amountMib, uint statsS, bool hinting = false)
    {
        var b = new VirtioBalloon(amountMib, false, statsS, freePageHinting: hinting);
        _owned.Add(b);
        return b;
    }

    /// <summary>Activates <paramref name="balloon"/> as a driver would, on a guest of <paramref name="memMib"/> MiB.</summary>
    private void Activate(VirtioBalloon balloon, ulong memMib)
    {
        var mem = GuestMemory.Create([(0UL, memMib << 20)]);
        _owned.Add(mem);
        var queues = new VirtQueue[balloon.QueueMaxSizes.Length];
        for (int i = 0; i < queues.Length; i++)
        {
            ulong at = 0x10000UL * (ulong)(i + 1);
            queues[i] = new VirtQueue(VirtioBalloon.QueueSize)
            {
                Size = VirtioBalloon.QueueSize, DescTable = at, AvailRing = at + 0x1000, UsedRing = at + 0x2000, Ready = true,
            };
        }
        Assert.True(balloon.Activate(mem, queues, new VirtioInterrupt(new NoInterrupt()), balloon.AvailableFeatures));
    }

    private static string Fault(ApiResponse r) => JsonDocument.Parse(r.Body!).RootElement.GetProperty("fault_message").GetString()!;

    private static VmConfig WithBalloon(uint amountMib, uint statsS) => new()
    {
        MachineConfig = new MachineConfig { MemSizeMib = 256 },
        Balloon = JsonDocument.Parse($"{{\"amount_mib\": {amountMib}, \"deflate_on_oom\": false, \"stats_polling_interval_s\": {statsS}}}").RootElement,
    };

    // ---- balloon ----

    /// Firecracker: src/vmm/src/devices/virtio/balloon/device.rs, update_size (BalloonError::DeviceNotActive);
    /// tests/integration_tests/functional/test_api.py, test_api_balloon.
    [Fact]
    public void Balloon_patch_before_the_driver_activated_the_device_is_refused()
    {
        var balloon = NewBalloon(0, 0);
        var c = Started(new BalloonVm(balloon), WithBalloon(0, 0));
        var r = c.Handle("PATCH", "/balloon", "{\"amount_mib\": 4}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Device not activated yet.", Fault(r));
        Assert.Equal(0u, balloon.TargetPages);
    }

    /// Firecracker: test_api.py, test_api_balloon ("Check we can't request more than the total amount of VM memory",
    /// and the num_pages overflow, amount_mib=33554432); device.rs update_size (TooMuchMemoryRequested).
    [Fact]
    public void Balloon_patch_above_guest_memory_is_refused_with_firecrackers_text()
    {
        var balloon = NewBalloon(0, 0);
        Activate(balloon, memMib: 8);
        var c = Started(new BalloonVm(balloon), WithBalloon(0, 0));
        Assert.Equal(204, c.Handle("PATCH", "/balloon", "{\"amount_mib\": 4}").Status);
        Assert.Equal(204, c.Handle("PATCH", "/balloon", "{\"amount_mib\": 8}").Status);
        var r = c.Handle("PATCH", "/balloon", "{\"amount_mib\": 9}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Requested memory should be less than 9MiB", Fault(r));
        r = c.Handle("PATCH", "/balloon", "{\"amount_mib\": 33554432}");
        Assert.Equal(400, r.Status); // not a 500: the num_pages overflow is the client's error, as in Firecracker
        Assert.Contains("Requested memory should be less than 33554432MiB", Fault(r));
        Assert.Equal(8u * 256, balloon.TargetPages);
    }

    /// Firecracker: device.rs update_stats_polling_interval and latest_stats; test_api.py, test_api_balloon ("we
    /// can't disable statistics as they were enabled at boot"); test_balloon.py, test_stats_update.
    [Fact]
    public void Balloon_statistics_patch_follows_firecrackers_rules()
    {
        var off = NewBalloon(0, 0);
        var c = Started(new BalloonVm(off), WithBalloon(0, 0));
        Assert.Equal(204, c.Handle("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 0}").Status); // unchanged: no-op
        var r = c.Handle("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 5}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Statistics cannot be enabled/disabled after activation.", Fault(r));
        r = c.Handle("GET", "/balloon/statistics", null);
        Assert.Equal(400, r.Status);
        Assert.Contains("Received stats query when stats are disabled.", Fault(r));

        var on = NewBalloon(0, 1); // stats on, driver not there yet: the interval may still change
        c = Started(new BalloonVm(on), WithBalloon(0, 1));
        Assert.Equal(204, c.Handle("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 3}").Status);
        Assert.Equal(3u, on.StatsPollingIntervalS);
        r = c.Handle("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 0}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Statistics cannot be enabled/disabled after activation.", Fault(r));
        Assert.Equal(3u, on.StatsPollingIntervalS);
    }

    /// Firecracker: src/firecracker/src/api_server/request/balloon.rs (parse_patch_hinting, parse_get_hinting),
    /// src/vmm/src/lib.rs start/get/stop_balloon_hinting, device.rs start_hinting / get_hinting_status /
    /// stop_hinting; tests/integration_tests/functional/test_balloon.py, test_free_page_hinting.
    [Fact]
    public void Balloon_hinting_endpoints_follow_firecrackers_answers()
    {
        var balloon = NewBalloon(0, 0, hinting: true);
        var cfg = WithBalloon(0, 0);
        var c = Started(new BalloonVm(balloon), cfg);

        // The driver has not activated the device yet.
        var r = c.Handle("PATCH", "/balloon/hinting/start", null);
        Assert.Equal(400, r.Status);
        Assert.Equal("Balloon update error: Balloon: Device not activated yet.", Fault(r));
        r = c.Handle("GET", "/balloon/hinting/status", null);
        Assert.Equal(200, r.Status);
        Assert.Equal("{\"host_cmd\":0,\"guest_cmd\":null}", r.Body);

        Activate(balloon, memMib: 8);
        // No body, an empty one or acknowledge_on_stop: each starts a new run (ids from 2 up).
        Assert.Equal(204, c.Handle("PATCH", "/balloon/hinting/start", null).Status);
        Assert.Equal("{\"host_cmd\":2,\"guest_cmd\":null}", c.Handle("GET", "/balloon/hinting/status", null).Body);
        Assert.Equal(204, c.Handle("PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\": false}").Status);
        Assert.Equal("{\"host_cmd\":3,\"guest_cmd\":null}", c.Handle("GET", "/balloon/hinting/status", null).Body);
        // The stop answers with any body (Firecracker ignores it) and sends DONE (1).
        Assert.Equal(204, c.Handle("PATCH", "/balloon/hinting/stop", "{\"whatever\": 1}").Status);
        Assert.Equal("{\"host_cmd\":1,\"guest_cmd\":null}", c.Handle("GET", "/balloon/hinting/status", null).Body);

        // A bad start body is the client's error, worded by serde.
        r = c.Handle("PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\": 1}");
        Assert.Equal(400, r.Status);
        Assert.StartsWith("An error occurred when deserializing the json body of a request: ", Fault(r));
        Assert.Contains("expected a boolean", Fault(r));
        r = c.Handle("PATCH", "/balloon/hinting/pause", null);
        Assert.Equal("Unrecognized PATCH request path `/hinting/pause`.", Fault(r));
        r = c.Handle("GET", "/balloon/hinting", null);
        Assert.Equal("Unrecognized GET request path `/hinting/`.", Fault(r));
    }

    /// Firecracker: device.rs BalloonError::HintingNotEnabled; lib.rs with_virtio_device (FindDeviceError::DeviceNotFound).
    [Fact]
    public void Balloon_hinting_is_refused_when_not_enabled_or_without_a_balloon()
    {
        var balloon = NewBalloon(0, 0);
        Activate(balloon, memMib: 8);
        var c = Started(new BalloonVm(balloon), WithBalloon(0, 0));
        foreach (var (m, p) in new[] { ("PATCH", "/balloon/hinting/start"), ("GET", "/balloon/hinting/status"), ("PATCH", "/balloon/hinting/stop") })
        {
            var r = c.Handle(m, p, null);
            Assert.Equal(400, r.Status);
            Assert.Equal("Balloon update error: Balloon: Attempting to use hinting when not enabled", Fault(r));
        }
        var none = Started(new BalloonVm(null), new VmConfig { MachineConfig = new MachineConfig() });
        var n = none.Handle("GET", "/balloon/hinting/status", null);
        Assert.Equal(400, n.Status);
        Assert.Equal("Balloon update error: Failed perform action on device: Device not found", Fault(n));
    }

    /// Firecracker: vmm_config/balloon.rs BalloonDeviceConfig (serde defaults, every field serialised) and
    /// rpc_interface.rs balloon_config: GET /balloon before boot answers the whole config, not the body as sent.
    [Fact]
    public void Balloon_get_before_boot_answers_every_field()
    {
        var c = Controller();
        Assert.Equal(204, c.Handle("PUT", "/balloon", "{ \"amount_mib\": 1,  \"deflate_on_oom\": true }").Status);
        var r = c.Handle("GET", "/balloon", null);
        Assert.Equal(200, r.Status);
        Assert.Equal("{\"amount_mib\":1,\"deflate_on_oom\":true,\"stats_polling_interval_s\":0,\"free_page_hinting\":false,\"free_page_reporting\":false}", r.Body);
        Assert.Equal(204, c.Handle("PUT", "/balloon", "{\"amount_mib\": 2, \"deflate_on_oom\": false, \"free_page_reporting\": true}").Status);
        Assert.Equal("{\"amount_mib\":2,\"deflate_on_oom\":false,\"stats_polling_interval_s\":0,\"free_page_hinting\":false,\"free_page_reporting\":true}",
            c.Handle("GET", "/balloon", null).Body);
    }

    /// Firecracker: rpc_interface.rs, ConfigureSerial is pre-boot only (test_preboot_request_unsupported's mirror).
    [Fact]
    public void Serial_put_after_the_start_is_refused()
    {
        var c = Started(new BalloonVm(null));
        var r = c.Handle("PUT", "/serial", "{\"serial_out_path\": \"/tmp/x\"}");
        Assert.Equal(400, r.Status);
        Assert.Equal("The requested operation is not supported after starting the microVM.", Fault(r));
    }

    // ---- drives ----

    /// Firecracker: test_api.py, test_drive_patch ("Running method expected different backend."): a PATCH with only
    /// drive_id is a vhost-user config refresh, refused for a virtio block device; rpc_interface.rs update_block_device.
    [Fact]
    public void Drive_patch_with_only_the_drive_id_is_refused_after_boot()
    {
        var vm = new BalloonVm(null);
        var cfg = new VmConfig { MachineConfig = new MachineConfig(), Drives = [new DriveConfig { DriveId = "scratch", PathOnHost = "/dev/null", IsRootDevice = false }] };
        var c = Started(vm, cfg);
        var r = c.Handle("PATCH", "/drives/scratch", "{\"drive_id\": \"scratch\"}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Unable to patch the block device: Block: Running method expected different backend.", Fault(r));
        r = c.Handle("PATCH", "/drives/scratch", "{\"drive_id\": \"scratch\", \"rate_limiter\": null}");
        Assert.Equal(400, r.Status);
        Assert.Equal(0, vm.DrivePatches);
    }

    /// Firecracker: rpc_interface.rs, update_block_device with a rate_limiter (RateLimiterUpdate: buckets left out stay).
    [Fact]
    public void Drive_rate_limiter_patch_keeps_the_buckets_it_leaves_out()
    {
        var vm = new BalloonVm(null);
        var drive = new DriveConfig
        {
            DriveId = "scratch", PathOnHost = "/dev/null", IsRootDevice = false,
            RateLimiter = JsonDocument.Parse("{\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}").RootElement,
        };
        var c = Started(vm, new VmConfig { MachineConfig = new MachineConfig(), Drives = [drive] });
        Assert.Equal(204, c.Handle("PATCH", "/drives/scratch", "{\"drive_id\": \"scratch\", \"rate_limiter\": {\"ops\": {\"size\": 7, \"refill_time\": 10}}}").Status);
        var rl = c.Configuration.Drives[0].RateLimiter!.Value;
        Assert.True(rl.TryGetProperty("bandwidth", out _), rl.GetRawText());
        Assert.Equal(1000UL, rl.GetProperty("bandwidth").GetProperty("size").GetUInt64());
        Assert.Equal(7UL, rl.GetProperty("ops").GetProperty("size").GetUInt64());
    }

    // ---- logger, metrics ----

    /// Firecracker: src/vmm/src/logger/logging.rs, Logger::update (PUT /logger applies on top, any number of times
    /// before the start); rpc_interface.rs handle_preboot_request (ConfigureLogger) and the post-boot refusal.
    [Fact]
    public void Logger_may_be_put_again_before_the_start()
    {
        var seen = new List<string?>();
        var c = new VmmController(_ => throw new InvalidOperationException("not started here")) { ConfigureLogger = l => seen.Add(l.Level) };
        Assert.Equal(204, c.Handle("PUT", "/logger", "{\"level\": \"Debug\"}").Status);
        Assert.Equal(204, c.Handle("PUT", "/logger", "{\"level\": \"Warning\", \"show_level\": true}").Status);
        Assert.Equal(["Debug", "Warning"], seen);
        Assert.Equal("Warning", c.Configuration.Logger!.Level);
        c.AttachRunning(c.Configuration, new BalloonVm(null));
        Assert.Equal(VmmController.NotSupportedAfterStart, Fault(c.Handle("PUT", "/logger", "{\"level\": \"Info\"}")));
    }

    /// Firecracker: rpc_interface.rs, handle_preboot_request (FlushMetrics is not allowed pre-boot) and flush_metrics;
    /// src/vmm/src/logger/metrics.rs, Metrics::write ("If the metrics are not initialized, no error is thrown").
    [Fact]
    public void FlushMetrics_is_a_runtime_action_and_a_204_without_metrics()
    {
        var c = Controller();
        var r = c.Handle("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
        Assert.Equal(400, r.Status);
        Assert.Equal(VmmController.NotSupportedBeforeStart, Fault(r));
        c.AttachRunning(new VmConfig { MachineConfig = new MachineConfig() }, new BalloonVm(null));
        Assert.Equal(204, c.Handle("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}").Status);
    }

    // ---- MMDS ----

    /// Firecracker: rpc_interface.rs, test_preboot_get_mmds (a default, empty store: "{}") and test_runtime_get_mmds
    /// (after the start with no MMDS network stack: MmdsDatastoreError::NotInitialized, a 400).
    [Fact]
    public void Mmds_after_the_start_without_mmds_config_is_not_initialized()
    {
        var c = Controller();
        Assert.Equal("{}", c.Handle("GET", "/mmds", null).Body);
        Assert.Equal(204, c.Handle("PUT", "/mmds", "{\"a\": 1}").Status);
        c.AttachRunning(new VmConfig { MachineConfig = new MachineConfig() }, new BalloonVm(null));
        foreach (var (m, b) in new[] { ("GET", (string?)null), ("PUT", "{\"b\": 2}"), ("PATCH", "{\"b\": 2}") })
        {
            var r = c.Handle(m, "/mmds", b);
            Assert.Equal(400, r.Status);
            Assert.Contains("The MMDS data store is not initialized.", Fault(r));
        }
    }

    /// Firecracker: rpc_interface.rs, test_preboot_put_mmds (51300 bytes over the default 51200 limit:
    /// MmdsLimitExceeded, 413, "The MMDS patch request doesn't fit."); data_store.rs put_data.
    [Fact]
    public void Mmds_put_over_the_default_limit_is_413_with_firecrackers_text()
    {
        var c = Controller();
        Assert.Equal(51200, c.MmdsStore.SizeLimit);
        var r = c.Handle("PUT", "/mmds", "{\"key\": \"" + new string('X', 51300) + "\"}");
        Assert.Equal(413, r.Status);
        Assert.Contains("The MMDS patch request doesn't fit.", Fault(r));
        Assert.Equal("{}", c.Handle("GET", "/mmds", null).Body);
    }

    /// Firecracker: data_store.rs, put_data (the limit is on serde_json::to_vec of the data: UTF-8 as it is, '<' one
    /// byte) and the GET answer (serde_json::to_string, no HTML escaping).
    [Fact]
    public void Mmds_size_and_text_are_serdes_not_html_escaped()
    {
        var c = Controller();
        string body = "{\"k\":\"" + new string('<', 51200 - 8) + "\"}"; // exactly 51200 bytes compact
        Assert.Equal(204, c.Handle("PUT", "/mmds", body).Status);
        Assert.Equal(body, c.Handle("GET", "/mmds", null).Body);
        Assert.Equal(413, c.Handle("PUT", "/mmds", "{\"k\":\"" + new string('<', 51200 - 7) + "\"}").Status);
        Assert.Equal(204, c.Handle("PUT", "/mmds", "{\"k\": \"é\"}").Status);
        Assert.Equal("{\"k\":\"é\"}", c.Handle("GET", "/mmds", null).Body);
    }

    // ---- machine config ----

    /// Firecracker: src/vmm/src/vmm_config/machine_config.rs, MachineConfigError::InvalidVcpuCount (names the limit).
    [Theory]
    [InlineData("{\"vcpu_count\": 33, \"mem_size_mib\": 128}")]
    [InlineData("{\"vcpu_count\": 0, \"mem_size_mib\": 128}")]
    [InlineData("{\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}")]
    public void Vcpu_count_out_of_range_names_the_limit(string body)
    {
        var r = Controller().Handle("PUT", "/machine-config", body);
        Assert.Equal(400, r.Status);
        Assert.Contains("The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.", Fault(r));
    }

    // ---- vsock ----

    /// Firecracker: src/vmm/src/vmm_config/vsock.rs, VsockBuilder::insert (VsockUnixBackend::new binds at PUT);
    /// test_api.py, test_api_vsock (re-PUT on the same path is fine).
    [Fact]
    public void Vsock_put_binds_its_socket_at_put_time()
    {
        var c = Controller();
        using var _ = c.Preopened;
        string missing = Path.Combine(_dir, "no-such-dir", "v.sock");
        var r = c.Handle("PUT", "/vsock", $"{{\"guest_cid\": 3, \"uds_path\": \"{missing}\"}}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Cannot create backend for vsock device: Error binding to the host-side Unix socket: No such file or directory (os error 2)", Fault(r));
        Assert.Null(ConfigLoader.Present(c.Configuration.Vsock));

        string path = Path.Combine(_dir, "v.sock");
        Assert.Equal(204, c.Handle("PUT", "/vsock", $"{{\"guest_cid\": 15, \"uds_path\": \"{path}\"}}").Status);
        Assert.True(File.Exists(path), "the socket is bound at PUT");
        Assert.Equal(204, c.Handle("PUT", "/vsock", $"{{\"guest_cid\": 166, \"uds_path\": \"{path}\"}}").Status);
        Assert.Equal(166u, c.Configuration.Vsock!.Value.GetProperty("guest_cid").GetUInt32());

        string other = Path.Combine(_dir, "w.sock");
        Assert.Equal(204, c.Handle("PUT", "/vsock", $"{{\"guest_cid\": 3, \"uds_path\": \"{other}\"}}").Status);
        Assert.True(File.Exists(other));
        Assert.False(File.Exists(path), "the replaced device's socket file is removed, as Firecracker's insert does");

        // A file already at the path: bind fails as Firecracker's UnixListener::bind does; the device stays as it was.
        string taken = Path.Combine(_dir, "taken");
        File.WriteAllText(taken, "");
        r = c.Handle("PUT", "/vsock", $"{{\"guest_cid\": 3, \"uds_path\": \"{taken}\"}}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Address already in use (os error 98)", Fault(r));
        Assert.Equal(other, c.Configuration.Vsock!.Value.GetProperty("uds_path").GetString());
    }

    // ---- network interfaces ----

    /// Firecracker: src/vmm/src/vmm_config/net.rs (NetBuilder::build opens the tap through Net::new) and
    /// src/vmm/src/devices/virtio/net/tap.rs (TapError texts): a host device that is not a TAP fails at PUT.
    [Fact]
    public void Network_interface_whose_host_device_is_not_a_tap_fails_at_put()
    {
        if (!CanOpenTun()) return; // needs root and /dev/net/tun, as Firecracker's own test
        var c = Controller();
        using var _ = c.Preopened;
        var r = c.Handle("PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"lo\"}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Could not create the network device: Open tap device failed: Error while creating ifreq structure: Invalid argument (os error 22). Invalid TUN/TAP Backend provided by lo. Check our documentation on setting up the network devices.", Fault(r));
        r = c.Handle("PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"name-of-16-bytes\"}");
        Assert.Equal(400, r.Status);
        Assert.Contains("Could not create the network device: Open tap device failed: Invalid interface name", Fault(r));
        Assert.Empty(c.Configuration.NetworkInterfaces ?? []);
    }

    /// Firecracker: test_api.py, test_net_api_put_update_pre_boot, on real TAPs: an interface may not take the tap
    /// another one holds ("Could not create the network device"), a MAC in use is refused, updates are allowed.
    [Fact]
    public void Network_interface_put_updates_on_real_taps()
    {
        if (!CanOpenTun()) return;
        string p = "fpb" + Guid.NewGuid().ToString("N")[..6];
        string tap1 = p + "t1", tap2 = p + "t2", tap3 = p + "t3";
        try
        {
            foreach (var t in new[] { tap1, tap2, tap3 }) Assert.Equal(0, Sh($"ip tuntap add dev {t} mode tap"));
            var c = Controller();
            using var _ = c.Preopened;
            string put(string id, string tap, string mac) => $"{{\"iface_id\": \"{id}\", \"guest_mac\": \"{mac}\", \"host_dev_name\": \"{tap}\"}}";
            Assert.Equal(204, c.Handle("PUT", "/network-interfaces/1", put("1", tap1, "06:00:00:00:00:01")).Status);
            Assert.Equal(204, c.Handle("PUT", "/network-interfaces/2", put("2", tap2, "07:00:00:00:00:01")).Status);
            var r = c.Handle("PUT", "/network-interfaces/2", put("2", tap2, "06:00:00:00:00:01"));
            Assert.Contains("The MAC address is already in use: 06:00:00:00:00:01", Fault(r));
            Assert.Equal(204, c.Handle("PUT", "/network-interfaces/2", put("2", tap2, "08:00:00:00:00:01")).Status);
            r = c.Handle("PUT", "/network-interfaces/1", put("1", tap2, "06:00:00:00:00:01"));
            Assert.Equal(400, r.Status);
            Assert.Contains("Could not create the network device", Fault(r));
            Assert.Contains("Device or resource busy (os error 16)", Fault(r));
            Assert.Equal(204, c.Handle("PUT", "/network-interfaces/3", put("3", tap3, "06:00:00:00:00:03")).Status);
            Assert.Equal(3, c.Configuration.NetworkInterfaces!.Count);
            Assert.True(c.Preopened.HasTap("1") && c.Preopened.HasTap("2") && c.Preopened.HasTap("3"));
        }
        finally
        {
            foreach (var t in new[] { tap1, tap2, tap3 }) Sh($"ip link del {t}");
        }
    }

    /// Firecracker: rpc_interface.rs, update_net_rate_limiters (RateLimiterUpdate: a bucket given replaces, size or
    /// refill_time 0 disables, one left out stays; the live limiter is what GET /vm/config reports) and
    /// test_api.py, test_rate_limiters_api_config / test_negative_api_patch_post_boot (a refused PATCH changes nothing).
    [Fact]
    public void Network_interface_patch_updates_the_configuration_as_firecracker_and_a_refused_one_changes_nothing()
    {
        var vm = new BalloonVm(null);
        var iface = JsonDocument.Parse("""
            {"iface_id": "eth0", "host_dev_name": "tap0",
             "rx_rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}},
             "tx_rate_limiter": {"ops": {"size": 10, "refill_time": 100}}}
            """).RootElement;
        var c = Started(vm, new VmConfig { MachineConfig = new MachineConfig(), NetworkInterfaces = [iface] });
        string before = c.Handle("GET", "/vm/config", null).Body!;

        var r = c.Handle("PATCH", "/network-interfaces/eth0", """ {"iface_id": "eth0", "tx_rate_limiter": {"ops": {"size": -1, "refill_time": 1}}} """);
        Assert.Equal(400, r.Status);
        r = c.Handle("PATCH", "/network-interfaces/eth9", """ {"iface_id": "eth9", "rx_rate_limiter": {"ops": {"size": 5, "refill_time": 1}}} """);
        Assert.Equal(400, r.Status);
        Assert.Equal(0, vm.NetPatches);
        Assert.Equal(before, c.Handle("GET", "/vm/config", null).Body);

        Assert.Equal(204, c.Handle("PATCH", "/network-interfaces/eth0",
            """ {"iface_id": "eth0", "rx_rate_limiter": {"ops": {"size": 5, "refill_time": 1}}, "tx_rate_limiter": {"ops": {"size": 0, "refill_time": 1}}} """).Status);
        Assert.Equal(1, vm.NetPatches);
        var stored = Assert.Single(c.Configuration.NetworkInterfaces!);
        var rx = stored.GetProperty("rx_rate_limiter");
        Assert.Equal(1000UL, rx.GetProperty("bandwidth").GetProperty("size").GetUInt64()); // left out: kept
        Assert.Equal(5UL, rx.GetProperty("ops").GetProperty("size").GetUInt64());          // given: replaced
        Assert.False(stored.TryGetProperty("tx_rate_limiter", out var tx) && tx.ValueKind == JsonValueKind.Object
            && tx.TryGetProperty("ops", out _), "a bucket of size 0 disables it");
        Assert.Equal("tap0", stored.GetProperty("host_dev_name").GetString());
    }

    private static bool CanOpenTun()
    {
        try { using var f = File.Open("/dev/net/tun", FileMode.Open, FileAccess.ReadWrite); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    private static int Sh(string cmd) => Repo.Sh(cmd).ExitCode;

    // ---- static CPU templates ----

    /// Firecracker: src/vmm/src/cpu_config/x86_64/static_cpu_templates/mod.rs (C3, T2, T2S, T2CL, T2A) and
    /// test_api.py, test_api_machine_config (a supported static template is accepted by PATCH /machine-config).
    [Theory]
    [InlineData("C3")]
    [InlineData("T2")]
    [InlineData("T2S")]
    [InlineData("T2CL")]
    [InlineData("T2A")]
    public void Static_cpu_templates_are_accepted(string name)
    {
        var c = Controller();
        Assert.Equal(204, c.Handle("PATCH", "/machine-config", $"{{\"cpu_template\": \"{name}\"}}").Status);
        Assert.Equal(name, c.Configuration.MachineConfig!.CpuTemplate);
        Assert.Null(ConfigLoader.CpuTemplateError(name));
        Assert.NotNull(StaticCpuTemplates.ByName(name));
    }

    /// Firecracker: custom_cpu_template.rs, get_cpu_template (CpuVendorMismatched, then InvalidCpuModel);
    /// arch/x86_64/vcpu.rs, test_configure_vcpu (Intel templates refused on AMD and the reverse).
    [Fact]
    public void Static_cpu_templates_are_refused_on_the_wrong_vendor_or_model()
    {
        const uint cascadeLake = 0x00050657, milan = 0x00a00f11;
        Assert.Null(StaticCpuTemplates.HostError("T2", "GenuineIntel", cascadeLake));
        Assert.Null(StaticCpuTemplates.HostError("T2A", "AuthenticAMD", milan));
        Assert.Equal("CPU vendor mismatched between actual CPU and CPU template.", StaticCpuTemplates.HostError("T2A", "GenuineIntel", cascadeLake));
        foreach (var intel in new[] { "C3", "T2", "T2S", "T2CL" })
            Assert.Equal("CPU vendor mismatched between actual CPU and CPU template.", StaticCpuTemplates.HostError(intel, "AuthenticAMD", milan));
        Assert.Equal("The current CPU model is not permitted to apply the CPU template.", StaticCpuTemplates.HostError("T2S", "GenuineIntel", 0x000606a6));
        Assert.Equal("The current CPU model is not permitted to apply the CPU template.", StaticCpuTemplates.HostError("T2A", "AuthenticAMD", 0x00a00f10));

        // Through the builder's lookup, with a host CPUID as KVM reports it (leaf 0: vendor; leaf 1: model).
        KvmCpuidEntry2[] intelHost =
        [
            new() { Function = 0, Ebx = 0x756e6547, Edx = 0x49656e69, Ecx = 0x6c65746e }, // "GenuineIntel"
            new() { Function = 1, Eax = cascadeLake },
        ];
        var e = Assert.Throws<ConfigException>(() => Builder.VmBuilder.StaticTemplate("T2A", intelHost));
        Assert.Equal("Failed to get CPU template: CPU vendor mismatched between actual CPU and CPU template.", e.Message);
        Assert.NotNull(Builder.VmBuilder.StaticTemplate("T2CL", intelHost));
        Assert.Null(Builder.VmBuilder.StaticTemplate("None", intelHost));
    }

    /// Firecracker: custom_cpu_template.rs, get_cpu_template, on this host's real KVM: the Intel templates are refused
    /// on AMD and T2A on Intel with Firecracker's vendor text; a template the host may use yields a CPUID KVM takes.
    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Static_cpu_templates_follow_the_host_vendor_under_real_kvm()
    {
        KvmRequirement.Check();
        using var kvm = KvmSystem.Open();
        var host = kvm.GetSupportedCpuid();
        var leaf0 = host.First(e => e.Function == 0);
        string vendor = StaticCpuTemplates.VendorId(leaf0.Ebx, leaf0.Edx, leaf0.Ecx);
        foreach (var name in new[] { "C3", "T2", "T2S", "T2CL", "T2A" })
        {
            bool vendorFits = StaticCpuTemplates.SupportedVendor(name) == vendor;
            CustomCpuTemplate? t = null;
            try { t = Builder.VmBuilder.StaticTemplate(name, host); }
            catch (ConfigException e)
            {
                Assert.Equal(vendorFits ? "Failed to get CPU template: The current CPU model is not permitted to apply the CPU template."
                    : "Failed to get CPU template: CPU vendor mismatched between actual CPU and CPU template.", e.Message);
                continue;
            }
            Assert.True(vendorFits, $"{name} accepted on {vendor}");
            using var vm = kvm.CreateVm();
            using var vcpu = vm.CreateVcpu(0);
            var edited = host.ToList();
            t!.ApplyCpuid(edited);
            vcpu.SetCpuid2([.. CpuidNormalizer.Normalize([.. edited], 0, 1, false)]);
        }
    }

    /// Firecracker: static_cpu_templates/t2.rs and t2cl.rs (the modifiers themselves): T2 forces CPUID.1:EAX's
    /// family/model bits and clears AVX-512 in leaf 7; T2CL also masks IA32_ARCH_CAPABILITIES (MSR 0x10a).
    [Fact]
    public void Static_cpu_templates_make_firecrackers_modifications()
    {
        var t2 = StaticCpuTemplates.ByName("T2")!;
        var entries = new List<KvmCpuidEntry2>
        {
            new() { Function = 1, Eax = 0xffffffff, Ecx = 0xffffffff, Edx = 0xffffffff },
            new() { Function = 7, Index = 0, Flags = 1, Ebx = 0xffffffff, Ecx = 0xffffffff, Edx = 0xffffffff },
        };
        t2.ApplyCpuid(entries);
        // 0bxxxx000000000011xx00011011110010 on all-ones: the forced family/model/stepping bits, the x bits kept.
        Assert.Equal(0xf003c6f2u, entries[0].Eax);
        // 0b00000000000x000000x00x1xxxx0x0xx: AVX-512 (bits 16, 17, 28, 30, 31) cleared, AVX2 (bit 5) kept.
        Assert.Equal(0x001027ebu, entries[1].Ebx);
        Assert.Empty(t2.Msrs);
        var t2cl = StaticCpuTemplates.ByName("T2CL")!;
        var msr = Assert.Single(t2cl.Msrs);
        Assert.Equal(0x10au, msr.Address);
        Assert.Equal(0x1d0ae1ffUL, msr.Bits.Apply(ulong.MaxValue)); // 0b0...0xxx0x0000x0x0xxx0000xxxxxxxxx
    }

    /// Firecracker: vmm_config/machine_config.rs, MachineConfig::update and set_custom_cpu_template: the template set
    /// last wins; PUT /machine-config without cpu_template keeps the static one.
    [Fact]
    public void Static_and_custom_cpu_templates_replace_each_other()
    {
        var c = Controller();
        Assert.Equal(204, c.Handle("PUT", "/cpu-config", "{\"cpuid_modifiers\": []}").Status);
        Assert.Equal(204, c.Handle("PATCH", "/machine-config", "{\"cpu_template\": \"T2\"}").Status);
        Assert.Null(ConfigLoader.Present(c.Configuration.CpuConfig));
        Assert.Equal(204, c.Handle("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}").Status);
        Assert.Equal("T2", c.Configuration.MachineConfig!.CpuTemplate);
        Assert.Equal(204, c.Handle("PUT", "/cpu-config", "{\"cpuid_modifiers\": []}").Status);
        Assert.Null(c.Configuration.MachineConfig!.CpuTemplate);
        Assert.NotNull(ConfigLoader.Present(c.Configuration.CpuConfig));
    }
}

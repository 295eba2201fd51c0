using System.Text;
using System.Text.Json;
using Flint.Devices.Metrics;
using Flint.Devices.Mmds;
using Flint.Vmm.Metrics;
using Flint.Vmm.Rpc;

namespace Flint.Vmm.Tests;

/// <summary>
/// Firecracker parity of the metrics file (issue 12, item 7): every line has exactly Firecracker main's keys, as its
/// tests/host_tools/fcmetrics.py checks them (<see cref="FirecrackerMetricsValidator"/>), per-device objects sum up
/// to their group, and each number is reported as Firecracker reports it (SharedIncMetric: the change since the
/// previous flush; SharedStoreMetric: the value). Firecracker sources: src/vmm/src/logger/metrics.rs and the
/// devices' metrics.rs; tests: tests/integration_tests/functional/test_metrics.py.
/// </summary>
public sealed class ParityMetricsTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private static JsonElement Line(MetricsRegistry r) => JsonDocument.Parse(r.Snapshot(DateTimeOffset.UtcNow)).RootElement;

    /// <summary>fcmetrics.py validate_fc_metrics, as test_metrics.py::test_flush_metrics runs it on a fresh VM.</summary>
    [Fact]
    public void A_line_has_exactly_Firecrackers_keys()
    {
        FirecrackerMetricsValidator.AssertConforms(Line(new MetricsRegistry()));
    }

    /// <summary>fcmetrics.py validate_fc_metrics' own negative check (validate_missing_metrics): the check sees a
    /// missing number inside a group, and Flint-only keys.</summary>
    [Fact]
    public void The_check_itself_sees_a_missing_number_and_an_extra_key()
    {
        var json = Encoding.UTF8.GetString(new MetricsRegistry().Snapshot(DateTimeOffset.UtcNow));
        var broken = json.Replace("\"process_startup_time_us\":0,", "").Replace("\"panic_count\":0", "\"panic_count\":0,\"device_events\":0");
        var problems = FirecrackerMetricsValidator.Problems(JsonDocument.Parse(broken).RootElement);
        Assert.Contains("api_server.process_startup_time_us: missing", problems);
        Assert.Contains("vmm.device_events: not a Firecracker key", problems);
    }

    /// <summary>No Flint-only key can reach the file: binding one is refused (the schema is Firecracker's).</summary>
    [Fact]
    public void Binding_a_key_Firecracker_lacks_is_refused()
    {
        var r = new MetricsRegistry();
        Assert.Throws<ArgumentException>(() => r.Bind("vmm", "device_events", () => 1));
        Assert.Throws<ArgumentException>(() => r.Bind("logger", "log_fails", () => 1));
        Assert.Throws<ArgumentException>(() => r.Bind("net", "rx_count", () => 1)); // net is the sum of net_{id}
    }

    /// <summary>metrics.rs: SharedIncMetric serialises the change since the last flush, SharedStoreMetric its value
    /// (api_server, latencies_us, seccomp.num_faults, vmm.panic_count, every signal but sigpipe, an _agg's min/max).</summary>
    [Fact]
    public void Inc_numbers_are_deltas_and_store_numbers_are_values()
    {
        var r = new MetricsRegistry();
        long pipes = 3, faults = 1;
        r.Bind("signals", "sigpipe", () => pipes);
        r.Bind("signals", "sigbus", () => 1);
        r.Bind("seccomp", "num_faults", () => faults);
        r.Bind("vmm", "panic_count", () => 1);
        r.Bind("latencies_us", "pause_vm", () => 250);
        var agg = new LatencyAggregate();
        agg.Record(40);
        agg.Record(10);
        r.BindAggregate("vcpu", "exit_io_in_agg", agg);

        var first = Line(r);
        Assert.Equal(3, first.GetProperty("signals").GetProperty("sigpipe").GetInt64());
        Assert.Equal(50, first.GetProperty("vcpu").GetProperty("exit_io_in_agg").GetProperty("sum_us").GetInt64());

        agg.Record(20);
        var second = Line(r);
        Assert.Equal(0, second.GetProperty("signals").GetProperty("sigpipe").GetInt64());
        Assert.Equal(1, second.GetProperty("signals").GetProperty("sigbus").GetInt64());
        Assert.Equal(1, second.GetProperty("seccomp").GetProperty("num_faults").GetInt64());
        Assert.Equal(1, second.GetProperty("vmm").GetProperty("panic_count").GetInt64());
        Assert.Equal(250, second.GetProperty("latencies_us").GetProperty("pause_vm").GetInt64());
        var a = second.GetProperty("vcpu").GetProperty("exit_io_in_agg");
        Assert.Equal(10, a.GetProperty("min_us").GetInt64());  // kept for the process's life
        Assert.Equal(40, a.GetProperty("max_us").GetInt64());
        Assert.Equal(20, a.GetProperty("sum_us").GetInt64());  // since the previous flush
    }

    /// <summary>block/virtio/metrics.rs and net/metrics.rs flush_metrics: one "block_{id}" object per drive, in id order,
    /// and "block" the sum of their changes; fcmetrics.py FcDeviceMetrics.validate_per_device_metrics.</summary>
    [Fact]
    public void Per_device_objects_sum_up_to_their_group()
    {
        var r = new MetricsRegistry();
        long reads1 = 5, reads2 = 7;
        var agg = new LatencyAggregate();
        agg.Record(30);
        r.BindDevices("block", () =>
        [
            new MetricsRegistry.DeviceSource("scratch", () => [("read_count", reads2), .. agg.Snapshot("read_agg")]),
            new MetricsRegistry.DeviceSource("rootfs", () => [("read_count", reads1)]),
        ]);
        var first = Line(r);
        FirecrackerMetricsValidator.AssertConforms(first);
        Assert.Equal(["block_rootfs", "block_scratch", "block"], first.EnumerateObject().Select(p => p.Name).Where(n => n.StartsWith("block")));
        FirecrackerMetricsValidator.AssertAggregate(first, "block", 2);
        Assert.Equal(12, first.GetProperty("block").GetProperty("read_count").GetInt64());
        Assert.Equal(30, first.GetProperty("block_scratch").GetProperty("read_agg").GetProperty("min_us").GetInt64());

        reads1 += 1;
        var second = Line(r);
        FirecrackerMetricsValidator.AssertAggregate(second, "block", 2);
        Assert.Equal(1, second.GetProperty("block").GetProperty("read_count").GetInt64());
        Assert.Equal(0, second.GetProperty("block_scratch").GetProperty("read_count").GetInt64());
        // Without devices the group is still there, all zeros (Firecracker always writes the aggregate).
        FirecrackerMetricsValidator.AssertAggregate(Line(new MetricsRegistry()), "net", 0);
    }

    /// <summary>
    /// balloon/metrics.rs (free_page_report_*, free_page_hint_*) and legacy/serial.rs (uart.rate_limiter_dropped_bytes,
    /// Firecracker 1.15): the device counters reach the line under Firecracker's names, as changes per flush.
    /// </summary>
    [Fact]
    public void Balloon_free_page_and_uart_rate_limiter_counters_use_firecrackers_names()
    {
        var r = new MetricsRegistry();
        using var balloon = new Flint.Devices.Virtio.Balloon.VirtioBalloon(0, false, 0, freePageHinting: true, freePageReporting: true);
        var m = balloon.Metrics;
        (m.FreePageReportCount, m.FreePageReportFreed, m.FreePageReportFails) = (3, 3 << 20, 1);
        (m.FreePageHintCount, m.FreePageHintFreed, m.FreePageHintFails) = (2, 8192, 4);
        r.BindSum("balloon", [m.Snapshot]);
        var uart = new Flint.Devices.Legacy.UartMetrics { RateLimiterDroppedBytes = 17 };
        r.Bind("uart", "rate_limiter_dropped_bytes", () => uart.RateLimiterDroppedBytes);

        var line = Line(r);
        FirecrackerMetricsValidator.AssertConforms(line);
        var b = line.GetProperty("balloon");
        Assert.Equal([3L, 3L << 20, 1L, 2L, 8192L, 4L],
            new[] { "free_page_report_count", "free_page_report_freed", "free_page_report_fails", "free_page_hint_count",
                    "free_page_hint_freed", "free_page_hint_fails" }.Select(k => b.GetProperty(k).GetInt64()));
        Assert.Equal(17, line.GetProperty("uart").GetProperty("rate_limiter_dropped_bytes").GetInt64());
        m.FreePageReportCount += 2;
        Assert.Equal(2, Line(r).GetProperty("balloon").GetProperty("free_page_report_count").GetInt64());
    }

    /// <summary>
    /// test_metrics.py::test_flush_metrics / test_block_metrics / test_net_metrics, before boot: a configured VM's
    /// FlushMetrics through the controller writes a conforming line with a block_{id} per drive and a net_{id} per
    /// interface (Firecracker allocates a device's metrics when PUT creates the device).
    /// </summary>
    [Fact]
    public void FlushMetrics_of_a_configured_vm_through_the_controller_conforms()
    {
        var registry = new MetricsRegistry();
        using var output = new MetricsOutput(registry);
        string metrics = Path.Combine(_dir, "metrics.json"), disk = Path.Combine(_dir, "disk.img");
        File.WriteAllBytes(disk, new byte[1 << 20]);
        var c = new VmmController(_ => throw new InvalidOperationException("not started in this test"), "parity-vm")
        {
            ConfigureLogger = _ => { },
            ConfigureMetrics = m => output.Configure(m.MetricsPath),
            FlushMetricsHandler = output.FlushOrThrow,
        };
        VmmMetricsBinding.BindConfigured(registry, () => c.Configuration);
        foreach (var id in new[] { "rootfs", "data" })
            Assert.Equal(204, c.Handle("PUT", $"/drives/{id}",
                $"{{\"drive_id\":\"{id}\",\"path_on_host\":\"{disk}\",\"is_root_device\":{(id == "rootfs" ? "true" : "false")},\"is_read_only\":false}}").Status);
        Assert.Equal(204, c.Handle("PUT", "/network-interfaces/eth0", "{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap-parity1\"}").Status);
        Assert.Equal(204, c.Handle("PUT", "/metrics", $"{{\"metrics_path\":\"{metrics}\"}}").Status);
        // FlushMetrics is a runtime action in Firecracker main (refused before the start): flush as the periodic timer does.
        Assert.Equal(400, c.Handle("PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}").Status);
        output.FlushOrThrow();

        var line = JsonDocument.Parse(File.ReadAllLines(metrics).Single()).RootElement;
        FirecrackerMetricsValidator.AssertConforms(line);
        FirecrackerMetricsValidator.AssertAggregate(line, "block", 2);
        FirecrackerMetricsValidator.AssertAggregate(line, "net", 1);
        Assert.True(line.TryGetProperty("block_rootfs", out _));
        Assert.True(line.TryGetProperty("net_eth0", out _));
        // test_metrics.py::test_metrics_default_shape: no id or properties unless asked for.
        Assert.False(line.TryGetProperty("id", out _));
        Assert.False(line.TryGetProperty("properties", out _));
    }

    /// <summary>test_metrics.py::test_metrics_emit_id_and_properties (vmm_config/metrics.rs init_metrics): "id" and
    /// "properties" on every line once configured, and the line still conforms.</summary>
    [Fact]
    public void Emit_id_and_properties_add_top_level_fields()
    {
        var registry = new MetricsRegistry();
        using var output = new MetricsOutput(registry);
        string path = Path.Combine(_dir, "m.json");
        output.Configure(path, emitIdAs: "vm-7", properties: new Dictionary<string, string> { ["customer_id"] = "1234", ["bundle_id"] = "fn-abc" });
        output.FlushOrThrow();
        var line = JsonDocument.Parse(File.ReadAllLines(path).Single()).RootElement;
        FirecrackerMetricsValidator.AssertConforms(line);
        Assert.Equal(["utc_timestamp_ms", "id", "properties"], line.EnumerateObject().Take(3).Select(p => p.Name));
        Assert.Equal("vm-7", line.GetProperty("id").GetString());
        Assert.Equal(["bundle_id", "customer_id"], line.GetProperty("properties").EnumerateObject().Select(p => p.Name));
    }

    /// <summary>mmds/mod.rs respond_to_get_request_v1/_v2 (its tests test_respond_to_request_mmdsv1/v2): a GET without a
    /// token counts rx_no_token, one with a bad token rx_invalid_token, under V1 (served anyway) and V2 (401).</summary>
    [Theory]
    [InlineData(MmdsVersion.V1, 200)]
    [InlineData(MmdsVersion.V2, 401)]
    public void Mmds_gets_without_or_with_a_bad_token_are_counted(MmdsVersion version, int status)
    {
        var store = new MmdsStore();
        store.Put("{\"a\":\"b\"}");
        var http = new MmdsHttp(store, version, new MmdsTokenAuthority());
        Assert.Equal(status, Status(http, "GET /a HTTP/1.1\r\n\r\n"));
        Assert.Equal(status, Status(http, "GET /a HTTP/1.1\r\nX-metadata-token: nope\r\n\r\n"));
        Assert.Equal(1, http.Metrics.RxNoToken);
        Assert.Equal(1, http.Metrics.RxInvalidToken);
        var r = new MetricsRegistry();
        r.BindSum("mmds", [http.Metrics.Snapshot]);
        Assert.Equal(1, Line(r).GetProperty("mmds").GetProperty("rx_no_token").GetInt64());
    }

    /// <summary>x86_64 vcpu.rs run_arch_emulation / vstate/vcpu.rs: each I/O-port and MMIO exit's bus work is timed
    /// into vcpu.exit_*_agg beside its count.</summary>
    [Fact]
    public void Vcpu_exits_are_timed_into_their_agg()
    {
        var pio = new Flint.Devices.Bus();
        var mmio = new Flint.Devices.Bus();
        using var exit = new VmExit();
        var m = new VcpuMetrics();
        var slow = new SlowDevice();
        pio.Insert(slow, 0x3f8, 8);
        mmio.Insert(slow, 0xd000_0000, 0x1000);
        var h = new VcpuExitHandler(0, pio, mmio, exit, m);
        h.Handle(Flint.Kvm.VcpuExit.Io(0x3f8, isOut: true, 1, new byte[1]));
        h.Handle(Flint.Kvm.VcpuExit.Io(0x3f8, isOut: false, 1, new byte[1]));
        h.Handle(Flint.Kvm.VcpuExit.Mmio(0xd000_0000, isWrite: true, new byte[4]));
        h.Handle(Flint.Kvm.VcpuExit.Mmio(0xd000_0000, isWrite: false, new byte[4]));
        foreach (var (agg, count) in new[] { (m.ExitIoOutAgg, m.ExitIoOut), (m.ExitIoInAgg, m.ExitIoIn), (m.ExitMmioWriteAgg, m.ExitMmioWrite), (m.ExitMmioReadAgg, m.ExitMmioRead) })
        {
            Assert.Equal(1, count);
            Assert.InRange(agg.MinUs, 1_000, 5_000_000); // the device takes 2 ms
            Assert.Equal(agg.MinUs, agg.MaxUs);
            Assert.Equal(agg.MinUs, agg.SumUs);
        }
    }

    private sealed class SlowDevice : Flint.Devices.IBusDevice
    {
        public void Read(ulong offset, Span<byte> data) => Thread.Sleep(2);
        public void Write(ulong offset, ReadOnlySpan<byte> data) => Thread.Sleep(2);
    }

    /// <summary>
    /// api_server/request/*.rs (e.g. drive.rs parse_put_drive, with its test test_parse_put_drive_request): a request
    /// counts under its route; *_fails only when the parser refused it. A request the VMM refuses after parsing is
    /// not a fail in Firecracker. Routes Flint lacks but Firecracker counts (PUT /serial) count and fail.
    /// </summary>
    [Fact]
    public void Api_fails_count_parse_failures_only()
    {
        var m = new ApiRequestMetrics();
        var r = new MetricsRegistry();
        m.BindTo(r);
        // Parsed, then refused by the VMM: counted (before the VMM runs it), not failed.
        var parsed = ApiRequestParser.Parse("PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/nonexistent\", \"is_root_device\": true}");
        Assert.Null(parsed.Error);
        m.RecordParsed(parsed.Route);
        // Refused by the parser (the handler never saw it): counted and failed.
        var refused = ApiRequestParser.Parse("PUT", "/drives/rootfs", "{\"drive_id\": 1}");
        Assert.NotNull(refused.Error);
        m.RecordRefused(refused.Route);
        m.Record("PUT", "/serial", 400);
        m.Record("GET", "/hotplug/memory", 400);
        m.Record("GET", "/hotplug/other", 400);
        var line = Line(r);
        FirecrackerMetricsValidator.AssertConforms(line);
        var put = line.GetProperty("put_api_requests");
        Assert.Equal(2, put.GetProperty("drive_count").GetInt64());
        Assert.Equal(1, put.GetProperty("drive_fails").GetInt64());
        Assert.Equal(1, put.GetProperty("serial_count").GetInt64());
        Assert.Equal(1, put.GetProperty("serial_fails").GetInt64());
        Assert.Equal(1, line.GetProperty("get_api_requests").GetProperty("hotplug_memory_count").GetInt64());
    }

    /// <summary>
    /// swagger Metrics (emit_id, properties) and vmm_config/metrics.rs init_metrics: PUT /metrics takes both, each line
    /// then carries the instance id and the properties; a property that is not a string is refused as serde refuses it.
    /// </summary>
    [Fact]
    public void Put_metrics_takes_emit_id_and_properties()
    {
        var registry = new MetricsRegistry();
        using var output = new MetricsOutput(registry);
        string metrics = Path.Combine(_dir, "metrics-id.json");
        var c = new VmmController(_ => throw new InvalidOperationException("not started in this test"), "vm-7")
        {
            ConfigureLogger = _ => { },
            ConfigureMetrics = m => output.Configure(m.MetricsPath, m.EmitId == true ? "vm-7" : null, m.Properties),
        };
        var bad = c.Handle("PUT", "/metrics", $"{{\"metrics_path\":\"{metrics}\",\"properties\":{{\"a\":1}}}}");
        Assert.Equal(400, bad.Status);
        Assert.Contains("invalid type: integer `1`, expected a string", bad.Body);
        Assert.Equal(204, c.Handle("PUT", "/metrics",
            $"{{\"metrics_path\":\"{metrics}\",\"emit_id\":true,\"properties\":{{\"team\":\"edge\",\"zone\":\"a\"}}}}").Status);
        output.FlushOrThrow();
        var line = JsonDocument.Parse(File.ReadAllLines(metrics).Single()).RootElement;
        Assert.Equal("vm-7", line.GetProperty("id").GetString());
        Assert.Equal("edge", line.GetProperty("properties").GetProperty("team").GetString());
        Assert.Equal("a", line.GetProperty("properties").GetProperty("zone").GetString());
    }

    private sealed class Refusing : IApiHandler
    {
        public ApiResponse Handle(VmmAction action) => ApiResponse.Fault("refused");
    }

    /// <summary>api_server/mod.rs serve_vmm_action_request (its test test_serve_vmm_action_request) and
    /// rpc_interface.rs: a successful PATCH /vm Paused stores its duration in latencies_us.pause_vm, the VMM's part in
    /// vmm_pause_vm; a failed request stores nothing; the values stay (SharedStoreMetric).</summary>
    [Fact]
    public void Pause_and_resume_store_their_latency()
    {
        var lat = new VmLatencyMetrics();
        var r = new MetricsRegistry();
        lat.BindTo(r);
        var api = lat.TimeApiRequests(new PauseOkResumeFails());
        Assert.Equal(204, api.Handle(new Pause()).Status);
        Assert.Equal(400, api.Handle(new Resume()).Status);
        lat.TimeVmmPause(() => Thread.Sleep(2));
        for (int i = 0; i < 2; i++)
        {
            var l = Line(r).GetProperty("latencies_us");
            Assert.InRange(l.GetProperty("pause_vm").GetInt64(), 1_000, 5_000_000);
            Assert.Equal(0, l.GetProperty("resume_vm").GetInt64());
            Assert.InRange(l.GetProperty("vmm_pause_vm").GetInt64(), 1_000, 5_000_000);
            Assert.Equal(0, l.GetProperty("full_create_snapshot").GetInt64());
        }
    }

    private sealed class PauseOkResumeFails : IApiHandler
    {
        public ApiResponse Handle(VmmAction action)
        {
            Thread.Sleep(2);
            return action is Pause ? ApiResponse.NoContent : ApiResponse.Fault("no");
        }
    }

    /// <summary>
    /// test_metrics.py::test_flush_metrics with the real binary (artifacts/bin/flint): a configured VM's FlushMetrics
    /// over the API socket writes a line fcmetrics.py accepts, with a block_{id} and net_{id} per configured device,
    /// and the API counters as Firecracker keeps them (its own FlushMetrics request already counted; a body that
    /// does not parse is a drive_fails, a drive the VMM refuses is not).
    /// </summary>
    [Fact]
    public void FlushMetrics_of_the_real_process_conforms()
    {
        string sock = Path.Combine(_dir, "api.sock"), metrics = Path.Combine(_dir, "metrics.json"), disk = Path.Combine(_dir, "disk.img");
        File.WriteAllBytes(disk, new byte[1 << 20]);
        using var p = Repo.StartWithApi(sock, "--metrics-path", metrics);
        try
        {
            using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            s.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(sock));
            Assert.Equal(200, Http(s, "GET", "/", null));
            Assert.Equal(204, Http(s, "PUT", "/drives/rootfs", $"{{\"drive_id\":\"rootfs\",\"path_on_host\":\"{disk}\",\"is_root_device\":true,\"is_read_only\":false}}"));
            Assert.Equal(400, Http(s, "PUT", "/drives/scratch", "{\"drive_id\": 7}"));
            Assert.Equal(204, Http(s, "PUT", "/network-interfaces/eth0", "{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap-parity0\"}"));
            // Firecracker main refuses FlushMetrics before the start (rpc_interface.rs, its test
            // test_preboot_request_unsupported); without KVM there is no start here, so the line is the one the
            // SIGHUP exit path flushes (Firecracker flushes on its fatal signals too).
            Assert.Equal(400, Http(s, "PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}"));
            using (var hup = System.Diagnostics.Process.Start("kill", $"-HUP {p.Id}")) hup.WaitForExit();
            Assert.True(p.WaitForExit(20_000), "flint did not exit on SIGHUP");
        }
        finally
        {
            if (!p.HasExited) p.Kill();
            p.WaitForExit();
        }
        // The first line is the one the exit flushed.
        var line = JsonDocument.Parse(File.ReadAllLines(metrics).First()).RootElement;
        FirecrackerMetricsValidator.AssertConforms(line);
        FirecrackerMetricsValidator.AssertAggregate(line, "block", 1);
        FirecrackerMetricsValidator.AssertAggregate(line, "net", 1);
        Assert.True(line.TryGetProperty("block_rootfs", out _));
        Assert.True(line.TryGetProperty("net_eth0", out _));
        var put = line.GetProperty("put_api_requests");
        Assert.Equal(2, put.GetProperty("drive_count").GetInt64());
        Assert.Equal(1, put.GetProperty("drive_fails").GetInt64());
        Assert.Equal(1, put.GetProperty("network_count").GetInt64());
        Assert.Equal(1, put.GetProperty("actions_count").GetInt64());
        Assert.Equal(1, line.GetProperty("get_api_requests").GetProperty("instance_info_count").GetInt64());
        Assert.InRange(line.GetProperty("api_server").GetProperty("process_startup_time_us").GetInt64(), 1, 60_000_000);
    }

    /// <summary>
    /// test_metrics.py::test_block_metrics / test_net_metrics' shape on a real guest: the test guest reads and writes
    /// its drive; after the run the metrics hold a conforming line whose block_{id} counted the I/O (with its
    /// read_agg/write_agg), and vCPU exits were timed (vcpu.exit_io_out_agg).
    /// </summary>
    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void A_guest_run_counts_block_io_and_times_exits_in_conforming_lines()
    {
        KvmRequirement.Check();
        string disk = Path.Combine(_dir, "disk.img"), metrics = Path.Combine(_dir, "metrics.json"), cfg = Path.Combine(_dir, "config.json");
        Flint.TestGuest.TestGuestImage.WriteDisk(disk, 64);
        File.WriteAllText(cfg, $$"""
            {"boot-source": {"kernel_image_path": "{{Flint.TestGuest.TestGuestImage.Path}}", "boot_args": "tg.tests=serial,blk" },
             "drives": [{"drive_id": "data", "path_on_host": "{{disk}}", "is_root_device": false, "is_read_only": false, "cache_type": "Writeback"}],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 64 },
             "metrics": {"metrics_path": "{{metrics}}"} }
            """);
        var r = Repo.RunFlint(TimeSpan.FromSeconds(120), "--no-api", "--config-file", cfg);
        Assert.Contains("PASS blk", r.Stdout);
        var lines = File.ReadAllLines(metrics).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.NotEmpty(lines);
        foreach (var l in lines)
        {
            FirecrackerMetricsValidator.AssertConforms(l);
            FirecrackerMetricsValidator.AssertAggregate(l, "block", 1);
        }
        long Sum(string group, string name) => lines.Sum(l => l.GetProperty(group).GetProperty(name).GetInt64());
        Assert.True(Sum("block_data", "read_count") > 0);
        Assert.True(Sum("block_data", "write_count") > 0);
        Assert.True(Sum("vcpu", "exit_io_out") > 0);
        // max_us is kept for the process's life: the slowest serial write took at least a microsecond.
        Assert.True(lines[^1].GetProperty("vcpu").GetProperty("exit_io_out_agg").GetProperty("max_us").GetInt64() > 0);
        Assert.True(Sum("interrupts", "triggers") > 0);
    }

    private static int Http(System.Net.Sockets.Socket s, string method, string path, string? body)
    {
        var b = body ?? "";
        s.Send(Encoding.UTF8.GetBytes($"{method} {path} HTTP/1.1\r\nHost: localhost\r\n" +
            (body != null ? $"Content-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(b)}\r\n" : "") + "\r\n" + b));
        var buf = new byte[65536];
        int n = 0;
        while (true)
        {
            int got = s.Receive(buf, n, buf.Length - n, System.Net.Sockets.SocketFlags.None);
            Assert.True(got > 0, "the API closed the connection");
            n += got;
            var text = Encoding.UTF8.GetString(buf, 0, n);
            int he = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (he < 0) continue;
            var m = System.Text.RegularExpressions.Regex.Match(text, "Content-Length: (\\d+)", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
            int len = m.Success ? int.Parse(m.Groups[1].Value) : 0;
            if (n < he + 4 + len) continue;
            return int.Parse(text.Substring(9, 3));
        }
    }

    private static int Status(MmdsHttp http, string request)
    {
        Assert.True(http.TryHandle(Encoding.ASCII.GetBytes(request), out var response, out _) > 0);
        return int.Parse(Encoding.ASCII.GetString(response!).Substring(9, 3));
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Flint.Vmm.Config;
using Flint.Vmm.Rpc;

namespace Flint.Vmm.Tests;

/// <summary>
/// Firecracker's config-file schema (resources.rs VmmConfig) and GET /vm/config (test_api.py test_get_full_config,
/// test_config_start_with_api): its framework config loads, its sections Flint lacks are refused by name, and
/// GET /vm/config reports every key with Firecracker's defaults and nulls and loads back as a config file.
/// </summary>
public class ParityConfigTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private readonly string _kernel, _disk;

    public ParityConfigTests()
    {
        _kernel = Path.Combine(_dir, "vmlinux.bin");
        _disk = Path.Combine(_dir, "bionic.rootfs.ext4");
        File.WriteAllBytes(_kernel, new byte[64]);
        File.WriteAllBytes(_disk, new byte[4096]);
    }

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Firecracker's tests/framework/vm_config.json (main), its two paths pointed at files that exist.</summary>
    private string FirecrackerFrameworkConfig() => $$"""
        {
          "boot-source": {
            "kernel_image_path": "{{_kernel}}",
            "boot_args": "console=ttyS0 reboot=k panic=1",
            "initrd_path": null
          },
          "drives": [
            {
              "drive_id": "rootfs",
              "partuuid": null,
              "is_root_device": true,
              "cache_type": "Unsafe",
              "is_read_only": false,
              "path_on_host": "{{_disk}}",
              "io_engine": "Sync",
              "rate_limiter": null,
              "socket": null
            }
          ],
          "machine-config": {
            "vcpu_count": 2,
            "mem_size_mib": 1024,
            "smt": false,
            "track_dirty_pages": false,
            "huge_pages": "None"
          },
          "cpu-config": null,
          "balloon": null,
          "network-interfaces": [],
          "vsock": null,
          "logger": null,
          "metrics": null,
          "mmds-config": null,
          "entropy": null,
          "pmem": [],
          "memory-hotplug": null
        }
        """;

    // tests/framework/vm_config.json is what Firecracker's own test framework starts every VM from.
    [Fact]
    public void Firecrackers_framework_config_loads()
    {
        var c = ConfigLoader.Parse(FirecrackerFrameworkConfig());
        Assert.Equal(2, c.MachineConfig!.VcpuCount);
        Assert.Equal(1024, c.MachineConfig.MemSizeMib);
        Assert.Equal("rootfs", Assert.Single(c.Drives).DriveId);
    }

    // resources.rs VmmConfig has no deny_unknown_fields: serde skips unknown top-level keys (and "serial", which is
    // serde(skip)); the sections themselves deny unknown fields.
    [Fact]
    public void Unknown_top_level_keys_are_skipped_but_unknown_section_fields_are_not()
    {
        string cfg = FirecrackerFrameworkConfig().Replace("\"cpu-config\": null,", "\"serial\": {\"serial_out_path\": \"/tmp/x\"}, \"future-thing\": [1, 2],");
        ConfigLoader.Parse(cfg);
        string bad = FirecrackerFrameworkConfig().Replace("\"huge_pages\": \"None\"", "\"huge_pages\": \"None\", \"bogus\": 1");
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(bad));
        Assert.StartsWith("Invalid JSON: unknown field `bogus`, expected one of `vcpu_count`, `mem_size_mib`, `smt`, `cpu_template`, `track_dirty_pages`, `huge_pages` at line ", e.Message);
    }

    // resources.rs: "memory-hotplug" is MemoryHotplugConfig (deny_unknown_fields, u32 sizes, block and slot defaulted),
    // validated by MemoryHotplugConfig::validate under ResourcesError::MemoryHotplugConfig.
    [Theory]
    [InlineData("{\"total_size_mib\": 1024}", null)]
    [InlineData("{\"total_size_mib\": 1024, \"block_size_mib\": 4, \"slot_size_mib\": 256}", null)]
    [InlineData("{\"total_size_mib\": 1024, \"block_size_mib\": 1}", "Memory hotplug config error: Block size must not be lower than 2 MiB")]
    [InlineData("{\"total_size_mib\": 1024, \"block_size_mib\": 6}", "Memory hotplug config error: Block size must be a power of 2")]
    [InlineData("{\"total_size_mib\": 1024, \"slot_size_mib\": 64}", "Memory hotplug config error: Slot size must not be lower than 128 MiB")]
    [InlineData("{\"total_size_mib\": 1040, \"block_size_mib\": 16, \"slot_size_mib\": 130}", "Memory hotplug config error: Slot size must be a multiple of block size (16 MiB)")]
    [InlineData("{\"total_size_mib\": 64}", "Memory hotplug config error: Total size must not be lower than slot size (128 MiB)")]
    [InlineData("{\"total_size_mib\": 1000}", "Memory hotplug config error: Total size must be a multiple of slot size (128 MiB)")]
    [InlineData("{\"total_size_mib\": 4294967296}", "Invalid JSON: invalid value: integer `4294967296`, expected u32 at line ")]
    [InlineData("{\"total_size_mib\": 1024, \"bogus\": 1}", "Invalid JSON: unknown field `bogus`, expected one of `total_size_mib`, `block_size_mib`, `slot_size_mib` at line ")]
    [InlineData("{}", "Invalid JSON: missing field `total_size_mib` at line ")]
    public void Memory_hotplug_section_is_parsed_and_validated(string section, string? error)
    {
        string cfg = FirecrackerFrameworkConfig().Replace("\"memory-hotplug\": null", $"\"memory-hotplug\": {section}");
        if (error == null)
        {
            var c = ConfigLoader.Parse(cfg);
            Assert.NotNull(c.MemoryHotplug);
            Assert.Contains("\"memory-hotplug\":{\"total_size_mib\":1024,", Flint.Vmm.Config.FullConfigJson.Write(c));
            return;
        }
        Assert.StartsWith(error, Assert.Throws<ConfigException>(() => ConfigLoader.Parse(cfg)).Message);
    }

    // resources.rs from_json + vmm_config/pmem.rs PmemBuilder::build: the "pmem" list is taken (the files are opened at
    // start), a repeated id replaces the earlier entry, and a root pmem next to a root drive is Firecracker's error.
    [Fact]
    public void Pmem_section_is_taken_and_its_root_rules_are_firecrackers()
    {
        string one = FirecrackerFrameworkConfig().Replace("\"pmem\": []",
            $"\"pmem\": [{{\"id\": \"pmem0\", \"path_on_host\": \"/not/opened/before/start\", \"read_only\": true}}, {{\"id\": \"pmem0\", \"path_on_host\": \"{_disk}\"}}]");
        var cfg = ConfigLoader.Parse(one);
        var p = Assert.Single(cfg.Pmem);
        Assert.Equal(_disk, p.PathOnHost);
        Assert.False(p.ReadOnly);
        string full = FullConfigJson.Write(cfg);
        Assert.Contains($"\"pmem\":[{{\"id\":\"pmem0\",\"path_on_host\":\"{_disk}\",\"root_device\":false,\"read_only\":false,\"rate_limiter\":null}}]", full);

        string root = FirecrackerFrameworkConfig().Replace("\"pmem\": []", $"\"pmem\": [{{\"id\": \"p\", \"path_on_host\": \"{_disk}\", \"root_device\": true}}]");
        Assert.Equal("Pmem device error: Attempt to add pmem as a root device while the root device defined as a block device",
            Assert.Throws<ConfigException>(() => ConfigLoader.Parse(root)).Message);
        string missing = FirecrackerFrameworkConfig().Replace("\"pmem\": []", "\"pmem\": [{\"id\": \"p\"}]");
        Assert.StartsWith("Invalid JSON: missing field `path_on_host` at line ", Assert.Throws<ConfigException>(() => ConfigLoader.Parse(missing)).Message);
    }

    // resources.rs test_from_json: "}" and "{}" are InvalidJson ("Invalid JSON: {serde}"); serde names the first
    // missing field in declaration order (balloon is optional, drives is not).
    [Theory]
    [InlineData("}", "Invalid JSON: expected value at line 1 column 1")]
    [InlineData("{}", "Invalid JSON: missing field `drives` at line 1 column 2")]
    [InlineData("{\"drives\": []}", "Invalid JSON: missing field `boot-source` at line 1 column 14")]
    [InlineData("{\"drives\": [],}", "Invalid JSON: trailing comma at line 1 column 15")]
    [InlineData("{\"drives\": null, \"boot-source\": {\"kernel_image_path\": \"k\"}}", "Invalid JSON: invalid type: null, expected a sequence at line 1 column 15")]
    public void Json_errors_are_serdes(string json, string expected)
    {
        Assert.Equal(expected, Assert.Throws<ConfigException>(() => ConfigLoader.Parse(json)).Message);
    }

    // resources.rs test_from_json: a kernel or drive that cannot be opened is BootSource / BlockDevice error.
    [Fact]
    public void File_errors_carry_the_section_prefix_and_the_os_error()
    {
        string k = FirecrackerFrameworkConfig().Replace(_kernel, "/nonexistent/vmlinux");
        Assert.Equal("Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)",
            Assert.Throws<ConfigException>(() => ConfigLoader.Parse(k)).Message);
        string d = FirecrackerFrameworkConfig().Replace(_disk, "/nonexistent/rootfs");
        Assert.Equal("Block device error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: No such file or directory (os error 2) /nonexistent/rootfs",
            Assert.Throws<ConfigException>(() => ConfigLoader.Parse(d)).Message);
        string m = FirecrackerFrameworkConfig().Replace("\"vcpu_count\": 2", "\"vcpu_count\": 0");
        Assert.Equal("VM config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.",
            Assert.Throws<ConfigException>(() => ConfigLoader.Parse(m)).Message);
    }

    // Through the real binary (published by scripts/setup.sh): main.rs maps config-file build errors
    // (RunWithoutApiError::BuildMicroVMFromJson(ParseFromJson)) to exit 1 and logs the chain of Displays.
    [Theory]
    [InlineData("\"pmem\": [{\"id\": \"p\"}]", "Configuration for VMM from one single json failed: Invalid JSON: missing field `path_on_host` at line 1 column ")]
    [InlineData("\"memory-hotplug\": {\"total_size_mib\": 64}", "Configuration for VMM from one single json failed: Memory hotplug config error: Total size must not be lower than slot size (128 MiB)")]
    [InlineData("\"machine-config\": {\"vcpu_count\": 1,}", "Configuration for VMM from one single json failed: Invalid JSON: trailing comma at line 1 column ")]
    public void The_cli_reports_config_file_errors_in_firecrackers_words_and_exits_1(string section, string expected)
    {
        string cfg = Path.Combine(_dir, "vm.json");
        File.WriteAllText(cfg, $"{{\"boot-source\": {{\"kernel_image_path\": \"{_kernel}\"}}, \"drives\": [], {section}}}");
        var r = Repo.RunFlint(TimeSpan.FromSeconds(30), "--no-api", "--config-file", cfg);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stdout);
        string line = r.Stdout.Split('\n').First(l => l.Contains("single json failed"));
        ParityErrorTests.AssertNoDotNetText(line[line.IndexOf("Configuration for VMM", StringComparison.Ordinal)..]);
    }

    private static int s_configured;

    /// <summary>A controller configured with every section. The tap and vsock socket are opened at PUT (as Firecracker),
    /// so each call gets its own: <paramref name="n"/> names them (tapPc{n}, vsock{n}.sock in the test's directory).</summary>
    private VmmController Configured(int n = 0)
    {
        if (n == 0) n = 100 + Interlocked.Increment(ref s_configured);
        var c = new VmmController(_ => throw new InvalidOperationException("not started")) { ConfigureLogger = _ => { }, ConfigureMetrics = _ => { } };
        void Ok(string method, string path, string body) => Assert.Equal(204, c.Handle(method, path, body).Status);
        Ok("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
        Ok("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{_kernel}\", \"boot_args\": \"\"}}");
        Ok("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{_disk}\", \"is_root_device\": true, \"is_read_only\": true, \"io_engine\": \"Sync\"}}");
        Ok("PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": true}");
        Ok("PUT", "/vsock", $"{{\"guest_cid\": 15, \"uds_path\": \"{Path.Combine(_dir, $"vsock{n}.sock")}\"}}");
        Ok("PUT", "/network-interfaces/1", $"{{\"iface_id\": \"1\", \"guest_mac\": \"06:00:00:00:00:01\", \"host_dev_name\": \"tapPc{n}\", "
            + "\"tx_rate_limiter\": {\"bandwidth\": {\"size\": 1000000, \"refill_time\": 100}}}");
        Ok("PUT", "/mmds/config", "{\"version\": \"V2\", \"ipv4_address\": \"169.254.169.250\", \"network_interfaces\": [\"1\"], \"imds_compat\": true}");
        Ok("PUT", "/logger", "{\"level\": \"Info\"}");
        return c;
    }

    // test_api.py test_get_full_config: the expected document, key for key (pmem and memory-hotplug as Firecracker
    // reports them unused: Flint has neither).
    [Fact]
    public void Get_vm_config_reports_every_key_with_firecrackers_defaults()
    {
        var r = Configured(1).Handle("GET", "/vm/config", null);
        Assert.Equal(200, r.Status);
        var expected = JsonNode.Parse($$"""
            {
              "machine-config": {"vcpu_count": 2, "mem_size_mib": 256, "smt": false, "track_dirty_pages": false, "huge_pages": "None"},
              "cpu-config": null,
              "boot-source": {"boot_args": "", "kernel_image_path": "{{_kernel}}", "initrd_path": null},
              "drives": [{"drive_id": "rootfs", "partuuid": null, "is_root_device": true, "cache_type": "Unsafe", "is_read_only": true,
                          "path_on_host": "{{_disk}}", "rate_limiter": null, "io_engine": "Sync", "socket": null}],
              "pmem": [],
              "balloon": {"amount_mib": 1, "deflate_on_oom": true, "stats_polling_interval_s": 0, "free_page_reporting": false, "free_page_hinting": false},
              "vsock": {"guest_cid": 15, "uds_path": "{{Path.Combine(_dir, "vsock1.sock")}}"},
              "memory-hotplug": null,
              "network-interfaces": [{"iface_id": "1", "host_dev_name": "tapPc1", "guest_mac": "06:00:00:00:00:01", "mtu": null, "rx_rate_limiter": null,
                                      "tx_rate_limiter": {"bandwidth": {"size": 1000000, "refill_time": 100, "one_time_burst": null}, "ops": null} }],
              "logger": null,
              "metrics": null,
              "mmds-config": {"version": "V2", "ipv4_address": "169.254.169.250", "network_interfaces": ["1"], "imds_compat": true},
              "entropy": null
            }
            """);
        Assert.True(JsonNode.DeepEquals(expected, JsonNode.Parse(r.Body!)), r.Body);
    }

    [Fact]
    public void Get_vm_config_of_an_unconfigured_vmm_has_every_section()
    {
        var doc = JsonDocument.Parse(new VmmController(_ => throw new InvalidOperationException()).Handle("GET", "/vm/config", null).Body!).RootElement;
        string[] keys = ["balloon", "drives", "boot-source", "cpu-config", "logger", "machine-config", "metrics", "mmds-config",
            "network-interfaces", "vsock", "entropy", "pmem", "memory-hotplug"];
        Assert.Equal(keys, doc.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal("", doc.GetProperty("boot-source").GetProperty("kernel_image_path").GetString());
        Assert.Equal(JsonValueKind.Null, doc.GetProperty("boot-source").GetProperty("boot_args").ValueKind);
    }

    // test_api.py test_config_start_with_api: GET /vm/config, saved as a file, configures the same VM with
    // --config-file. Here: the answer loads with ConfigLoader (the --config-file path) and reports itself unchanged.
    [Fact]
    public void Get_vm_config_round_trips_through_the_config_file_loader()
    {
        string body = Configured().Handle("GET", "/vm/config", null).Body!;
        string file = Path.Combine(_dir, "vm_config.json");
        File.WriteAllText(file, body);
        var loaded = ConfigLoader.LoadFile(file);
        var again = new VmmController(_ => throw new InvalidOperationException());
        again.AttachRunning(loaded, new NeverUsedVm());
        Assert.Equal(body, again.Handle("GET", "/vm/config", null).Body);
        Assert.Equal(body, FullConfigJson.Write(loaded));
    }

    // test_api.py test_config_start_with_api through the real binary: configure over the API, save GET /vm/config
    // as a file, start a second process with --config-file: it must accept the whole file and get to building the VM
    // (which stops at the placeholder kernel; the nested-KVM tier boots real guests from config files).
    [Fact]
    public void Get_vm_config_of_the_real_process_is_a_config_file_the_binary_loads()
    {
        string sock = Path.Combine(_dir, "api.sock");
        var psi = new System.Diagnostics.ProcessStartInfo(Repo.Flint) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--api-sock", sock, "--id", "parity1" }) psi.ArgumentList.Add(a);
        using var api = System.Diagnostics.Process.Start(psi)!;
        try
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (!File.Exists(sock) && sw.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(5);
            Assert.True(File.Exists(sock), "API socket did not appear");
            using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            s.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(sock));
            s.ReceiveTimeout = 10_000;
            Assert.Equal(204, Http(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}").Status);
            Assert.Equal(204, Http(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{_kernel}\", \"boot_args\": \"console=ttyS0\"}}").Status);
            Assert.Equal(204, Http(s, "PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{_disk}\", \"is_root_device\": true, \"is_read_only\": true}}").Status);
            Assert.Equal(204, Http(s, "PUT", "/entropy", "{}").Status);
            Assert.Equal(204, Http(s, "PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": true}").Status);
            var (status, body) = Http(s, "GET", "/vm/config", null);
            Assert.Equal(200, status);
            string file = Path.Combine(_dir, "from_api.json");
            File.WriteAllText(file, body);
            var r = Repo.RunFlint(TimeSpan.FromSeconds(30), "--no-api", "--config-file", file);
            // The whole file was accepted ("Configuration for VMM from one single json failed" is a config error); the
            // build then stops at the kernel, which is zeros here.
            Assert.DoesNotContain("single json failed", r.Stdout);
            Assert.Contains("Building VMM configured from cmdline json failed: kernel image", r.Stdout);
        }
        finally
        {
            api.Kill();
            api.WaitForExit(5000);
        }
    }

    private static (int Status, string Body) Http(System.Net.Sockets.Socket s, string method, string path, string? body)
    {
        string b = body ?? "";
        string req = $"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
            + (body != null ? $"Content-Type: application/json\r\nContent-Length: {System.Text.Encoding.UTF8.GetByteCount(b)}\r\n" : "") + "\r\n" + b;
        s.Send(System.Text.Encoding.UTF8.GetBytes(req));
        var buf = new byte[65536];
        int n = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            int got = s.Receive(buf, n, buf.Length - n, System.Net.Sockets.SocketFlags.None);
            Assert.True(got > 0, "the API closed the connection");
            n += got;
            string text = System.Text.Encoding.UTF8.GetString(buf, 0, n);
            int he = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (he < 0) continue;
            var m = System.Text.RegularExpressions.Regex.Match(text, "Content-Length: (\\d+)", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
            int len = m.Success ? int.Parse(m.Groups[1].Value) : 0;
            if (n < he + 4 + len) continue;
            return (int.Parse(text.Substring(9, 3)), text.Substring(he + 4, len));
        }
        throw new TimeoutException("no complete answer");
    }

    private sealed class NeverUsedVm : IRunningVm
    {
        public bool IsPaused => false;
        public void Pause() { }
        public void Resume() { }
        public void SendCtrlAltDel() { }
        public void PatchDrive(string driveId, string pathOnHost) { }
        public void PatchDriveRateLimiter(string driveId, JsonElement rateLimiter) { }
        public void PatchNetwork(string ifaceId, JsonElement? rx, JsonElement? tx) { }
        public string GetBalloonJson() => "{}";
        public string GetBalloonStatsJson() => "{}";
        public void PatchBalloon(uint amountMib) { }
        public void PatchBalloonStatsInterval(uint intervalS) { }
    }
}

using Flint.Vmm.Config;

namespace Flint.Vmm.Tests;

public class ConfigLoaderTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private readonly string _kernel, _disk;

    public ConfigLoaderTests()
    {
        _kernel = Path.Combine(_dir, "vmlinux");
        _disk = Path.Combine(_dir, "disk");
        File.WriteAllBytes(_kernel, new byte[64]);
        File.WriteAllBytes(_disk, new byte[4096]);
    }

    public void Dispose() => Directory.Delete(_dir, true);

    private string Cfg(string machine = "{\"vcpu_count\": 2, \"mem_size_mib\": 256}", string drives = "[]", string extra = "") =>
        $"{{\"boot-source\": {{\"kernel_image_path\": \"{_kernel}\", \"boot_args\": \"console=ttyS0\"}}, \"drives\": {drives}, \"machine-config\": {machine}{extra}}}";

    [Fact]
    public void Parses_firecracker_config_file()
    {
        var c = ConfigLoader.Parse(Cfg(drives: $"[{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{_disk}\", \"is_root_device\": true, \"is_read_only\": true}}]"));
        Assert.Equal(2, c.MachineConfig!.VcpuCount);
        Assert.Equal(256, c.MachineConfig.MemSizeMib);
        Assert.Equal("console=ttyS0", c.BootSource!.BootArgs);
        Assert.True(c.Drives[0].IsReadOnly);
    }

    /// <summary>io_engine Async is accepted where io_uring works (this host); an unknown engine is still refused.</summary>
    [Fact]
    public void Io_engine_async_is_accepted_and_unknown_engines_refused()
    {
        string D(string engine) => $"[{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{_disk}\", \"is_root_device\": true, \"io_engine\": \"{engine}\"}}]";
        Assert.Equal("Async", ConfigLoader.Parse(Cfg(drives: D("Async"))).Drives[0].IoEngine);
        Assert.Equal("Sync", ConfigLoader.Parse(Cfg(drives: D("Sync"))).Drives[0].IoEngine);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(drives: D("Uring"))));
        Assert.Contains("unknown variant `Uring`", e.Message); // serde's words, as Firecracker's config file
        Assert.Null(Flint.Vmm.Config.IoEngineSupport.Refusal("Async"));
        Assert.Null(Flint.Vmm.Config.IoEngineSupport.Refusal(null));
    }

    [Theory]
    [InlineData("{\"vcpu_count\": 0, \"mem_size_mib\": 128}", "vcpu")]
    [InlineData("{\"vcpu_count\": 33, \"mem_size_mib\": 128}", "vcpu")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 0}", "memory size")]
    [InlineData("{\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}", "even")]
    [InlineData("{\"mem_size_mib\": 128}", "vcpu_count")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"bogus\": 1}", "bogus")]
    public void Rejects_bad_machine_config(string machine, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(machine)));
        Assert.Contains(expected, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Rejects_two_root_drives()
    {
        string d = $"{{\"drive_id\": \"a\", \"path_on_host\": \"{_disk}\", \"is_root_device\": true}}";
        string d2 = d.Replace("\"a\"", "\"b\"");
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(drives: $"[{d}, {d2}]")));
        Assert.Contains("root block device already exists", e.Message);
    }

    [Fact]
    public void Rejects_missing_kernel_and_missing_drive_file()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg().Replace(_kernel, "/nonexistent/vmlinux")));
        Assert.Equal("Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)", e.Message); // as Firecracker: no path
        string d = "{\"drive_id\": \"a\", \"path_on_host\": \"/nonexistent/disk\", \"is_root_device\": true}";
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(drives: $"[{d}]")));
        Assert.Contains("/nonexistent/disk", e.Message);
    }

    [Theory]
    [InlineData(",\"network-interfaces\": [{\"iface_id\": \"eth0\"}]", "host_dev_name")]
    [InlineData(",\"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"zz\"}]", "guest_mac")]
    [InlineData(",\"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\"}, {\"iface_id\": \"b\", \"host_dev_name\": \"tap0\"}]", "Device or resource busy (os error 16). Invalid TUN/TAP Backend provided by tap0.")]
    [InlineData(",\"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\", \"rx_rate_limiter\": {\"bandwidth\": {\"size\": \"x\"}}}]", "Invalid JSON: invalid type: string \"x\", expected u64")]
    [InlineData(",\"mmds-config\": {\"network_interfaces\": [\"eth9\"]}", "does not correspond")]
    [InlineData(",\"vsock\": {\"guest_cid\": 2, \"uds_path\": \"/tmp/v\"}", "guest_cid")]
    [InlineData(",\"balloon\": {\"amount_mib\": 4096, \"deflate_on_oom\": false}", "too large")]
    [InlineData(",\"cpu-config\": {\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0\", \"flags\": 0, \"modifiers\": [{\"register\": \"ecx\", \"bitmap\": \"0b12\"}]}]}", "'2' is not 0, 1, x or _")]
    [InlineData(",\"cpu-config\": {\"msr_modifiers\": [{\"addr\": \"0xzz\", \"bitmap\": \"0b1\"}]}", "Invalid addr")]
    [InlineData(",\"cpu-config\": {\"kvm_capabilities\": [\"!x\"]}", "Invalid KVM capability")]
    [InlineData(",\"cpu-config\": {\"reg_modifiers\": [{\"addr\": \"0x1\", \"bitmap\": \"0b1\"}]}", "aarch64")]
    public void Refuses_bad_or_unsupported_device_sections(string extra, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(extra: extra)));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 129, \"huge_pages\": \"2M\"}", "", "VM config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"huge_pages\": \"2M\"}", ",\"balloon\": {\"amount_mib\": 8, \"deflate_on_oom\": false}", "balloon")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"huge_pages\": \"1G\"}", "", "Invalid JSON: unknown variant `1G`, expected one of `None`, `Transparent`, `2M`")]
    public void Huge_page_rules(string machine, string extra, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(machine, extra: extra)));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("2M", Flint.Memory.HugePages.HugeTlb2M)]
    [InlineData("Transparent", Flint.Memory.HugePages.Transparent)]
    [InlineData("None", Flint.Memory.HugePages.None)]
    public void Huge_pages_are_accepted_and_map_to_the_memory_backing(string value, Flint.Memory.HugePages backing)
    {
        var c = ConfigLoader.Parse(Cfg($"{{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"huge_pages\": \"{value}\"}}"));
        Assert.Equal(backing, ConfigLoader.HugePagesOf(c.MachineConfig!));
    }

    [Fact]
    public void Accepts_every_device_section()
    {
        var c = ConfigLoader.Parse(Cfg(extra: ",\"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:AC:10:00:02\", " +
            "\"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}], " +
            "\"mmds-config\": {\"version\": \"V2\", \"network_interfaces\": [\"eth0\"]}, " +
            "\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}, \"entropy\": {}, " +
            "\"balloon\": {\"amount_mib\": 16, \"deflate_on_oom\": true, \"stats_polling_interval_s\": 1}, " +
            "\"cpu-config\": {\"kvm_capabilities\": [\"171\", \"!172\"], \"cpuid_modifiers\": [{\"leaf\": \"0x7\", \"subleaf\": \"0x0\", \"flags\": 1, " +
            "\"modifiers\": [{\"register\": \"ebx\", \"bitmap\": \"0bxxxx_0xxx\"}]}], \"msr_modifiers\": [{\"addr\": \"0x10a\", \"bitmap\": \"0b0\"}]}"));
        var net = DeviceConfigs.Net(c.NetworkInterfaces![0]);
        Assert.Equal(new byte[] { 6, 0, 0xac, 0x10, 0, 2 }, net.GuestMac);
        Assert.Equal(1000ul, net.Rx.Bandwidth!.Size);
        Assert.Equal(Flint.Devices.Mmds.MmdsVersion.V2, DeviceConfigs.Mmds(c.MmdsConfig!.Value).Version);
        Assert.Equal(3ul, DeviceConfigs.Vsock(c.Vsock!.Value).GuestCid);
        Assert.True(DeviceConfigs.Balloon(c.Balloon!.Value).DeflateOnOom);
    }

    [Theory]
    [InlineData("{")]
    [InlineData("[]")]
    [InlineData("null")]
    [InlineData("{\"drives\": []}")]
    public void Rejects_malformed_documents(string json) => Assert.Throws<ConfigException>(() => ConfigLoader.Parse(json));

    [Theory]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"vcpu_count\": 2}", "duplicate field `vcpu_count` at line 1 column ")]
    [InlineData("{\"vcpu_count\": 1,\n \"mem_size_mib\": 128,\n  \"mem_size_mib\": 256}", "duplicate field `mem_size_mib` at line 3 column 16")]
    public void Refuses_duplicate_keys_as_serde_does(string machine, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(machine)));
        Assert.StartsWith("Invalid JSON: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Refuses_a_duplicate_section()
    {
        string twice = Cfg()[..^1] + ", \"machine-config\": {\"vcpu_count\": 4, \"mem_size_mib\": 512}}";
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(twice));
        Assert.Contains("duplicate field `machine-config`", e.Message);
        // Keys may repeat across objects: only one object's keys must be unique.
        string drive(string id) => $"{{\"drive_id\": \"{id}\", \"path_on_host\": \"{_disk}\", \"is_root_device\": false}}";
        Assert.Equal(2, ConfigLoader.Parse(Cfg(drives: $"[{drive("a")}, {drive("b")}]")).Drives.Count);
    }

    [Theory]
    [InlineData("Bogus", "unknown variant `Bogus`, expected one of `C3`, `T2`, `T2S`, `None`, `T2CL`, `T2A`")]
    [InlineData("t2", "unknown variant `t2`")]
    public void Refuses_unknown_or_unsupported_cpu_templates(string template, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg($"{{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"cpu_template\": \"{template}\"}}")));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Accepts_cpu_template_None_and_checks_the_logger_level()
    {
        Assert.Equal("None", ConfigLoader.Parse(Cfg("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"cpu_template\": \"None\"}")).MachineConfig!.CpuTemplate);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(extra: ",\"logger\": {\"level\": \"Loud\"}")));
        Assert.Contains("unknown variant `Loud`", e.Message);
        var c = ConfigLoader.Parse(Cfg(extra: ",\"logger\": {\"level\": \"debug\", \"log_path\": \"/tmp/x.log\"}, \"metrics\": {\"metrics_path\": \"/tmp/m\"}"));
        Assert.Equal("/tmp/x.log", c.Logger!.LogPath);
        Assert.Equal("/tmp/m", c.Metrics!.MetricsPath);
    }
}

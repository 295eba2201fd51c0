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
        Assert.Contains("/nonexistent/vmlinux", e.Message);
        string d = "{\"drive_id\": \"a\", \"path_on_host\": \"/nonexistent/disk\", \"is_root_device\": true}";
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(drives: $"[{d}]")));
        Assert.Contains("/nonexistent/disk", e.Message);
    }

    [Theory]
    [InlineData(",\"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}]", "network-interfaces")]
    [InlineData(",\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/tmp/v\"}", "vsock")]
    [InlineData(",\"balloon\": {\"amount_mib\": 1, \"deflate_on_oom\": false}", "balloon")]
    [InlineData(",\"unknown-section\": {}", "unknown-section")]
    public void Refuses_sections_this_build_cannot_honour(string extra, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Cfg(extra: extra)));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("{")]
    [InlineData("[]")]
    [InlineData("null")]
    [InlineData("{\"drives\": []}")]
    public void Rejects_malformed_documents(string json) => Assert.Throws<ConfigException>(() => ConfigLoader.Parse(json));
}

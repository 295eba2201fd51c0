using System.Text.Json;
using Flint.Vmm.Config;
using Flint.Vmm.Hotplug;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>A started VM that records hot-plug requests; <see cref="Pci"/> says whether it has --enable-pci.</summary>
public sealed class HotplugRecordingVm(bool pci) : IRunningVm
{
    public bool Pci { get; } = pci;
    public List<string> Calls { get; } = [];
    /// <summary>When set, the next hotplug step fails with this (as the VM's own refusal).</summary>
    public Exception? Refuse { get; set; }
    public bool PciEnabled => Pci;

    private void Step(string call)
    {
        if (Refuse is { } e) { Refuse = null; throw e; }
        Calls.Add(call);
    }

    public void HotplugDrive(DriveConfig drive) => Step("plug block " + drive.DriveId);
    public void HotplugNet(NetConfig net, Flint.Devices.Virtio.Net.Tap tap)
    {
        try { Step("plug net " + net.IfaceId); }
        finally { tap.Dispose(); } // the VM owns the tap: this fake closes it at once
    }
    public void HotplugPmem(PmemConfig pmem) => Step("plug pmem " + pmem.Id);
    public void HotUnplug(HotplugDeviceKind kind, string id) => Step($"unplug {kind} {id}");

    public bool IsPaused => false;
    public void Pause() { }
    public void Resume() { }
    public void SendCtrlAltDel() { }
    public void PatchDrive(string driveId, string pathOnHost) { }
    public void PatchDriveRateLimiter(string driveId, JsonElement rateLimiter) { }
    public void PatchNetwork(string ifaceId, JsonElement? rx, JsonElement? tx) { }
    public string GetBalloonJson() => throw new InvalidOperationException("No balloon device found.");
    public string GetBalloonStatsJson() => throw new InvalidOperationException("No balloon device found.");
    public void PatchBalloon(uint amountMib) { }
    public void PatchBalloonStatsInterval(uint intervalS) { }
}

/// <summary>
/// PCI device hotplug through the API (Firecracker 1.16: rpc_interface.rs, device_manager/mod.rs hotplug_device and
/// hot_unplug_device): PUT /drives, /network-interfaces, /pmem after the start and DELETE on them, before the start,
/// after it without and with --enable-pci, unknown ids, root devices, ids in use, and GET /vm/config following.
/// </summary>
public sealed class PciHotplugApiTests
{
    private static string? Fault(ApiResponse r) => r.Body == null ? null : JsonDocument.Parse(r.Body).RootElement.GetProperty("fault_message").GetString();
    private static string Esc(string s) => s.Replace("\\", "\\\\");

    private static string Drive(string id, string path, bool root = false) =>
        $"{{\"drive_id\": \"{id}\", \"path_on_host\": \"{Esc(path)}\", \"is_root_device\": {(root ? "true" : "false")}, \"is_read_only\": false}}";

    private static string Pmem(string id, string path, bool root = false) =>
        $"{{\"id\": \"{id}\", \"path_on_host\": \"{Esc(path)}\", \"root_device\": {(root ? "true" : "false")}}}";

    /// <summary>A VM started with a root drive, a data drive and a pmem device, on the given fake.</summary>
    private static (Env Env, HotplugRecordingVm Vm) Started(bool pci)
    {
        var env = new Env();
        var vm = new HotplugRecordingVm(pci);
        env.StartOverride = _ => vm;
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Esc(env.Kernel)}\"}}").Status);
        Assert.Equal(204, env.Call("PUT", "/drives/root", Drive("root", env.Rootfs, root: true)).Status);
        Assert.Equal(204, env.Call("PUT", "/drives/data", Drive("data", env.Disk2)).Status);
        Assert.Equal(204, env.Call("PUT", "/pmem/pm0", Pmem("pm0", env.Disk2)).Status);
        Assert.Equal(204, env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        return (env, vm);
    }

    [Theory]
    [InlineData("/drives/data")]
    [InlineData("/network-interfaces/eth0")]
    [InlineData("/pmem/pm0")]
    public void Delete_before_the_start_is_not_supported(string path)
    {
        using var env = new Env();
        var r = env.Call("DELETE", path);
        Assert.Equal(400, r.Status);
        Assert.Equal(VmmController.NotSupportedBeforeStart, Fault(r));
    }

    [Fact]
    public void Delete_routes_check_the_id_first()
    {
        using var env = new Env();
        Assert.Equal("The ID cannot be empty.", Fault(env.Call("DELETE", "/drives")));
        Assert.Equal("API Resource IDs can only contain alphanumeric characters and underscores.", Fault(env.Call("DELETE", "/pmem/a-b")));
        var p = ApiRequestParser.Parse("DELETE", "/network-interfaces/eth0", null);
        Assert.Equal(new HotUnplugDevice(HotplugDeviceKind.Net, "eth0"), p.Action);
        Assert.Equal(new HotUnplugDevice(HotplugDeviceKind.Block, "d1"), ApiRequestParser.Parse("DELETE", "/drives/d1", null).Action);
        Assert.Equal(new HotUnplugDevice(HotplugDeviceKind.Pmem, "p1"), ApiRequestParser.Parse("DELETE", "/pmem/p1", null).Action);
    }

    [Fact]
    public void Without_enable_pci_every_hotplug_request_answers_PCI_is_not_enabled()
    {
        var (env, vm) = Started(pci: false);
        using (env)
        {
            // Firecracker checks the transport before anything else: even an id in use or a root device gets this.
            Assert.Equal("PCI is not enabled", Fault(env.Call("PUT", "/drives/new", Drive("new", env.Disk2))));
            Assert.Equal("PCI is not enabled", Fault(env.Call("PUT", "/drives/root", Drive("root", env.Rootfs, root: true))));
            Assert.Equal("PCI is not enabled", Fault(env.Call("PUT", "/pmem/p9", Pmem("p9", env.Disk2))));
            Assert.Equal("PCI is not enabled", Fault(env.Call("PUT", "/network-interfaces/eth9",
                "{\"iface_id\": \"eth9\", \"host_dev_name\": \"nosuchtap0\"}")));
            Assert.Equal("PCI is not enabled", Fault(env.Call("DELETE", "/drives/data")));
            Assert.Equal("PCI is not enabled", Fault(env.Call("DELETE", "/drives/nosuch")));
            Assert.Equal("PCI is not enabled", Fault(env.Call("DELETE", "/network-interfaces/eth0")));
            Assert.Equal("PCI is not enabled", Fault(env.Call("DELETE", "/pmem/pm0")));
            Assert.Empty(vm.Calls);
            Assert.DoesNotContain("\"new\"", env.ConfigJson);
        }
    }

    [Fact]
    public void Unknown_ids_and_root_devices_are_refused_in_Firecrackers_words()
    {
        var (env, vm) = Started(pci: true);
        using (env)
        {
            Assert.Equal("Device not found", Fault(env.Call("DELETE", "/drives/nosuch")));
            Assert.Equal("Device not found", Fault(env.Call("DELETE", "/pmem/nosuch")));
            Assert.Equal("Device not found", Fault(env.Call("DELETE", "/network-interfaces/nosuch")));
            // A drive's id is no pmem's: ids are per device type, as Firecracker's VirtioDeviceId.
            Assert.Equal("Device not found", Fault(env.Call("DELETE", "/pmem/data")));
            Assert.Equal("Cannot unplug root device", Fault(env.Call("DELETE", "/drives/root")));
            Assert.Equal("Device ID in use", Fault(env.Call("PUT", "/drives/data", Drive("data", env.Disk2))));
            Assert.Equal("Device ID in use", Fault(env.Call("PUT", "/pmem/pm0", Pmem("pm0", env.Disk2))));
            Assert.Equal("Drive config error: A root block device already exists!", Fault(env.Call("PUT", "/drives/r2", Drive("r2", env.Disk2, root: true))));
            Assert.Equal("Pmem config error: Attempt to add pmem as a root device while the root device defined as a block device",
                Fault(env.Call("PUT", "/pmem/p2", Pmem("p2", env.Disk2, root: true))));
            Assert.Equal($"Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: No such file or directory (os error 2) {env.Dir}/nope",
                Fault(env.Call("PUT", "/drives/d9", Drive("d9", Path.Combine(env.Dir, "nope")))));
            Assert.Empty(vm.Calls);
        }
    }

    [Fact]
    public void A_plugged_device_appears_in_vm_config_and_leaves_it_when_unplugged()
    {
        var (env, vm) = Started(pci: true);
        using (env)
        {
            Assert.Equal(204, env.Call("PUT", "/drives/hot1", Drive("hot1", env.Disk2)).Status);
            Assert.Equal(204, env.Call("PUT", "/pmem/hp1", Pmem("hp1", env.Disk2)).Status);
            var cfg = JsonDocument.Parse(env.ConfigJson).RootElement;
            Assert.Contains("hot1", cfg.GetProperty("drives").EnumerateArray().Select(d => d.GetProperty("drive_id").GetString()));
            Assert.Contains("hp1", cfg.GetProperty("pmem").EnumerateArray().Select(d => d.GetProperty("id").GetString()));

            Assert.Equal(204, env.Call("DELETE", "/drives/hot1").Status);
            Assert.Equal(204, env.Call("DELETE", "/drives/data").Status); // a boot-time device can go too
            Assert.Equal(204, env.Call("DELETE", "/pmem/hp1").Status);
            cfg = JsonDocument.Parse(env.ConfigJson).RootElement;
            Assert.Equal(["root"], cfg.GetProperty("drives").EnumerateArray().Select(d => d.GetProperty("drive_id").GetString()));
            Assert.Equal(["pm0"], cfg.GetProperty("pmem").EnumerateArray().Select(d => d.GetProperty("id").GetString()));
            Assert.Equal("Device not found", Fault(env.Call("DELETE", "/drives/hot1"))); // gone: a second DELETE finds nothing

            // The same id can be plugged again once it is gone.
            Assert.Equal(204, env.Call("PUT", "/drives/hot1", Drive("hot1", env.Disk2)).Status);
            Assert.Equal(["plug block hot1", "plug pmem hp1", "unplug Block hot1", "unplug Block data", "unplug Pmem hp1", "plug block hot1"], vm.Calls);
        }
    }

    [Fact]
    public void A_refusal_by_the_VM_changes_nothing_and_reaches_the_client_as_it_is()
    {
        var (env, vm) = Started(pci: true);
        using (env)
        {
            string before = env.ConfigJson;
            vm.Refuse = new HotplugException("PCI manager error: PCI root error: Could not find an available device slot on the PCI bus.");
            var r = env.Call("PUT", "/drives/hot2", Drive("hot2", env.Disk2));
            Assert.Equal(400, r.Status);
            Assert.Equal("PCI manager error: PCI root error: Could not find an available device slot on the PCI bus.", Fault(r));
            vm.Refuse = new HotplugException("Pmem config error: Unable to create the virtio-pmem device: Failed to allocate memory region");
            Assert.Equal("Pmem config error: Unable to create the virtio-pmem device: Failed to allocate memory region",
                Fault(env.Call("PUT", "/pmem/hp2", Pmem("hp2", env.Disk2))));
            vm.Refuse = new HotplugException("Device not found");
            Assert.Equal("Device not found", Fault(env.Call("DELETE", "/drives/data")));
            Assert.Equal(before, env.ConfigJson);
        }
    }

    [Fact]
    public void A_vhost_user_drive_is_hot_plugged_and_its_creation_errors_read_as_a_boot_time_puts()
    {
        var (env, vm) = Started(pci: true);
        using (env)
        {
            string vu = "{\"drive_id\": \"vu\", \"socket\": \"/run/vu.sock\", \"is_root_device\": false}";
            string before = env.ConfigJson;
            // The VM connects to the backend; its failure is the drive's creation error, under the drive prefix.
            vm.Refuse = new ConfigException("Unable to create the virtio block device: Vhost user backend error: Vhost-user error: "
                + "Failed to connect to UDS Unix stream: No such file or directory (os error 2)");
            Assert.Equal("Drive config error: Unable to create the virtio block device: Vhost user backend error: Vhost-user error: "
                + "Failed to connect to UDS Unix stream: No such file or directory (os error 2)", Fault(env.Call("PUT", "/drives/vu", vu)));
            Assert.Equal(before, env.ConfigJson);

            Assert.Equal(204, env.Call("PUT", "/drives/vu", vu).Status);
            var drive = JsonDocument.Parse(env.ConfigJson).RootElement.GetProperty("drives").EnumerateArray()
                .Single(d => d.GetProperty("drive_id").GetString() == "vu");
            Assert.Equal("/run/vu.sock", drive.GetProperty("socket").GetString());
            Assert.Equal("Device ID in use", Fault(env.Call("PUT", "/drives/vu", vu)));
            Assert.Equal(204, env.Call("DELETE", "/drives/vu").Status);
            Assert.Equal(["plug block vu", "unplug Block vu"], vm.Calls);
        }
    }

    [Fact]
    public void A_net_hotplug_opens_its_tap_as_a_boot_time_put_does()
    {
        var (env, vm) = Started(pci: true);
        using (env)
        {
            // A name that cannot be a tap: refused with NetBuilder's text before the VM is asked.
            var r = env.Call("PUT", "/network-interfaces/eth5", "{\"iface_id\": \"eth5\", \"host_dev_name\": \"this_name_is_too_long_for_ifnamsiz\"}");
            Assert.Equal("Network config error: Could not create the network device: Open tap device failed: Invalid interface name", Fault(r));
            Assert.Empty(vm.Calls);
            Assert.DoesNotContain("eth5", env.ConfigJson);
        }
    }
}

using System.Text.Json;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>PUT/PATCH /pmem/{id} and GET /vm/config's "pmem" in Firecracker's words (request/pmem.rs, vmm_config/pmem.rs).</summary>
public class PmemApiTests
{
    private static string Esc(string p) => p.Replace("\\", "\\\\");

    private static string Pmem(string id, string path, bool root = false, bool ro = false, string extra = "") =>
        $"{{\"id\": \"{id}\", \"path_on_host\": \"{Esc(path)}\", \"root_device\": {(root ? "true" : "false")}, \"read_only\": {(ro ? "true" : "false")}{extra}}}";

    private static void Fault(ApiResponse r, string message)
    {
        Assert.Equal(400, r.Status);
        Assert.Equal(message, JsonDocument.Parse(r.Body!).RootElement.GetProperty("fault_message").GetString());
    }

    [Fact]
    public void Put_records_the_device_and_vm_config_reports_it_in_order()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/pmem/pmem1", Pmem("pmem1", env.Disk2)).Status);
        Assert.Equal(204, env.Call("PUT", "/pmem/pmem0", Pmem("pmem0", env.Rootfs, root: true, ro: true,
            ", \"rate_limiter\": {\"ops\": {\"size\": 10, \"refill_time\": 1000}}")).Status);
        Assert.Equal(204, env.Call("PUT", "/pmem/pmem1", Pmem("pmem1", env.Rootfs)).Status); // same id: replaced in place
        var pmem = JsonDocument.Parse(env.ConfigJson).RootElement.GetProperty("pmem");
        Assert.Equal(2, pmem.GetArrayLength());
        Assert.Equal(
            $"{{\"id\":\"pmem1\",\"path_on_host\":\"{Esc(env.Rootfs)}\",\"root_device\":false,\"read_only\":false,\"rate_limiter\":null}}",
            pmem[0].GetRawText());
        Assert.Equal(
            $"{{\"id\":\"pmem0\",\"path_on_host\":\"{Esc(env.Rootfs)}\",\"root_device\":true,\"read_only\":true,"
            + "\"rate_limiter\":{\"bandwidth\":null,\"ops\":{\"size\":10,\"one_time_burst\":null,\"refill_time\":1000}}}",
            pmem[1].GetRawText());
    }

    [Fact]
    public void A_missing_file_is_refused_at_start_not_at_put()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/pmem/p", Pmem("p", "/nonexistent/pmem.img")).Status);
    }

    [Fact]
    public void Request_errors_are_firecrackers()
    {
        using var env = new Env();
        Fault(env.Call("PUT", "/pmem/a", Pmem("b", env.Rootfs)), "The id from the path does not match the id from the body!");
        Fault(env.Call("PUT", "/pmem/a-b", Pmem("a-b", env.Rootfs)), "API Resource IDs can only contain alphanumeric characters and underscores.");
        var r = env.Call("PUT", "/pmem/a", "{\"id\": \"a\", \"path_on_host\": \"x\", \"bogus\": 1}");
        Assert.Equal(400, r.Status);
        Assert.Contains("unknown field `bogus`, expected one of `id`, `path_on_host`, `root_device`, `read_only`, `rate_limiter`", r.Body);
        r = env.Call("PUT", "/pmem/a", "{\"id\": \"a\"}");
        Assert.Contains("missing field `path_on_host`", r.Body);
        Fault(env.Call("PATCH", "/pmem/a", "{\"id\": \"b\"}"), "The id from the path does not match the id from the body!");
        Assert.Equal(0, JsonDocument.Parse(env.ConfigJson).RootElement.GetProperty("pmem").GetArrayLength());
    }

    [Fact]
    public void Root_device_rules_are_firecrackers()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/pmem/r0", Pmem("r0", env.Rootfs, root: true)).Status);
        Assert.Equal(204, env.Call("PUT", "/pmem/r0", Pmem("r0", env.Rootfs, root: true)).Status); // the root itself again
        string before = env.ConfigJson;
        Fault(env.Call("PUT", "/pmem/r1", Pmem("r1", env.Disk2, root: true)), "Pmem config error: A root pmem device already exist");
        Fault(env.Call("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{Esc(env.Rootfs)}\", \"is_root_device\": true}}"),
            "Drive config error: Attempt to add block as a root device while the root device defined as a pmem device");
        Assert.Equal(before, env.ConfigJson);

        using var env2 = new Env();
        Assert.Equal(204, env2.Call("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{Esc(env2.Rootfs)}\", \"is_root_device\": true}}").Status);
        Fault(env2.Call("PUT", "/pmem/r0", Pmem("r0", env2.Rootfs, root: true)),
            "Pmem config error: Attempt to add pmem as a root device while the root device defined as a block device");
        Assert.Equal(204, env2.Call("PUT", "/pmem/d0", Pmem("d0", env2.Rootfs)).Status);
    }

    [Fact]
    public void Patch_is_post_boot_and_put_after_boot_is_a_hotplug()
    {
        using var env = new Env();
        string patch = "{\"id\": \"p\", \"rate_limiter\": {\"ops\": {\"size\": 1, \"refill_time\": 100}}}";
        Fault(env.Call("PATCH", "/pmem/p", patch), VmmController.NotSupportedBeforeStart);
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Esc(env.Kernel)}\"}}").Status);
        Assert.Equal(204, env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        // After the start a PUT is a hotplug (Firecracker 1.16), which needs --enable-pci: PciHotplugApiTests.
        Fault(env.Call("PUT", "/pmem/p", Pmem("p", env.Rootfs)), "PCI is not enabled");
        // Firecracker's update_pmem_device looks the device up only when there is a rate limiter to apply.
        Assert.Equal(204, env.Call("PATCH", "/pmem/p", "{\"id\": \"p\"}").Status);
        Fault(env.Call("PATCH", "/pmem/p", patch),
            "Pmem config error: Unable to patch the pmem device: Failed perform action on device: Device not found Please verify the request arguments.");
    }
}

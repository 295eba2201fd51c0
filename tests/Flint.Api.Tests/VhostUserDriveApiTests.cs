using System.Text.Json;

namespace Flint.Api.Tests;

/// <summary>
/// PUT/PATCH /drives for vhost-user drives (a socket instead of a file): Firecracker's config rules
/// (VhostUserBlockConfig::try_from), its error texts, how GET /vm/config reports such a drive, and the config refresh
/// PATCH. The backend itself is reached when the VM is built (Flint.Devices.Tests and the KVM test cover that).
/// </summary>
public class VhostUserDriveApiTests
{
    private const string Invalid = "{\"fault_message\":\"Drive config error: Unable to create the virtio block device: Invalid block config.\"}";

    private static string Esc(string p) => p.Replace("\\", "\\\\");

    /// <summary>A file standing in for the backend's socket (PUT only checks that it exists).</summary>
    private static string Socket(Env e)
    {
        string p = Path.Combine(e.Dir, "vu.sock");
        File.WriteAllBytes(p, []);
        return p;
    }

    [Theory]
    [InlineData(", \"path_on_host\": \"PATH\"")]
    [InlineData(", \"is_read_only\": false")]
    [InlineData(", \"io_engine\": \"Sync\"")]
    [InlineData(", \"rate_limiter\": {\"ops\": {\"size\": 10, \"refill_time\": 100}}")]
    public void A_socket_with_a_file_drive_field_is_an_invalid_block_config(string extra)
    {
        using var env = new Env();
        string body = $"{{\"drive_id\": \"vu\", \"socket\": \"{Esc(Socket(env))}\", \"is_root_device\": false{extra.Replace("PATH", Esc(env.Rootfs))}}}";
        var r = env.Call("PUT", "/drives/vu", body);
        Assert.Equal(400, r.Status);
        Assert.Equal(Invalid, r.Body);
        Assert.Empty(env.Controller.Configuration.Drives);
    }

    [Fact]
    public void Neither_a_path_nor_a_socket_is_an_invalid_block_config()
    {
        using var env = new Env();
        var r = env.Call("PUT", "/drives/d", "{\"drive_id\": \"d\", \"is_root_device\": false}");
        Assert.Equal(400, r.Status);
        Assert.Equal(Invalid, r.Body);
    }

    [Fact]
    public void A_missing_socket_is_Firecrackers_connect_error()
    {
        using var env = new Env();
        var r = env.Call("PUT", "/drives/vu", $"{{\"drive_id\": \"vu\", \"socket\": \"{Esc(Path.Combine(env.Dir, "none.sock"))}\", \"is_root_device\": false}}");
        Assert.Equal(400, r.Status);
        Assert.Equal("{\"fault_message\":\"Drive config error: Unable to create the virtio block device: Vhost user backend error: " +
            "Vhost-user error: Failed to connect to UDS Unix stream: No such file or directory (os error 2)\"}", r.Body);
    }

    [Fact]
    public void A_vhost_user_drive_is_stored_and_reported_as_Firecracker_serialises_it()
    {
        using var env = new Env();
        string sock = Socket(env);
        Assert.Equal(204, env.Call("PUT", "/drives/vu", $"{{\"drive_id\": \"vu\", \"socket\": \"{Esc(sock)}\", \"is_root_device\": true, \"cache_type\": \"Writeback\"}}").Status);
        var d = JsonDocument.Parse(env.Call("GET", "/vm/config").Body!).RootElement.GetProperty("drives")[0];
        Assert.Equal("vu", d.GetProperty("drive_id").GetString());
        Assert.Equal(sock, d.GetProperty("socket").GetString());
        Assert.Equal(JsonValueKind.Null, d.GetProperty("path_on_host").ValueKind);
        Assert.Equal(JsonValueKind.Null, d.GetProperty("is_read_only").ValueKind);
        Assert.Equal(JsonValueKind.Null, d.GetProperty("io_engine").ValueKind);
        Assert.Equal(JsonValueKind.Null, d.GetProperty("rate_limiter").ValueKind);
        Assert.Equal("Writeback", d.GetProperty("cache_type").GetString());
        Assert.True(d.GetProperty("is_root_device").GetBoolean());
    }

    [Fact]
    public void Patch_with_only_the_id_refreshes_a_vhost_user_drive_and_refuses_its_file_fields()
    {
        using var env = new Env();
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Esc(env.Kernel)}\"}}").Status);
        Assert.Equal(204, env.Call("PUT", "/drives/vu", $"{{\"drive_id\": \"vu\", \"socket\": \"{Esc(Socket(env))}\", \"is_root_device\": false}}").Status);
        Assert.Equal(204, env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        Assert.Equal(204, env.Call("PATCH", "/drives/vu", "{\"drive_id\": \"vu\"}").Status);
        Assert.Equal(["vu"], env.Vm!.VhostUserRefreshes);
        var r = env.Call("PATCH", "/drives/vu", $"{{\"drive_id\": \"vu\", \"path_on_host\": \"{Esc(env.Rootfs)}\"}}");
        Assert.Equal(400, r.Status);
        Assert.Equal("{\"fault_message\":\"Drive config error: Unable to patch the block device: Block: Running method expected different backend. " +
            "Please verify the request arguments.\"}", r.Body);
        Assert.Empty(env.Vm.Patches);
    }
}

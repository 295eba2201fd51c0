using System.Buffers.Binary;
using System.Text.Json;
using Flint.Snapshot;
using Flint.Vmm.Config;
using Flint.Vmm.Rpc;
using Flint.Vmm.Snapshot;

namespace Flint.Api.Tests;

/// <summary>
/// PUT /snapshot/create and /snapshot/load through the controller, without KVM: Firecracker's state rules and fault
/// messages, and every bad state file kind through the real loader (refused before anything is built, not fatal).
/// </summary>
public sealed class SnapshotControllerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "flint-snapctl-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly FakeVm _vm = new();
    private SnapshotLoadParams? _loaded;
    private SnapshotCreateParams? _created;
    private bool _fatal;

    public SnapshotControllerTests() => Directory.CreateDirectory(_dir);
    public void Dispose() => Directory.Delete(_dir, true);

    private static VmConfig LoadedConfig() => new()
    {
        BootSource = new BootSourceConfig { KernelImagePath = "/k" },
        MachineConfig = new MachineConfig { VcpuCount = 2, MemSizeMib = 256 },
    };

    private VmmController Controller(Func<SnapshotLoadParams, (VmConfig, IRunningVm)>? load = null) =>
        new(_ => _vm, "snap", "1.2.3")
        {
            ConfigureLogger = _ => { },
            CreateSnapshotHandler = p => _created = p,
            LoadSnapshotHandler = load ?? (p => { _loaded = p; _vm.Pause(); return (LoadedConfig(), _vm); }),
            OnFatalLoadError = () => _fatal = true,
        };

    private string LoadBody(string snap = "/s", string mem = "/m", string extra = "") =>
        $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": \"{mem}\"}}{extra}}}";

    private string Kernel()
    {
        var k = Path.Combine(_dir, "vmlinux");
        File.WriteAllBytes(k, new byte[64]);
        return k;
    }

    [Fact]
    public void Load_before_anything_but_the_logger_restores_a_paused_vm_and_its_configuration()
    {
        var c = Controller();
        Assert.Equal(204, c.Handle("PUT", "/logger", "{\"level\": \"Info\"}").Status);
        var r = c.Handle("PUT", "/snapshot/load", LoadBody(extra: ", \"track_dirty_pages\": true, \"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap9\"}]"));
        Assert.Equal(204, r.Status);
        Assert.Equal("File", _loaded!.MemBackendType);
        Assert.Equal("/m", _loaded.MemBackendPath);
        Assert.True(_loaded.TrackDirtyPages);
        Assert.False(_loaded.ResumeVm);
        Assert.Equal([("eth0", "tap9")], _loaded.NetworkOverrides);
        Assert.Equal("Paused", c.State);
        using var cfg = JsonDocument.Parse(c.Handle("GET", "/vm/config", null).Body!);
        Assert.Equal(256, cfg.RootElement.GetProperty("machine-config").GetProperty("mem_size_mib").GetInt32());
        // GET /vm/config reports no logger (Firecracker never does); the process's logger is kept (the controller's record).
        Assert.Equal(JsonValueKind.Null, cfg.RootElement.GetProperty("logger").ValueKind);
        Assert.Equal("Info", c.Configuration.Logger!.Level);
        // Loaded: a second load, or any pre-boot request, is now refused as after a start.
        Assert.Equal(VmmController.NotSupportedAfterStart, Fault(c.Handle("PUT", "/snapshot/load", LoadBody())));
    }

    [Fact]
    public void Deprecated_mem_file_path_and_resume_vm()
    {
        var c = Controller();
        Assert.Equal(204, c.Handle("PUT", "/snapshot/load", "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m2\", \"resume_vm\": true}").Status);
        Assert.Equal("/m2", _loaded!.MemBackendPath);
        Assert.Equal("Running", c.State);
    }

    [Theory]
    [InlineData("/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}")]
    [InlineData("/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}")]
    [InlineData("/entropy", "{}")]
    public void Load_after_a_boot_specific_resource_is_refused(string path, string body)
    {
        var c = Controller();
        c.Handle("PUT", path, body);
        Assert.Equal(VmmController.LoadNotAllowed, Fault(c.Handle("PUT", "/snapshot/load", LoadBody())));
        Assert.Null(_loaded);
    }

    [Fact]
    public void A_failed_boot_source_request_still_closes_the_snapshot_path_as_in_firecracker()
    {
        var c = Controller();
        Assert.Equal(400, c.Handle("PUT", "/boot-source", "{\"kernel_image_path\": \"/nonexistent/kernel\"}").Status);
        Assert.Equal(VmmController.LoadNotAllowed, Fault(c.Handle("PUT", "/snapshot/load", LoadBody())));
    }

    /// <summary>Full and Diff follow the same state rules: Firecracker main takes a Diff with or without
    /// track_dirty_pages (mincore then), so a Diff has no rule beyond Full's.</summary>
    [Theory]
    [InlineData("Full", false)]
    [InlineData("Diff", true)]
    public void Create_is_refused_before_start_and_while_running_and_reaches_the_creator_when_paused(string type, bool diff)
    {
        var c = Controller();
        var body = $"{{\"snapshot_type\": \"{type}\", \"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}}";
        Assert.Equal(VmmController.NotSupportedBeforeStart, Fault(c.Handle("PUT", "/snapshot/create", body)));
        Assert.Equal(204, c.Handle("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Kernel()}\"}}").Status);
        Assert.Equal(204, c.Handle("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        Assert.Equal("Create snapshot error: Cannot save the microVM state: Vcpu is in unexpected state.", Fault(c.Handle("PUT", "/snapshot/create", body)));
        Assert.Null(_created);
        Assert.Equal(204, c.Handle("PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
        Assert.Equal(204, c.Handle("PUT", "/snapshot/create", body).Status);
        Assert.Equal(new SnapshotCreateParams("/s", "/m", diff), _created);
        Assert.Equal(400, c.Handle("PUT", "/snapshot/create", body.Replace(type, type + "2")).Status);
    }

    [Fact]
    public void A_creator_failure_is_answered_with_its_fault_message()
    {
        var c = new VmmController(_ => _vm, "snap", "1.2.3")
        {
            ConfigureLogger = _ => { },
            CreateSnapshotHandler = _ => throw new SnapshotException("Create snapshot error: Cannot perform set_length on the memory backing file: No space left on device (os error 28)"),
        };
        Assert.Equal(204, c.Handle("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Kernel()}\"}}").Status);
        Assert.Equal(204, c.Handle("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        Assert.Equal(204, c.Handle("PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
        Assert.Equal("Create snapshot error: Cannot perform set_length on the memory backing file: No space left on device (os error 28)",
            Fault(c.Handle("PUT", "/snapshot/create", "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}")));
    }

    [Fact]
    public void A_load_failing_half_way_answers_then_asks_the_process_to_end()
    {
        var c = Controller(_ => throw new SnapshotException("Load snapshot error: Failed to restore from snapshot: Failed to build microVM from snapshot: boom", fatal: true));
        Assert.EndsWith("boom", Fault(c.Handle("PUT", "/snapshot/load", LoadBody())));
        Assert.True(_fatal);
    }

    // ---- bad state files through the real loader: each gets its error and nothing is built ----

    private string Write(byte[] bytes)
    {
        var p = Path.Combine(_dir, "snap-" + Guid.NewGuid().ToString("N")[..8]);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private static byte[] ValidState(string configJson = "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}, \"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}]}")
    {
        var f = new SnapshotFile();
        var w = new StateWriter();
        w.String(configJson);
        f.Add(SnapshotSections.Config, w);
        f.Add(SnapshotSections.Memory, SnapshotCreator.MemorySection(new VmConfig { MachineConfig = new MachineConfig { VcpuCount = 1, MemSizeMib = 64 } }));
        f.Add(SnapshotSections.Vcpu(0), new StateWriter());
        return f.Serialize();
    }

    private string LoadWithRealLoader(string snap, string extra = "", string? mem = null)
    {
        bool built = false;
        var c = Controller(p =>
        {
            var (config, _) = SnapshotLoader.Load(p, (_, _, _) => { built = true; throw new InvalidOperationException("no KVM here"); }, _ => { }, null);
            return (config, _vm);
        });
        var msg = Fault(c.Handle("PUT", "/snapshot/load", LoadBody(snap, mem ?? Path.Combine(_dir, "nomem"), extra)));
        Assert.False(_fatal, msg);
        Assert.False(built, msg);
        return msg;
    }

    private const string FromFile = "Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state from file: ";

    [Fact]
    public void Missing_state_file() =>
        Assert.StartsWith(FromFile + "Failed to open snapshot file: ", LoadWithRealLoader(Path.Combine(_dir, "absent")));

    [Fact]
    public void Truncated_state_file()
    {
        var b = ValidState();
        Assert.StartsWith(FromFile + "Failed to load snapshot state from file: ", LoadWithRealLoader(Write(b[..20])));
        Assert.StartsWith(FromFile + "Failed to load snapshot state from file: CRC64", LoadWithRealLoader(Write(b[..^3])));
    }

    [Fact]
    public void Corrupt_state_file()
    {
        var b = ValidState();
        b[40] ^= 0x10;
        Assert.Equal(FromFile + "Failed to load snapshot state from file: CRC64 validation failed", LoadWithRealLoader(Write(b)));
    }

    [Fact]
    public void Wrong_version_and_wrong_architecture()
    {
        var b = ValidState();
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), 9);
        Recrc(b);
        Assert.Equal(FromFile + "Failed to load snapshot state from file: Invalid data version: 9.0.0", LoadWithRealLoader(Write(b)));
        b = ValidState();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), 0xAAAA);
        Recrc(b);
        Assert.StartsWith(FromFile + "Failed to load snapshot state from file: Magic value does not match arch", LoadWithRealLoader(Write(b)));
    }

    [Fact]
    public void Not_a_snapshot_at_all() =>
        Assert.StartsWith(FromFile + "Failed to load snapshot state from file: Magic value does not match arch",
            LoadWithRealLoader(Write(new byte[4096])));

    [Fact]
    public void Memory_file_missing_or_of_the_wrong_size()
    {
        var snap = Write(ValidState());
        Assert.Contains("Failed to load guest memory: Error creating guest memory from file", LoadWithRealLoader(snap));
        var mem = Path.Combine(_dir, "small.mem");
        File.WriteAllBytes(mem, new byte[4096]);
        Assert.Contains("holds 4096 bytes, the snapshot's guest memory is 67108864 bytes", LoadWithRealLoader(snap, mem: mem));
    }

    [Fact]
    public void Unknown_network_override_and_uffd_backend()
    {
        var snap = Write(ValidState());
        Assert.Equal(FromFile + "Unknown Network Device.",
            LoadWithRealLoader(snap, ", \"network_overrides\": [{\"iface_id\": \"eth9\", \"host_dev_name\": \"tap1\"}]"));
        Assert.Equal(FromFile + "Unknown Vsock Device.", LoadWithRealLoader(snap, ", \"vsock_override\": {\"uds_path\": \"/tmp/x\"}"));
    }

    [Fact]
    public void Uffd_backend_without_a_handler_answers_firecrackers_connect_error_and_builds_nothing()
    {
        var snap = Write(ValidState());
        bool built = false;
        var c = Controller(p =>
        {
            var (config, _) = SnapshotLoader.Load(p, (_, _, _) => { built = true; throw new InvalidOperationException("no KVM here"); }, _ => { }, null);
            return (config, _vm);
        });
        var body = $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"Uffd\", \"backend_path\": \"{Path.Combine(_dir, "none.sock")}\"}}}}";
        Assert.Equal("Load snapshot error: Failed to restore from snapshot: Failed to load guest memory: Error creating guest memory from uffd: " +
            "Failed to connect to UDS Unix stream: No such file or directory (os error 2)", Fault(c.Handle("PUT", "/snapshot/load", body)));
        Assert.False(_fatal);
        Assert.False(built);
    }

    [Fact]
    public void A_config_section_that_does_not_parse()
    {
        Assert.Contains("Section config", LoadWithRealLoader(Write(ValidState("{\"boot-source\": 5}"))));
        Assert.Contains("invalid machine configuration",
            LoadWithRealLoader(Write(ValidState("{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": {\"vcpu_count\": 0, \"mem_size_mib\": 64}}"))));
    }

    private static void Recrc(byte[] b) =>
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(b.Length - 8), Crc64.Compute(b.AsSpan(0, b.Length - 8)));

    private static string Fault(ApiResponse r)
    {
        Assert.Equal(400, r.Status);
        using var d = JsonDocument.Parse(r.Body!);
        return d.RootElement.GetProperty("fault_message").GetString()!;
    }
}

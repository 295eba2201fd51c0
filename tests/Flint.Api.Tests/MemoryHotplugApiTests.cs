using System.Text.Json;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Mem;
using Flint.Memory;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>A started VM whose only device is a real virtio-mem (its area at 512 GiB, slots flipped without KVM).</summary>
public sealed class HotplugFakeVm : IRunningVm, IDisposable
{
    private sealed class HostOnlySlots(HotplugArea area) : IHotplugSlots
    {
        public void Plug(int slot) => area.SetSlotAccessible(slot, true);
        public void Unplug(int slot) => area.SetSlotAccessible(slot, false);
    }

    public HotplugFakeVm(uint totalMib, uint blockMib, uint slotMib)
    {
        Memory = GuestMemory.Create([(0UL, 1UL << 20)]);
        var area = Memory.AddHotplugArea(512UL << 30, (ulong)totalMib << 20, (ulong)slotMib << 20);
        Device = new VirtioMem(area, (ulong)blockMib << 20, new HostOnlySlots(area));
    }

    private sealed class NoLine : Flint.Devices.IInterrupt
    {
        public void Trigger() { }
    }

    public GuestMemory Memory { get; }
    public VirtioMem Device { get; }

    /// <summary>The driver comes up: features accepted, the queue laid out in low memory.</summary>
    public void ActivateDriver()
    {
        var q = new VirtQueue(VirtioMemConstants.QueueSize) { Size = 16, DescTable = 0x1000, AvailRing = 0x2000, UsedRing = 0x3000, Ready = true };
        Assert.True(((IVirtioDevice)Device).Activate(Memory, [q], new VirtioInterrupt(new NoLine()), Device.AvailableFeatures));
    }

    public bool IsPaused { get; private set; }
    public void Pause() => IsPaused = true;
    public void Resume() => IsPaused = false;
    public void SendCtrlAltDel() { }
    public void PatchDrive(string driveId, string pathOnHost) { }
    public void PatchDriveRateLimiter(string driveId, JsonElement rateLimiter) { }
    public void PatchNetwork(string ifaceId, JsonElement? rx, JsonElement? tx) { }
    public string GetBalloonJson() => throw new InvalidOperationException("No balloon device found.");
    public string GetBalloonStatsJson() => throw new InvalidOperationException("No balloon device found.");
    public void PatchBalloon(uint amountMib) { }
    public void PatchBalloonStatsInterval(uint intervalS) { }
    public void PatchMemoryHotplug(uint requestedSizeMib) => Device.UpdateRequestedSize(requestedSizeMib);
    public string GetMemoryHotplugJson() => Device.Status().ToJson();
    public void Dispose() => Memory.Dispose();
}

/// <summary>
/// PUT/PATCH/GET /hotplug/memory through the controller (request/hotplug/memory.rs, rpc_interface.rs, the device's
/// VirtioMemError texts), and snapshot create refused while the device exists.
/// </summary>
public sealed class MemoryHotplugApiTests
{
    private static string? Fault(ApiResponse r) => r.Body == null ? null : JsonDocument.Parse(r.Body).RootElement.GetProperty("fault_message").GetString();

    private static void Boot(Env env)
    {
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{env.Kernel}\"}}").Status);
        Assert.Equal(204, env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
    }

    [Fact]
    public void Put_is_validated_in_firecrackers_words_and_shows_in_vm_config()
    {
        using var env = new Env();
        (string Body, string Fault)[] bad =
        [
            ("{\"total_size_mib\": 1024, \"block_size_mib\": 1}", "Memory hotplug config error: Block size must not be lower than 2 MiB"),
            ("{\"total_size_mib\": 1024, \"block_size_mib\": 3}", "Memory hotplug config error: Block size must be a power of 2"),
            ("{\"total_size_mib\": 1024, \"slot_size_mib\": 2}", "Memory hotplug config error: Slot size must not be lower than 128 MiB"),
            ("{\"total_size_mib\": 1040, \"block_size_mib\": 4, \"slot_size_mib\": 130}", "Memory hotplug config error: Slot size must be a multiple of block size (4 MiB)"),
            ("{\"total_size_mib\": 64}", "Memory hotplug config error: Total size must not be lower than slot size (128 MiB)"),
            ("{\"total_size_mib\": 1000}", "Memory hotplug config error: Total size must be a multiple of slot size (128 MiB)"),
        ];
        foreach (var (body, fault) in bad)
        {
            var r = env.Call("PUT", "/hotplug/memory", body);
            Assert.Equal(400, r.Status);
            Assert.Equal(fault, Fault(r));
        }
        // Sizes are u32 (Firecracker #6076): 2^32 MiB is refused by the parser, not wrapped to 0 bytes.
        foreach (var field in new[] { "total_size_mib", "block_size_mib", "slot_size_mib" })
        {
            string body = field == "total_size_mib" ? "{\"total_size_mib\": 4294967296}" : $"{{\"total_size_mib\": 1024, \"{field}\": 4294967296}}";
            var r = env.Call("PUT", "/hotplug/memory", body);
            Assert.Equal(400, r.Status);
            Assert.Contains("invalid value: integer `4294967296`, expected u32", Fault(r));
        }
        Assert.Contains("missing field `total_size_mib`", Fault(env.Call("PUT", "/hotplug/memory", "{}")));
        Assert.Contains("unknown field `requested_size_mib`", Fault(env.Call("PUT", "/hotplug/memory", "{\"total_size_mib\": 1024, \"requested_size_mib\": 2}")));
        Assert.Contains("invalid type: null, expected u32", Fault(env.Call("PUT", "/hotplug/memory", "{\"total_size_mib\": 1024, \"block_size_mib\": null}")));
        Assert.Contains("\"memory-hotplug\":null", env.ConfigJson);

        Assert.Equal(204, env.Call("PUT", "/hotplug/memory", "{\"total_size_mib\": 1024}").Status);
        Assert.Contains("\"memory-hotplug\":{\"total_size_mib\":1024,\"block_size_mib\":2,\"slot_size_mib\":128}", env.ConfigJson);
        Assert.Equal(204, env.Call("PUT", "/hotplug/memory", "{\"total_size_mib\": 2048, \"block_size_mib\": 4, \"slot_size_mib\": 256}").Status);
        Assert.Contains("\"memory-hotplug\":{\"total_size_mib\":2048,\"block_size_mib\":4,\"slot_size_mib\":256}", env.ConfigJson);
    }

    [Fact]
    public void Patch_and_get_are_runtime_only_and_put_is_preboot_only()
    {
        using var env = new Env();
        Assert.Equal(VmmController.NotSupportedBeforeStart, Fault(env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 2}")));
        Assert.Equal(VmmController.NotSupportedBeforeStart, Fault(env.Call("GET", "/hotplug/memory")));
        Boot(env);
        Assert.Equal(VmmController.NotSupportedAfterStart, Fault(env.Call("PUT", "/hotplug/memory", "{\"total_size_mib\": 1024}")));
        // No device: VmmError::FindDeviceError under each action's area.
        Assert.Equal("Memory hotplug update error: Failed perform action on device: Device not found",
            Fault(env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 2}")));
        Assert.Equal("Internal VMM error: Failed perform action on device: Device not found", Fault(env.Call("GET", "/hotplug/memory")));
        Assert.Contains("missing field `requested_size_mib`", Fault(env.Call("PATCH", "/hotplug/memory", "{}")));
        Assert.Contains("expected u32", Fault(env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 4294967296}")));
        Assert.Contains("expected u32", Fault(env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": -2}")));
    }

    [Fact]
    public void Patch_reaches_the_device_and_get_reports_its_status()
    {
        using var env = new Env();
        using var vm = new HotplugFakeVm(1024, 2, 128);
        env.StartOverride = _ => vm;
        Assert.Equal(204, env.Call("PUT", "/hotplug/memory", "{\"total_size_mib\": 1024}").Status);
        Boot(env);

        var r = env.Call("GET", "/hotplug/memory");
        Assert.Equal(200, r.Status);
        Assert.Equal("""{"block_size_mib":2,"total_size_mib":1024,"slot_size_mib":128,"plugged_size_mib":0,"requested_size_mib":0}""", r.Body);
        // Before the guest's driver is up: VirtioMemError::DeviceNotActive behind VmmError::VirtioMem.
        Assert.Equal("Memory hotplug update error: Failed to create memory hotplug device: Device is not active",
            Fault(env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 512}")));

        vm.ActivateDriver();
        Assert.Equal(204, env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 512}").Status);
        Assert.Equal("""{"block_size_mib":2,"total_size_mib":1024,"slot_size_mib":128,"plugged_size_mib":0,"requested_size_mib":512}""",
            env.Call("GET", "/hotplug/memory").Body);
        Assert.Equal("Memory hotplug update error: Failed to create memory hotplug device: Size 3145728 is invalid: it must be a multiple of block size and less than the total size",
            Fault(env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 3}")));
        Assert.Equal("Memory hotplug update error: Failed to create memory hotplug device: Size 1075838976 is invalid: it must be a multiple of block size and less than the total size",
            Fault(env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 1026}")));
        // The largest u32 must not wrap (Firecracker #6076): (2^32 - 1) MiB in bytes.
        Assert.Equal($"Memory hotplug update error: Failed to create memory hotplug device: Size {(ulong)uint.MaxValue << 20} is invalid: it must be a multiple of block size and less than the total size",
            Fault(env.Call("PATCH", "/hotplug/memory", $"{{\"requested_size_mib\": {uint.MaxValue}}}")));
        Assert.Equal(204, env.Call("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 0}").Status);
    }

    [Fact]
    public void Snapshot_create_goes_ahead_with_the_device_as_in_firecracker()
    {
        using var env = new Env();
        using var vm = new HotplugFakeVm(1024, 2, 128);
        bool created = false;
        var c = new VmmController(_ => vm, "hp", "1.2.3") { ConfigureLogger = _ => { }, CreateSnapshotHandler = _ => created = true };
        Assert.Equal(204, c.Handle("PUT", "/hotplug/memory", "{\"total_size_mib\": 1024}").Status);
        Assert.Equal(204, c.Handle("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{env.Kernel}\"}}").Status);
        Assert.Equal(204, c.Handle("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        Assert.Equal(204, c.Handle("PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
        // Firecracker saves virtio-mem's plugged blocks and its hotplug area (docs/memory-hotplug.md "Snapshots"); so does Flint.
        var r = c.Handle("PUT", "/snapshot/create", "{\"snapshot_path\": \"/tmp/s\", \"mem_file_path\": \"/tmp/m\"}");
        Assert.Equal(204, r.Status);
        Assert.True(created);
    }
}

using System.Diagnostics;
using System.Text.Json;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// virtio-mem through the real flint process. Without KVM: PUT/PATCH/GET /hotplug/memory answer as Firecracker's
/// (request/hotplug/memory.rs, vmm_config/memory_hotplug.rs), GET /vm/config shows the section. On KVM: the test
/// guest (tests/testguest/mem.c) reads the config, is asked for memory by a PATCH, plugs a block, writes and reads it
/// at 512 GiB, unplugs it (and finds it zeroed on replug), then UNPLUG_ALL; the host's GET follows it.
/// </summary>
public sealed class MemoryHotplugKvmTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(180);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private static string Fault(string body) => JsonDocument.Parse(body).RootElement.GetProperty("fault_message").GetString()!;

    [Fact]
    public void Api_answers_as_firecracker_before_and_without_a_vm()
    {
        using var flint = new FlintApiProcess(_dir);
        using var s = flint.Connect();
        var r = ApiHttp.Request(s, "PUT", "/hotplug/memory", "{\"total_size_mib\": 1024, \"block_size_mib\": 3}");
        Assert.Equal((400, "Memory hotplug config error: Block size must be a power of 2"), (r.Status, Fault(r.Body)));
        r = ApiHttp.Request(s, "PUT", "/hotplug/memory", "{\"total_size_mib\": 4294967296}");
        Assert.Equal(400, r.Status);
        Assert.Contains("expected u32", Fault(r.Body));
        r = ApiHttp.Request(s, "PATCH", "/hotplug/memory", "{\"requested_size_mib\": 2}");
        Assert.Equal((400, "The requested operation is not supported before starting the microVM."), (r.Status, Fault(r.Body)));
        r = ApiHttp.Request(s, "GET", "/hotplug/memory");
        Assert.Equal((400, "The requested operation is not supported before starting the microVM."), (r.Status, Fault(r.Body)));
        Assert.Equal(204, ApiHttp.Request(s, "PUT", "/hotplug/memory", "{\"total_size_mib\": 1024}").Status);
        r = ApiHttp.Request(s, "GET", "/vm/config");
        var hp = JsonDocument.Parse(r.Body).RootElement.GetProperty("memory-hotplug");
        Assert.Equal((1024, 2, 128), (hp.GetProperty("total_size_mib").GetInt32(), hp.GetProperty("block_size_mib").GetInt32(),
            hp.GetProperty("slot_size_mib").GetInt32()));
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Test_guest_plugs_writes_and_unplugs_hotplugged_memory()
    {
        KvmRequirement.Check();
        var cmd = TestGuestImage.Build().Tests("mem").Option("tg.mem.wait=", 60000).BootTimer(false).ToString();
        using var flint = new FlintApiProcess(_dir);
        var p = flint.Process;
        using (var s = flint.Connect())
        {
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/boot-source",
                $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"{cmd}\"}}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/hotplug/memory", "{\"total_size_mib\": 256}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);

            var sw = Stopwatch.StartNew();
            while (!flint.Output.Contains("mem ready") && !p.HasExited && sw.Elapsed < T) Thread.Sleep(20);
            Assert.Contains("mem ready", flint.Output);
            var status = ApiHttp.Request(s, "GET", "/hotplug/memory");
            Assert.Equal((200, """{"block_size_mib":2,"total_size_mib":256,"slot_size_mib":128,"plugged_size_mib":0,"requested_size_mib":0}"""),
                (status.Status, status.Body));
            Assert.Equal(204, ApiHttp.Request(s, "PATCH", "/hotplug/memory", "{\"requested_size_mib\": 2}").Status);
            Assert.True(p.WaitForExit((int)T.TotalMilliseconds), "the guest did not finish");
        }
        string all = flint.Output;
        output.WriteLine(all);
        foreach (var pass in new[] { "mem-config", "mem-config-change", "mem-refuse", "mem-plug", "mem-rw", "mem-unplug", "mem-replug-zero", "mem-unplug-all" })
            Assert.Matches($"(?m)^PASS {pass}\r?$", all);
        Assert.Contains("fail=0", all);
    }
}

using System.Diagnostics;
using System.Net.Sockets;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// Snapshots of a VM with virtio-mem on real KVM (Firecracker's docs/memory-hotplug.md "Snapshots"): the test guest
/// (tests/testguest/mem.c, tg.mem.snap=1) plugs a block in each of two slots and writes a pattern into them; the VM is
/// paused, a Full snapshot taken (the memory file: 128 MiB of boot RAM then the 512 MiB area, unplugged slots as
/// holes), the process killed, the snapshot loaded in a new process (File backend, or Uffd through the real
/// flint-uffd-handler), GET /hotplug/memory answers as before, and after the resume a PATCH reaches the guest: the
/// pattern reads back, the unplugged block is still unplugged, and a further plug works.
/// </summary>
public sealed class MemoryHotplugSnapshotKvmTests(ITestOutputHelper output) : FlintProcessTest(output, "vmem-")
{
    private const long BootMib = 128, AreaMib = 512;

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Plugged_memory_survives_a_full_snapshot_loaded_from_the_file() => Run(uffd: false);

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Plugged_memory_survives_a_full_snapshot_served_by_the_uffd_handler() => Run(uffd: true);

    private void Run(bool uffd)
    {
        KvmRequirement.Check();
        string snap = Path.Combine(Dir, "vm.snap"), mem = Path.Combine(Dir, "vm.mem"), uffdSock = Path.Combine(Dir, "uffd.sock");
        string statusBefore;
        var out1 = StartFlint("a");
        var (p1, sock1) = (out1.Process, out1.Socket);
        using (var s = Connect(sock1))
        {
            Ok(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=mem tg.mem.snap=1 tg.mem.wait=240000\"}}");
            Ok(s, "PUT", "/machine-config", $"{{\"vcpu_count\": 1, \"mem_size_mib\": {BootMib}}}");
            Ok(s, "PUT", "/hotplug/memory", $"{{\"total_size_mib\": {AreaMib}}}");
            Ok(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            Assert.True(SpinWait.SpinUntil(() => out1.Console.Contains("mem ready"), 120_000), "no 'mem ready':\n" + out1.Console);
            // 130 MiB: the usable region grows to two slots, so the guest can plug in slot 0 and slot 1.
            Ok(s, "PATCH", "/hotplug/memory", "{\"requested_size_mib\": 130}");
            Assert.True(SpinWait.SpinUntil(() => out1.Console.Contains("mem snap ready"), 120_000), "no 'mem snap ready':\n" + out1.Console);
            statusBefore = Get(s, "/hotplug/memory");
            Assert.Equal("""{"block_size_mib":2,"total_size_mib":512,"slot_size_mib":128,"plugged_size_mib":4,"requested_size_mib":130}""", statusBefore);
            Ok(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            var sw = Stopwatch.StartNew();
            Ok(s, "PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": \"{snap}\", \"mem_file_path\": \"{mem}\"}}");
            long allocated = Flint.Sys.SparseFile.AllocatedBytes(mem);
            Output.WriteLine($"Full snapshot ({BootMib} MiB + {AreaMib} MiB area, 4 MiB plugged): {sw.ElapsedMilliseconds} ms, " +
                $"memory file {new FileInfo(mem).Length} bytes, {allocated} bytes allocated");
            Assert.Equal((BootMib + AreaMib) << 20, new FileInfo(mem).Length);
            // The area's unplugged slots (and the unplugged blocks of plugged ones) are holes.
            Assert.True(allocated < (BootMib + 8) << 20, $"{allocated} bytes allocated");
        }
        Thread.Sleep(300);
        p1.Kill(true);
        p1.WaitForExit();
        string before = out1.Console;

        using var handler = uffd ? new UffdHandlerRun(uffdSock, mem) : null;
        var out2 = StartFlint("b");
        var (p2, sock2) = (out2.Process, out2.Socket);
        using (var s = Connect(sock2))
        {
            string backend = uffd ? $"{{\"backend_type\": \"Uffd\", \"backend_path\": \"{uffdSock}\"}}" : $"{{\"backend_type\": \"File\", \"backend_path\": \"{mem}\"}}";
            Ok(s, "PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {backend}}}");
            Assert.Equal(statusBefore, Get(s, "/hotplug/memory"));
            Ok(s, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
            // The guest waits for requested_size to change: the restored device's config-change interrupt.
            Ok(s, "PATCH", "/hotplug/memory", "{\"requested_size_mib\": 132}");
            Assert.True(p2.WaitForExit(300_000), "the restored guest did not finish:\n" + out2.Console + (handler != null ? "\nhandler:\n" + handler.Output : ""));
        }
        string after = out2.Console;
        Output.WriteLine("--- before the snapshot ---\n" + before + "\n--- after the restore ---\n" + after);
        Assert.Contains("PASS mem-snap-plug", before);
        foreach (var pass in new[] { "mem-snap-pattern", "mem-snap-state", "mem-snap-replug" })
            Assert.Matches($"(?m)^PASS {pass}\r?$", after);
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", after);
        if (handler != null)
        {
            var (code, hout) = handler.WaitExit();
            Output.WriteLine("--- handler ---\n" + hout);
            Assert.Equal(0, code);
            Assert.InRange(UffdHandlerRun.Served(hout), 1, ((BootMib + AreaMib) << 20) / 4096);
        }
    }

    private static string Get(Socket s, string path)
    {
        var (st, b) = ApiHttp.Request(s, "GET", path);
        Assert.True(st == 200, $"GET {path}: {st} {b}");
        return b;
    }
}

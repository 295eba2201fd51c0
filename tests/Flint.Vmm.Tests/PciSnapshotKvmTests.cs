using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// Snapshot and restore of an --enable-pci microVM on real KVM with the real binary: the test guest sets up virtio-blk
/// over virtio-pci with MSI-X (tests/testguest/pci.c), programs a fresh queue vector and prints the tg.seq sequence
/// (tg.pci.seq); it is paused mid-sequence, a Full snapshot is taken, the process is killed, and a new flint process
/// started WITHOUT --enable-pci loads it (Firecracker: the snapshot decides the transport) and resumes it. The guest
/// goes on from the next line, then reads and writes its disk on the queue it set up before, and the completion's MSI
/// reaches its local APIC through the route the restore installed again.
/// </summary>
public sealed class PciSnapshotKvmTests(ITestOutputHelper output) : FlintProcessTest(output, "pcisnap-")
{
    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Pci_microvm_snapshot_restores_its_virtio_pci_block_device_and_msix_route_in_a_new_process()
    {
        KvmRequirement.Check();
        var disk = Path.Combine(Dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 64);
        string snap = Path.Combine(Dir, "vm.snap"), mem = Path.Combine(Dir, "vm.mem");
        const int Lines = SnapshotKvmTests.Lines, Spin = SnapshotKvmTests.Spin;

        var a = StartFlint("a", "--enable-pci");
        using (var s = a.Connect())
        {
            Ok(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=serial,pci tg.pci.seq={Lines} tg.seq.spin={Spin}\"}}");
            Ok(s, "PUT", "/drives/data", $"{{\"drive_id\": \"data\", \"path_on_host\": \"{disk}\", \"is_root_device\": false, \"cache_type\": \"Writeback\"}}");
            Ok(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
            Ok(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            Assert.True(a.WaitFor("seq 3 ", TimeSpan.FromSeconds(120)), "no 'seq 3' line:\n" + a.Console);
            Ok(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            var sw = Stopwatch.StartNew();
            Ok(s, "PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": \"{snap}\", \"mem_file_path\": \"{mem}\"}}");
            Output.WriteLine($"Full snapshot of a PCI microVM: {sw.ElapsedMilliseconds} ms, state file {new FileInfo(snap).Length} bytes");
        }
        Thread.Sleep(300);
        a.Process.Kill(true);
        a.Process.WaitForExit();
        string before = a.Console;
        Assert.Contains("PASS pci\n", before);
        Assert.DoesNotContain("FLINT-TESTGUEST done", before);

        var b = StartFlint("b");
        using (var s = b.Connect())
        {
            var sw = Stopwatch.StartNew();
            Ok(s, "PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": \"{mem}\"}}}}");
            Output.WriteLine($"Load (File backend): {sw.ElapsedMilliseconds} ms");
            Assert.Contains("\"Paused\"", ApiHttp.Request(s, "GET", "/").Body);
            using (var cfg = JsonDocument.Parse(ApiHttp.Request(s, "GET", "/vm/config").Body))
                Assert.Equal("data", cfg.RootElement.GetProperty("drives")[0].GetProperty("drive_id").GetString());
            Ok(s, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
        }
        Assert.True(b.Process.WaitForExit(300_000), "the restored guest did not finish:\n" + b.Console);
        string after = b.Console;
        Output.WriteLine("--- before the snapshot ---\n" + before + "\n--- after the restore ---\n" + after);
        if (File.Exists(b.LogPath)) Output.WriteLine("--- restored process log ---\n" + File.ReadAllText(b.LogPath));

        Assert.DoesNotContain("FLINT-TESTGUEST start", after); // it did not boot again
        var seen = Regex.Matches(before + after, @"seq (\d+) sum=(\d+)\n").Select(m => (ulong.Parse(m.Groups[1].Value), ulong.Parse(m.Groups[2].Value))).ToList();
        Assert.Equal(SnapshotKvmTests.ExpectedSequence(), seen);
        Assert.Matches(@"seq \d+ sum=\d+\n", after);
        Assert.Contains("PASS pci-seq-blk", after);
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", after);
        Assert.Equal(0, b.Process.ExitCode);
        var sector6 = new byte[512];
        using (var f = File.OpenRead(disk)) { f.Seek(6 * 512, SeekOrigin.Begin); f.ReadExactly(sector6); }
        Assert.True(TestGuestImage.SectorMatchesWritePattern(sector6, 6), "the restored guest's write over virtio-pci reached the backing file");
    }

    /// <summary>
    /// Issue 17: a snapshot after hotplug and unplug. The guest boots with drives a (slot 1) and b (slot 2); the host
    /// plugs "hot" (slot 3), the guest finds and uses it (tg.tests=pcihp, tg.pcihp.snap=1), the host unplugs a, pauses,
    /// snapshots and kills the process. A new flint (without --enable-pci) loads it: b and hot must come back at slots
    /// 2 and 3 with their BARs (a fresh build from the configuration [b, hot] would put them at 1 and 2) and slot 1
    /// must stay empty. The guest, polling sector 7 of hot over its queue all along, sees the marker the host writes
    /// after the restore, checks the bus and its BAR, and writes and reads sector 6 over the same function.
    /// </summary>
    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Snapshot_after_a_hotplug_and_an_unplug_brings_the_bus_back_as_it_was_and_the_plugged_drive_keeps_working()
    {
        KvmRequirement.Check();
        string Disk(string name)
        {
            string path = Path.Combine(Dir, name + ".img");
            TestGuestImage.WriteDisk(path, 64);
            return path;
        }
        string a = Disk("a"), b = Disk("b"), hot = Disk("hot");
        string snap = Path.Combine(Dir, "hp.snap"), mem = Path.Combine(Dir, "hp.mem");
        string cmd = TestGuestImage.Build().Tests("pcihp").Option("tg.pcihp.wait=", 600000).Option("tg.pcihp.snap=", 1)
            .Timeout(120000).BootTimer(false).ToString();
        static string Drive(string id, string path) => $"{{\"drive_id\": \"{id}\", \"path_on_host\": \"{path}\", \"is_root_device\": false}}";

        var first = StartFlint("hp-a", "--enable-pci");
        using (var s = first.Connect())
        {
            Ok(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"{cmd}\"}}");
            Ok(s, "PUT", "/drives/a", Drive("a", a));
            Ok(s, "PUT", "/drives/b", Drive("b", b));
            Ok(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
            Ok(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            Assert.True(first.WaitFor("pcihp waiting", TimeSpan.FromSeconds(120)), "the guest did not reach pcihp:\n" + first.Console);
            Ok(s, "PUT", "/drives/hot", Drive("hot", hot));
            Assert.True(first.WaitFor("pcihp snap-ready", TimeSpan.FromSeconds(120)), "the guest did not use the plugged drive:\n" + first.Console);
            Ok(s, "DELETE", "/drives/a", "");
            Ok(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            Ok(s, "PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": \"{snap}\", \"mem_file_path\": \"{mem}\"}}");
        }
        first.Process.Kill(true);
        first.Process.WaitForExit();
        string before = first.Console;
        Assert.Contains("pcihp dev=00:0x3.0", before);
        Assert.Contains(TestGuestImage.Pass("pcihp-use"), before);
        Assert.DoesNotContain("pcihp marker", before);

        var second = StartFlint("hp-b");
        using (var s = second.Connect())
        {
            Ok(s, "PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": \"{mem}\"}}}}");
            using (var cfg = JsonDocument.Parse(ApiHttp.Request(s, "GET", "/vm/config").Body))
                Assert.Equal(["b", "hot"], cfg.RootElement.GetProperty("drives").EnumerateArray().Select(d => d.GetProperty("drive_id").GetString()));
            Ok(s, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
            using (var f = new FileStream(hot, FileMode.Open, FileAccess.Write))
            {
                f.Seek(7 * 512, SeekOrigin.Begin);
                f.Write("FLINT-GO"u8);
            }
        }
        Assert.True(second.Process.WaitForExit(300_000), "the restored guest did not finish:\n" + second.Console);
        string after = second.Console;
        Output.WriteLine("--- before the snapshot ---\n" + before + "\n--- after the restore ---\n" + after);
        if (File.Exists(second.LogPath)) Output.WriteLine("--- restored process log ---\n" + File.ReadAllText(second.LogPath));
        Assert.Contains("pcihp marker", after);
        Assert.Contains("pcihp snap slots=0xc\n", after); // b in 2, hot in 3, a's slot 1 empty
        Assert.Contains(TestGuestImage.Pass("pcihp-snap-bus"), after);
        Assert.Contains(TestGuestImage.Pass("pcihp-snap-io"), after);
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", after);
        var sector6 = new byte[512];
        using (var f = File.OpenRead(hot)) { f.Seek(6 * 512, SeekOrigin.Begin); f.ReadExactly(sector6); }
        Assert.True(TestGuestImage.SectorMatchesWritePattern(sector6, 6), "the restored guest's write to the hot-plugged drive reached its file");
    }
}

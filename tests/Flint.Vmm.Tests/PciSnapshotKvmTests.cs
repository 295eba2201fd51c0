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
}

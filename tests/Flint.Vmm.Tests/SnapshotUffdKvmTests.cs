using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// The Uffd backend on real KVM: the test guest of <see cref="SnapshotKvmTests"/> (tg.seq paused mid-sequence, Full
/// snapshot, process killed) is loaded in a new flint process whose guest RAM is served by the real flint-uffd-handler
/// from the memory file; after the resume the guest must go on with the right checksums and read its disk, and the
/// handler must have served pages (each at most once: fewer than guest RAM holds).
/// </summary>
public sealed class SnapshotUffdKvmTests(ITestOutputHelper output) : FlintProcessTest(output, "snap-")
{
    // Progress lines in a host-visible file: when the nested L1 hits its time limit, the test's own output is lost
    // (first nested run: L1 timed out with the test still running, nothing to say where it was).
    private readonly string _progress = Path.Combine(Repo.Root, "artifacts", "snapshot-uffd-kvm.progress");
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private void Step(string what)
    {
        Output.WriteLine($"{_clock.ElapsedMilliseconds} ms: {what}");
        try { File.AppendAllText(_progress, $"{DateTime.UtcNow:HH:mm:ss} +{_clock.ElapsedMilliseconds} ms {what}\n"); } catch (IOException) { }
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Full_snapshot_loaded_through_the_uffd_handler_continues_the_guest()
    {
        KvmRequirement.Check();
        var disk = Path.Combine(Dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 64);
        string snap = Path.Combine(Dir, "vm.snap"), mem = Path.Combine(Dir, "vm.mem"), uffdSock = Path.Combine(Dir, "uffd.sock");

        Step("start");
        var out1 = StartFlint("a");
        var (p1, sock1) = (out1.Process, out1.Socket);
        using (var s = Connect(sock1))
        {
            Ok(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=serial,blk,seq tg.seq={SnapshotKvmTests.Lines} tg.seq.spin={SnapshotKvmTests.Spin}\"}}");
            Ok(s, "PUT", "/drives/data", $"{{\"drive_id\": \"data\", \"path_on_host\": \"{disk}\", \"is_root_device\": false, \"cache_type\": \"Writeback\"}}");
            Ok(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
            Ok(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            Assert.True(SpinWait.SpinUntil(() => Text(out1).Contains("seq 3 "), 120_000), "no 'seq 3' line:\n" + Text(out1));
            Step("guest at seq 3");
            Ok(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            Ok(s, "PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": \"{snap}\", \"mem_file_path\": \"{mem}\"}}");
        }
        Thread.Sleep(300);
        p1.Kill(true);
        p1.WaitForExit();
        string before = Text(out1);

        Step("snapshot taken, first flint killed");
        using var handler = new UffdHandlerRun(uffdSock, mem);
        var out2 = StartFlint("b");
        var (p2, sock2) = (out2.Process, out2.Socket);
        using (var s = Connect(sock2))
        {
            var sw = Stopwatch.StartNew();
            Ok(s, "PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"Uffd\", \"backend_path\": \"{uffdSock}\"}}}}");
            Step($"Load (Uffd backend): {sw.ElapsedMilliseconds} ms");
            Assert.Contains("\"Paused\"", ApiHttp.Request(s, "GET", "/").Body);
            using (var cfg = JsonDocument.Parse(ApiHttp.Request(s, "GET", "/vm/config").Body))
                Assert.Equal(64, cfg.RootElement.GetProperty("machine-config").GetProperty("mem_size_mib").GetInt32());
            Ok(s, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
        }
        Step("resumed");
        Assert.True(p2.WaitForExit(300_000), "the restored guest did not finish:\n" + Text(out2) + "\nhandler:\n" + handler.Output);
        string after = Text(out2);
        Step("restored guest finished");
        var (code, hout) = handler.WaitExit();
        Step("handler: " + hout.Replace('\n', ' '));
        Output.WriteLine("--- after the restore ---\n" + after + "\n--- handler ---\n" + hout);

        Assert.DoesNotContain("FLINT-TESTGUEST start", after);
        var all = before + after; // the log is in its file (FlintConsoleProcess): stdout is the console alone
        var seen = Regex.Matches(all, @"seq (\d+) sum=(\d+)\n").Select(m => (ulong.Parse(m.Groups[1].Value), ulong.Parse(m.Groups[2].Value))).ToList();
        Assert.Equal(SnapshotKvmTests.ExpectedSequence(), seen);
        Assert.Matches(@"seq \d+ sum=\d+\n", after);
        Assert.Contains("PASS seq-blk-read", after);
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", after);
        Assert.Equal(0, p2.ExitCode);

        // The handler ended when flint did, having served the pages the guest (and KVM, and the devices) touched.
        Assert.Equal(0, code);
        long served = UffdHandlerRun.Served(hout);
        Output.WriteLine($"pages served: {served} of {(64 << 20) / 4096}");
        Assert.InRange(served, 1, (64 << 20) / 4096);
    }
}

using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// Snapshot and restore on real KVM with the real binary: the test guest prints a sequence whose every line the host
/// can compute (tg.seq: a counter and a checksum over the work in between); it is paused mid-sequence, a Full snapshot
/// is taken, the process is killed, a new flint process loads the snapshot and resumes it, and the guest goes on from
/// the next line (no line lost, repeated or wrong) and then reads its disk on the virtio-blk queue it set up before.
/// </summary>
public sealed partial class SnapshotKvmTests(ITestOutputHelper output) : FlintProcessTest(output, "snap-")
{
    internal const int Lines = 16;
    internal const int Spin = 10000;

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Full_snapshot_restored_in_a_new_process_continues_the_guest_where_it_stopped()
    {
        KvmRequirement.Check();
        var disk = Path.Combine(Dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 64);
        string snap = Path.Combine(Dir, "vm.snap"), mem = Path.Combine(Dir, "vm.mem");

        long allocated;
        var out1 = StartFlint("a");
        var (p1, sock1) = (out1.Process, out1.Socket);
        using (var s = Connect(sock1))
        {
            Ok(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=serial,blk,seq tg.seq={Lines} tg.seq.spin={Spin}\"}}");
            Ok(s, "PUT", "/drives/data", $"{{\"drive_id\": \"data\", \"path_on_host\": \"{disk}\", \"is_root_device\": false, \"cache_type\": \"Writeback\"}}");
            Ok(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
            Ok(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            Assert.True(SpinWait.SpinUntil(() => Text(out1).Contains("seq 3 "), 120_000), "no 'seq 3' line:\n" + Text(out1));
            Ok(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            var sw = Stopwatch.StartNew();
            Ok(s, "PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": \"{snap}\", \"mem_file_path\": \"{mem}\"}}");
            allocated = Flint.Sys.SparseFile.AllocatedBytes(mem);
            Output.WriteLine($"Full snapshot of 64 MiB: {sw.ElapsedMilliseconds} ms, state file {new FileInfo(snap).Length} bytes, " +
                $"memory file {allocated} bytes allocated (du), {Flint.Sys.SparseFile.DataExtents(mem).Count} data extents");
            Assert.Equal(64L << 20, new FileInfo(mem).Length);
        }
        Thread.Sleep(300);
        string before = Text(out1);
        Assert.DoesNotContain("FLINT-TESTGUEST done", before);
        p1.Kill(true);
        p1.WaitForExit();
        before = Text(out1);

        var out2 = StartFlint("b");
        var (p2, sock2) = (out2.Process, out2.Socket);
        using (var s = Connect(sock2))
        {
            var sw = Stopwatch.StartNew();
            Ok(s, "PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": \"{mem}\"}}}}");
            Output.WriteLine($"Load (File backend): {sw.ElapsedMilliseconds} ms");
            Assert.Contains("\"Paused\"", Request(s, "GET", "/").Body);
            using (var cfg = JsonDocument.Parse(Request(s, "GET", "/vm/config").Body))
            {
                Assert.Equal(64, cfg.RootElement.GetProperty("machine-config").GetProperty("mem_size_mib").GetInt32());
                Assert.Equal("data", cfg.RootElement.GetProperty("drives")[0].GetProperty("drive_id").GetString());
            }
            Ok(s, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
        }
        Assert.True(p2.WaitForExit(300_000), "the restored guest did not finish:\n" + Text(out2));
        string after = Text(out2);
        Output.WriteLine("--- before the snapshot ---\n" + before + "\n--- after the restore ---\n" + after);

        Assert.DoesNotContain("FLINT-TESTGUEST start", after);   // it did not boot again
        // The log goes to its file (--log-path), so stdout is the console alone (when it shared stdout, a log line
        // could land inside a console line the guest had half written when it was paused).
        var all = before + after;
        var seen = Regex.Matches(all, @"seq (\d+) sum=(\d+)\n").Select(m => (ulong.Parse(m.Groups[1].Value), ulong.Parse(m.Groups[2].Value))).ToList();
        var expected = ExpectedSequence();
        Assert.Equal(expected, seen);
        // Both halves hold part of the sequence: the restored guest went on from where the first process stopped. The
        // pause may cut a line anywhere after "seq N " (a nested run stopped the guest at "seq 3 sum" and the restored
        // one wrote "=..."), so only that much is sure to be in the first half.
        Assert.Matches(@"seq [3-9]\d* ", before);
        Assert.Matches(@"seq \d+ sum=\d+\n", after);
        Assert.Contains("PASS seq-blk-read", after);
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", after);
        Assert.Equal(0, p2.ExitCode);
        // Sparse (a file that loaded and resumed above): the test guest uses a few MiB of its 64, the rest are holes.
        Assert.True(allocated < 32L << 20, $"the Full memory file allocates {allocated} bytes");
    }

    /// <summary>The guest's tg.seq lines, computed here: s = s*31 + k over Spin values of k per line (u64 wrap).</summary>
    internal static List<(ulong, ulong)> ExpectedSequence()
    {
        var list = new List<(ulong, ulong)>();
        ulong sum = 0;
        for (ulong i = 1; i <= Lines; i++)
        {
            for (ulong k = 0; k < Spin; k++) sum = unchecked(sum * 31 + k);
            list.Add((i, sum));
        }
        return list;
    }

    private static (int Status, string Body) Request(Socket s, string method, string path, string? body = null) =>
        ApiHttp.Request(s, method, path, body);
}

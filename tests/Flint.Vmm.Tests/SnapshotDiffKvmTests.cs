using System.Diagnostics;
using System.Text.RegularExpressions;
using Flint.Sys;
using Flint.TestGuest;

namespace Flint.Vmm.Tests;

/// <summary>
/// Diff snapshots on real KVM, end to end with the real binaries: the test guest runs tg.seq with track_dirty_pages;
/// a Full snapshot is taken mid-sequence (the base), the guest runs on and changes memory, a Diff snapshot is taken
/// (only the pages dirtied since the base: a sparse memory file), the process is killed, flint-snapshot merges the
/// diff onto the base, and a new process loads the merged memory with the Diff's state file: the guest must go on
/// from where the Diff stopped it, with the checksums the host computes, and read its disk.
/// </summary>
public sealed partial class SnapshotKvmTests
{
    private static string SnapshotTool => Path.Combine(Repo.Root, "artifacts", "bin", "flint-snapshot");

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Diff_snapshot_merged_onto_its_base_restores_the_guest_at_the_diff()
    {
        KvmRequirement.Check();
        Assert.True(File.Exists(SnapshotTool), $"{SnapshotTool} is missing: run scripts/setup.sh");
        var disk = Path.Combine(Dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 64);
        string baseSnap = Path.Combine(Dir, "base.snap"), baseMem = Path.Combine(Dir, "base.mem");
        string diffSnap = Path.Combine(Dir, "diff.snap"), diffMem = Path.Combine(Dir, "diff.mem");

        var out1 = StartFlint("a");
        var (p1, sock1) = (out1.Process, out1.Socket);
        using (var s = Connect(sock1))
        {
            Ok(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=serial,blk,seq tg.seq={Lines} tg.seq.spin={Spin}\"}}");
            Ok(s, "PUT", "/drives/data", $"{{\"drive_id\": \"data\", \"path_on_host\": \"{disk}\", \"is_root_device\": false, \"cache_type\": \"Writeback\"}}");
            Ok(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64, \"track_dirty_pages\": true}");
            Ok(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            Assert.True(SpinWait.SpinUntil(() => Text(out1).Contains("seq 3 "), 120_000), "no 'seq 3' line:\n" + Text(out1));
            Ok(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            Ok(s, "PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": \"{baseSnap}\", \"mem_file_path\": \"{baseMem}\"}}");
            Ok(s, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
            Assert.True(SpinWait.SpinUntil(() => Text(out1).Contains("seq 7 "), 120_000), "no 'seq 7' line:\n" + Text(out1));
            Ok(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            var sw = Stopwatch.StartNew();
            Ok(s, "PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"{diffSnap}\", \"mem_file_path\": \"{diffMem}\"}}");
            long data = SparseFile.DataExtents(diffMem).Sum(e => e.End - e.Start);
            Output.WriteLine($"Diff snapshot: {sw.ElapsedMilliseconds} ms, {data} bytes of data in a {new FileInfo(diffMem).Length}-byte sparse file");
            Assert.Equal(64L << 20, new FileInfo(diffMem).Length);
            Assert.InRange(data, 4096, (64L << 20) / 2); // the pages the guest dirtied, far from all of RAM
        }
        Thread.Sleep(300);
        p1.Kill(true);
        p1.WaitForExit();
        string before = Text(out1);
        Assert.DoesNotContain("FLINT-TESTGUEST done", before);
        // Firecracker's log_dev_preview_warning line (FlintConsoleProcess gives flint a --log-path: the line is there).
        Assert.Contains("[DevPreview] Virtual machine diff snapshots is in development preview.", File.ReadAllText(out1.LogPath));

        var info = RunTool("info", diffSnap);
        Assert.Contains("memory file: diff, page size 4096", info);
        Assert.Contains("vcpus: 1", info);
        var merge = RunTool("edit-memory", "rebase", "--memory-path", baseMem, "--diff-path", diffMem);
        Assert.Equal("", merge);

        var out2 = StartFlint("b");
        var (p2, sock2) = (out2.Process, out2.Socket);
        using (var s = Connect(sock2))
        {
            Ok(s, "PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{diffSnap}\", \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": \"{baseMem}\"}}, \"resume_vm\": true}}");
        }
        Assert.True(p2.WaitForExit(300_000), "the restored guest did not finish:\n" + Text(out2));
        string after = Text(out2);
        Output.WriteLine("--- first process ---\n" + before + "\n--- after the merged restore ---\n" + after);

        Assert.DoesNotContain("FLINT-TESTGUEST start", after);
        var all = before + after; // the log is in its file (FlintConsoleProcess): stdout is the console alone
        var seen = Regex.Matches(all, @"seq (\d+) sum=(\d+)\n").Select(m => (ulong.Parse(m.Groups[1].Value), ulong.Parse(m.Groups[2].Value))).ToList();
        Assert.Equal(ExpectedSequence(), seen);
        // The first process got past the base (seq 3) to seq 7 at least: the test paused it once "seq 7 " was out, so
        // that line's "sum=" may have been printed by the restored process (it was in the first nested run).
        Assert.Matches(@"seq [7-9]\d* |seq 1\d ", before);
        Assert.Matches(@"seq \d+ sum=\d+\n", after);
        Assert.Contains("PASS seq-blk-read", after);
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", after);
        Assert.Equal(0, p2.ExitCode);
    }

    private string RunTool(params string[] args)
    {
        var psi = new ProcessStartInfo(SnapshotTool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), "flint-snapshot did not exit");
        Output.WriteLine($"flint-snapshot {string.Join(' ', args)} -> {p.ExitCode}\n{so.Result}{se.Result}");
        Assert.True(p.ExitCode == 0, se.Result);
        return so.Result;
    }
}

using System.Diagnostics;
using System.Text.RegularExpressions;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// Snapshots of real guests on real KVM with the real binary, every process logging to a file (--log-path: the
/// serial console is then the first thing written to stdout, from a vCPU thread; see FdWriteStream):
/// the real Linux kernel paused mid-boot, saved, killed and restored in a new process, which finishes the boot; and
/// three clones of one snapshot running at once, each with its own vsock socket, sharing the memory file's page cache.
/// </summary>
public sealed class SnapshotRestoreKvmTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private readonly List<FlintConsoleProcess> _procs = [];

    public void Dispose()
    {
        foreach (var p in _procs)
        {
            int pid = p.Pid; // before Dispose: a disposed Process has no Id (the first nested run failed here, after passing)
            p.Dispose();
            output.WriteLine($"--- log of pid {pid} ---\n{p.Log}");
        }
        Directory.Delete(_dir, true);
    }

    private FlintConsoleProcess Start(string name)
    {
        var p = new FlintConsoleProcess(_dir, name, output.WriteLine);
        _procs.Add(p);
        return p;
    }

    private static bool IsPvm => Directory.Exists("/sys/module/kvm_pvm");

    private void Snapshot(FlintConsoleProcess p, string snap, string mem, long memBytes)
    {
        p.Ok("PATCH", "/vm", "{\"state\": \"Paused\"}");
        var sw = Stopwatch.StartNew();
        p.Ok("PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": \"{snap}\", \"mem_file_path\": \"{mem}\"}}");
        output.WriteLine($"Full snapshot of {memBytes >> 20} MiB: {sw.ElapsedMilliseconds} ms, state file {new FileInfo(snap).Length} bytes");
        Assert.Equal(memBytes, new FileInfo(mem).Length);
    }

    /// <summary>
    /// The real kernel (artifacts/guest) is paused as soon as its console shows `Linux version` (the serial console
    /// registers and replays the log mid-boot), saved, killed; a new process loads and resumes it and the kernel goes
    /// on to `Run /sbin/init as init process` without booting again. Where guest user space runs (VMX/SVM, nested
    /// included), the rootfs's init then starts a shell (`flint_shell`) that answers a command typed after the restore.
    /// </summary>
    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Real_kernel_paused_mid_boot_finishes_booting_after_restore_in_a_new_process()
    {
        KvmRequirement.Check();
        var vmlinux = Path.Combine(Repo.GuestDir, "vmlinux");
        Assert.True(File.Exists(vmlinux), $"{vmlinux} missing: run scripts/setup.sh");
        var rootfs = Path.Combine(_dir, "rootfs.ext4");
        File.Copy(Path.Combine(Repo.GuestDir, "rootfs.ext4"), rootfs);
        string snap = Path.Combine(_dir, "rk.snap"), mem = Path.Combine(_dir, "rk.mem");
        bool pvm = IsPvm;
        var limit = TimeSpan.FromSeconds(pvm ? 240 : 180);

        var a = Start("rk-a");
        a.Ok("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{vmlinux}\", \"boot_args\": \"console=ttyS0 reboot=k panic=1 flint_shell\"}}");
        a.Ok("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{rootfs}\", \"is_root_device\": true, \"is_read_only\": false}}");
        a.Ok("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}");
        a.Ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        Assert.True(a.WaitFor("Linux version", limit), "no 'Linux version' line:\n" + a.Console);
        Snapshot(a, snap, mem, 128L << 20);
        string before = a.Console;
        Assert.False(before.Contains("Run /sbin/init", StringComparison.Ordinal),
            "the kernel had finished booting before the pause (a host this fast needs an earlier pause point):\n" + before);
        a.Kill();

        var b = Start("rk-b");
        var sw = Stopwatch.StartNew();
        b.Ok("PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": \"{mem}\"}}, \"resume_vm\": true}}");
        output.WriteLine($"Load (File backend) + resume: {sw.ElapsedMilliseconds} ms");
        bool booted = b.WaitFor("Run /sbin/init as init process", limit);
        output.WriteLine($"--- before the snapshot ---\n{before}\n--- after the restore ---\n{b.Console}");
        Assert.True(booted, "the restored kernel did not reach init");
        Assert.DoesNotContain("Linux version", b.Console); // it went on, it did not boot again
        Assert.Contains("VFS: Mounted root", b.Console);   // the disk was probed and mounted after the restore
        if (pvm) return; // kvm_pvm: guest user space cannot run (README, "What works on which host")

        Assert.True(b.WaitFor("FLINT_GUEST_INIT_OK", limit), "init did not run after the restore:\n" + b.Console);
        // The shell may not read the console yet: type until it answers.
        bool answered = SpinWait.SpinUntil(() =>
        {
            b.Type("echo RESTORED_$((6*7))");
            return b.WaitFor("RESTORED_42", TimeSpan.FromSeconds(5));
        }, limit);
        Assert.True(answered, "the shell did not answer after the restore:\n" + b.Console);
    }

    private const int SeqLines = 24;
    private const int SeqSpin = 10000;

    /// <summary>
    /// N microVMs from one snapshot, as docs/snapshot-clones.md describes: each clone loads the same state and memory
    /// file with its own vsock socket (vsock_override) and goes on with the test guest's sequence; while all run, the
    /// guest pages they touched come from one page cache (the memory file is mapped MAP_PRIVATE, never written), which
    /// /proc/PID/smaps shows as a proportional share (Pss) below the resident size (Rss) of that mapping.
    /// </summary>
    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Three_clones_of_one_snapshot_run_at_once_and_share_the_memory_files_page_cache()
    {
        KvmRequirement.Check();
        const int Clones = 3;
        string snap = Path.Combine(_dir, "c.snap"), mem = Path.Combine(_dir, "c.mem");
        var src = Start("clone-src");
        Directory.CreateDirectory(Path.Combine(_dir, "src"));
        src.Ok("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=serial,seq tg.seq={SeqLines} tg.seq.spin={SeqSpin}\"}}");
        src.Ok("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}");
        src.Ok("PUT", "/vsock", $"{{\"guest_cid\": 3, \"uds_path\": \"{Path.Combine(_dir, "src", "v.sock")}\"}}");
        src.Ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        Assert.True(src.WaitFor("seq 3 ", TimeSpan.FromSeconds(120)), "no 'seq 3' line:\n" + src.Console);
        Snapshot(src, snap, mem, 128L << 20);
        string before = src.Console;
        src.Kill();

        var clones = new List<FlintConsoleProcess>();
        for (int i = 0; i < Clones; i++)
        {
            string dir = Path.Combine(_dir, $"clone{i}");
            Directory.CreateDirectory(dir);
            var c = Start($"clone-{i}");
            var sw = Stopwatch.StartNew();
            c.Ok("PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": \"{mem}\"}}, "
                + $"\"vsock_override\": {{\"uds_path\": \"{Path.Combine(dir, "v.sock")}\"}}, \"resume_vm\": true}}");
            output.WriteLine($"clone {i}: load + resume {sw.ElapsedMilliseconds} ms");
            Assert.True(File.Exists(Path.Combine(dir, "v.sock")), $"clone {i} did not bind its own vsock socket");
            clones.Add(c);
        }
        var seqLine = new Regex(@"seq \d+ sum=\d+\n");
        foreach (var (c, i) in clones.Select((c, i) => (c, i)))
            Assert.True(SpinWait.SpinUntil(() => seqLine.IsMatch(c.Console), 120_000), $"clone {i} printed no sequence line:\n{c.Console}");

        // All three alive and paused: the memory file's mapping in each.
        foreach (var c in clones) c.Ok("PATCH", "/vm", "{\"state\": \"Paused\"}");
        foreach (var (c, i) in clones.Select((c, i) => (c, i)))
        {
            var (rss, pss) = Smaps.OfFile(c.Pid, mem);
            output.WriteLine($"clone {i}: memory file mapping Rss {rss} KiB, Pss {pss} KiB");
            Assert.True(rss > 0, $"clone {i} maps no page of the memory file");
            Assert.True(pss < rss, $"clone {i}: Pss {pss} KiB is not below Rss {rss} KiB: its pages are not shared");
        }
        foreach (var c in clones) c.Ok("PATCH", "/vm", "{\"state\": \"Resumed\"}");

        var expected = ExpectedSequence();
        foreach (var (c, i) in clones.Select((c, i) => (c, i)))
        {
            Assert.True(c.Process.WaitForExit(300_000), $"clone {i} did not finish:\n{c.Console}");
            string all = before + c.Console;
            var seen = Regex.Matches(all, @"seq (\d+) sum=(\d+)\n").Select(m => (ulong.Parse(m.Groups[1].Value), ulong.Parse(m.Groups[2].Value))).ToList();
            Assert.Equal(expected, seen);
            Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", c.Console);
            Assert.Equal(0, c.Process.ExitCode);
        }
    }

    /// <summary>The guest's tg.seq lines, computed here: s = s*31 + k over SeqSpin values of k per line (u64 wrap).</summary>
    private static List<(ulong, ulong)> ExpectedSequence()
    {
        var list = new List<(ulong, ulong)>();
        ulong sum = 0;
        for (ulong i = 1; i <= SeqLines; i++)
        {
            for (ulong k = 0; k < SeqSpin; k++) sum = unchecked(sum * 31 + k);
            list.Add((i, sum));
        }
        return list;
    }
}

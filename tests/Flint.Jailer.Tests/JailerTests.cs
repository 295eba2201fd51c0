using System.Diagnostics;
using Xunit.Abstractions;

namespace Flint.Jailer.Tests;

/// <summary>
/// End-to-end: the published flint-jailer builds real jails (mount/pid/net namespaces, cgroups, rlimits) around
/// a static stand-in exec file that reports what it sees. Root only.
/// </summary>
public sealed class JailerTests(JailerHarness h, ITestOutputHelper output) : IClassFixture<JailerHarness>
{
    private static readonly string[] Hold = ["--", "--hold"];

    private void SkipUnlessReady() => Skip.If(h.SkipReason != null, h.SkipReason);

    private string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 64)];

    [SkippableFact]
    public void Jail_RunsAsUidGid_InNewMountNs_WithOnlyExecAndDevNodes()
    {
        SkipUnlessReady();
        string id = NewId("basic");
        try
        {
            // Inherited fds 7 and 8 and an environment variable must not reach the VMM.
            using Process p = h.Start([.. h.Args(id), "--", "--hold", "--extra", "x y"],
                new Dictionary<string, string> { ["FLINT_JAILER_SECRET"] = "1" }, wrapper: "/bin/sh");
            Report r = h.WaitReport(id);
            int pid = h.PidFromFile(id);
            Assert.Equal(p.Id, pid); // without --new-pid-ns/--daemonize the VMM keeps the jailer's pid

            Assert.Equal("1234", r["uid"]);
            Assert.Equal("1234", r["euid"]);
            Assert.Equal("2345", r["gid"]);
            Assert.Equal("2345", r["egid"]);
            Assert.Equal("0", r["ngroups"]);
            Assert.Equal("/", r["cwd"]);
            Assert.Equal("0", r["envc"]);
            Assert.Equal(["0", "1", "2"], r.All("fd"));
            Assert.Equal("default", r["sigpipe"]);
            Assert.Equal("1", r["sigmask_empty"]);
            Assert.Equal("2048 2048", r["nofile"]); // Firecracker's default no-file bound

            // argv: /<exec> --id <id> --start-time-us N --start-time-cpu-us N --parent-cpu-time-us N -- args
            Assert.Equal("/" + JailerHarness.ExecName, r.Args[0]);
            Assert.Equal(id, r.ArgAfter("--id"));
            ulong.Parse(r.ArgAfter("--start-time-us"));
            ulong.Parse(r.ArgAfter("--start-time-cpu-us"));
            ulong.Parse(r.ArgAfter("--parent-cpu-time-us"));
            Assert.Equal(["--hold", "--extra", "x y"], r.Args.Skip(9).ToArray());

            // The jail: the exec file, its pid file, /dev nodes, /run (Firecracker's API socket dir).
            var e = r.Entries;
            var expected = new HashSet<string>
            {
                "/" + JailerHarness.ExecName, "/" + JailerHarness.ExecName + ".pid", "/dev", "/dev/net", "/dev/net/tun",
                "/dev/kvm", "/dev/urandom", "/run", "/report.tmp",
            };
            // /dev/userfaultfd where the host has it (Linux 6.1+): the VMM's Uffd snapshot backend opens it inside the
            // jail (the userfaultfd syscall needs CAP_SYS_PTRACE there, and Flint's seccomp baseline traps it anyway).
            string? uffdMinor = File.ReadAllLines("/proc/misc").Select(l => l.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .FirstOrDefault(f => f.Length == 2 && f[1] == "userfaultfd")?[0];
            if (uffdMinor != null) expected.Add("/dev/userfaultfd");
            Assert.Equal(expected.Order(), e.Keys.Order());
            if (uffdMinor != null) Assert.Equal(["c", "600", "1234", "2345", "10", uffdMinor], e["/dev/userfaultfd"]);
            Assert.Equal(["c", "600", "1234", "2345", "10", "232"], e["/dev/kvm"]);
            Assert.Equal(["c", "600", "1234", "2345", "10", "200"], e["/dev/net/tun"]);
            Assert.Equal(["c", "600", "1234", "2345", "1", "9"], e["/dev/urandom"]);
            Assert.Equal(["f", "755", "1234", "2345", "0", "0"], e["/" + JailerHarness.ExecName]);
            Assert.Equal("700", e["/dev"][1]);
            Assert.Equal(File.ReadAllBytes(h.StandIn), File.ReadAllBytes(Path.Combine(h.JailRoot(id), JailerHarness.ExecName)));

            Assert.NotEqual(JailerHarness.NsLink(Environment.ProcessId, "mnt"), JailerHarness.NsLink(pid, "mnt"));
            Assert.Equal(JailerHarness.NsLink(Environment.ProcessId, "pid"), JailerHarness.NsLink(pid, "pid"));
            Assert.Equal(JailerHarness.NsLink(Environment.ProcessId, "net"), JailerHarness.NsLink(pid, "net"));
            // The jail's root is the chroot dir: the host sees it through /proc/<pid>/root.
            Assert.True(File.Exists($"/proc/{pid}/root/report.txt"));
            Assert.False(Directory.Exists($"/proc/{pid}/root/old_root"));
            // The host's mount table is unchanged (the bind mount lives in the jail's namespace only).
            Assert.DoesNotContain(h.JailRoot(id), File.ReadAllText("/proc/self/mountinfo"));

            h.Release(id, pid);
            Assert.True(p.WaitForExit(10_000));
            Assert.Equal(0, p.ExitCode);
        }
        finally { h.Cleanup(id); }
    }

    [SkippableFact]
    public void NewPidNs_ChildIsPid1_PidFileHoldsHostPid()
    {
        SkipUnlessReady();
        string id = NewId("pidns");
        try
        {
            var (code, _, err) = h.RunJailer([.. h.Args(id, "--new-pid-ns"), .. Hold]);
            Assert.True(code == 0, err);
            Report r = h.WaitReport(id);
            int pid = h.PidFromFile(id);
            Assert.Equal("1", r["pid"]);
            Assert.True(JailerHarness.IsAlive(pid));
            Assert.NotEqual(JailerHarness.NsLink(Environment.ProcessId, "pid"), JailerHarness.NsLink(pid, "pid"));
            Assert.NotEqual(JailerHarness.NsLink(Environment.ProcessId, "mnt"), JailerHarness.NsLink(pid, "mnt"));
            Assert.Equal("1234", r["uid"]);
            Assert.Contains("Uid:\t1234\t1234\t1234\t1234", File.ReadAllText($"/proc/{pid}/status"));
            h.Release(id, pid);
        }
        finally { h.Cleanup(id); }
    }

    [SkippableFact]
    public void Netns_joins_the_given_namespace()
    {
        SkipUnlessReady();
        string ns = $"flint-jt-{Environment.ProcessId}";
        var add = JailerHarness.Run("ip", "netns", "add", ns);
        Skip.If(add.Code != 0, $"ip netns add failed: {add.Err}");
        string id = NewId("netns");
        try
        {
            var (code, _, err) = h.RunJailer([.. h.Args(id, "--netns", $"/run/netns/{ns}", "--new-pid-ns"), .. Hold]);
            Assert.True(code == 0, err);
            h.WaitReport(id);
            int pid = h.PidFromFile(id);
            string inode = JailerHarness.Run("stat", "-L", "-c", "%i", $"/run/netns/{ns}").Out.Trim();
            Assert.Equal($"net:[{inode}]", JailerHarness.NsLink(pid, "net"));
            Assert.NotEqual(JailerHarness.NsLink(Environment.ProcessId, "net"), JailerHarness.NsLink(pid, "net"));
            h.Release(id, pid);
        }
        finally
        {
            h.Cleanup(id);
            JailerHarness.Run("ip", "netns", "delete", ns);
        }
    }

    [SkippableFact]
    public void CgroupV1_ValuesWritten_ProcessPlaced_CpusetInherited()
    {
        SkipUnlessReady();
        string? cpu = JailerHarness.MountOf("cpu"), pids = JailerHarness.MountOf("pids"), cpuset = JailerHarness.MountOf("cpuset");
        Skip.If(cpu == null || pids == null || cpuset == null, "no cgroup v1 cpu/pids/cpuset hierarchies");
        string id = NewId("cgv1");
        try
        {
            var (code, _, err) = h.RunJailer([.. h.Args(id, "--new-pid-ns", "--parent-cgroup", h.CgroupParent,
                "--cgroup", "cpu.shares=512", "--cgroup", "pids.max=64", "--cgroup", "cpuset.cpus=0"), .. Hold]);
            Assert.True(code == 0, err);
            h.WaitReport(id);
            int pid = h.PidFromFile(id);
            Assert.Equal("512", File.ReadAllText(Path.Combine(cpu!, h.CgroupParent, id, "cpu.shares")).Trim());
            Assert.Equal("64", File.ReadAllText(Path.Combine(pids!, h.CgroupParent, id, "pids.max")).Trim());
            Assert.Equal("0", File.ReadAllText(Path.Combine(cpuset!, h.CgroupParent, id, "cpuset.cpus")).Trim());
            // cpuset.mems was not given: inherited from the parent so the task could be attached.
            Assert.Equal(File.ReadAllText(Path.Combine(cpuset!, "cpuset.mems")).Trim(),
                File.ReadAllText(Path.Combine(cpuset!, h.CgroupParent, id, "cpuset.mems")).Trim());
            string cg = File.ReadAllText($"/proc/{pid}/cgroup");
            Assert.Matches($@"(?m)^\d+:([^:]*,)?cpu(,[^:]*)?:/{h.CgroupParent}/{id}$", cg);
            Assert.Matches($@"(?m)^\d+:pids:/{h.CgroupParent}/{id}$", cg);
            Assert.Matches($@"(?m)^\d+:cpuset:/{h.CgroupParent}/{id}$", cg);
            h.Release(id, pid);
        }
        finally { h.Cleanup(id); }
    }

    [SkippableFact]
    public void CgroupV2_ValueWritten_ControllerEnabled_ProcessPlaced()
    {
        SkipUnlessReady();
        string? unified = JailerHarness.UnifiedMount();
        Skip.If(unified == null, "no cgroup v2 hierarchy");
        var controllers = File.ReadAllText(Path.Combine(unified!, "cgroup.controllers")).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
        (string File, string Value)? pick = null;
        if (controllers.Contains("pids")) pick = ("pids.max", "77");
        else if (controllers.Contains("memory")) pick = ("memory.max", "268435456");
        else if (controllers.Contains("cpu")) pick = ("cpu.weight", "42");
        else if (controllers.Contains("hugetlb"))
        {
            string? hp = Directory.Exists("/sys/kernel/mm/hugepages") ? Directory.GetDirectories("/sys/kernel/mm/hugepages").Select(Path.GetFileName).Order().FirstOrDefault() : null;
            if (hp != null)
            {
                long kb = long.Parse(hp["hugepages-".Length..^2]);
                string size = kb >= 1 << 20 ? $"{kb >> 20}GB" : kb >= 1024 ? $"{kb >> 10}MB" : $"{kb}KB";
                pick = ($"hugetlb.{size}.max", (kb * 1024 * 4).ToString());
            }
        }
        Skip.If(pick == null, $"no usable v2 controller (available: {string.Join(' ', controllers)})");
        string controller = pick!.Value.File.Split('.')[0];
        string rootCtl = Path.Combine(unified!, "cgroup.subtree_control");
        bool wasEnabled = File.ReadAllText(rootCtl).Split(' ', '\n').Contains(controller);
        string id = NewId("cgv2");
        try
        {
            var (code, _, err) = h.RunJailer([.. h.Args(id, "--new-pid-ns", "--cgroup-version", "2", "--parent-cgroup", h.CgroupParent,
                "--cgroup", $"{pick.Value.File}={pick.Value.Value}"), .. Hold]);
            Assert.True(code == 0, err);
            h.WaitReport(id);
            int pid = h.PidFromFile(id);
            Assert.Equal(pick.Value.Value, File.ReadAllText(Path.Combine(unified!, h.CgroupParent, id, pick.Value.File)).Trim());
            Assert.Contains(controller, File.ReadAllText(Path.Combine(unified!, h.CgroupParent, "cgroup.subtree_control")));
            Assert.Matches($@"(?m)^0::/{h.CgroupParent}/{id}$", File.ReadAllText($"/proc/{pid}/cgroup"));
            h.Release(id, pid);
        }
        finally
        {
            h.Cleanup(id);
            JailerHarness.TryRmdir(Path.Combine(unified!, h.CgroupParent));
            if (!wasEnabled) try { File.WriteAllText(rootCtl, "-" + controller); } catch (IOException) { }
        }
    }

    [SkippableFact]
    public void Resource_limits_are_applied()
    {
        SkipUnlessReady();
        string id = NewId("rlim");
        try
        {
            var (code, _, err) = h.RunJailer([.. h.Args(id, "--new-pid-ns", "--resource-limit", "fsize=65536", "--resource-limit", "no-file=123"), .. Hold]);
            Assert.True(code == 0, err);
            Report r = h.WaitReport(id);
            int pid = h.PidFromFile(id);
            Assert.Equal("65536 65536", r["fsize"]);
            Assert.Equal("123 123", r["nofile"]);
            Assert.Equal("EFBIG", r["fsize_probe"]);
            string limits = File.ReadAllText($"/proc/{pid}/limits");
            Assert.Matches(@"Max open files\s+123\s+123", limits);
            Assert.Matches(@"Max file size\s+65536\s+65536", limits);
            h.Release(id, pid);
        }
        finally { h.Cleanup(id); }
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Daemonize_ReturnsAtOnce_WritesPidFile_DetachesStdio(bool newPidNs)
    {
        SkipUnlessReady();
        string id = NewId(newPidNs ? "daemonpid" : "daemon");
        try
        {
            var sw = Stopwatch.StartNew();
            var (code, _, err, eof) = h.RunJailerEx([.. h.Args(id, newPidNs ? ["--daemonize", "--new-pid-ns"] : ["--daemonize"]), .. Hold]);
            long ms = sw.ElapsedMilliseconds;
            Assert.True(code == 0, err);
            Assert.True(eof, "the daemon must not hold the jailer's stdout/stderr");
            int pid = h.PidFromFile(id);
            // The jailer has exited (and its stdout/stderr reached EOF) while the VMM still runs.
            Assert.True(JailerHarness.IsAlive(pid), "daemon should still be running");
            Report r = h.WaitReport(id);
            Assert.Equal("chr 1:3", r["stdin"]); // /dev/null
            Assert.Equal(newPidNs ? "1" : pid.ToString(), r["pid"]);
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            int session = int.Parse(f[3]);
            Assert.NotEqual(pid, session); // double fork: in a new session, but not its leader
            Assert.NotEqual(int.Parse(File.ReadAllText("/proc/self/stat").Split(") ")[1].Split(' ')[3]), session);
            output.WriteLine($"--daemonize{(newPidNs ? " --new-pid-ns" : "")}: jailer returned after {ms} ms; daemon pid {pid}, session {session}");
            h.Release(id, pid);
        }
        finally { h.Cleanup(id); }
    }

    public static TheoryData<string, string[], string> InvalidCases => new()
    {
        { "slash in id", ["--id", "a/b"], "Invalid instance ID" },
        { "dot-dot id", ["--id", ".."], "Invalid instance ID" },
        { "65-char id", ["--id", new string('a', 65)], "Invalid instance ID" },
        { "empty id", ["--id", ""], "Invalid instance ID" },
        { "exec file missing", ["--exec-file", "/nonexistent/vmm"], "exec file" },
        { "exec file is a directory", ["--exec-file", "/tmp"], "not a regular file" },
        { "jail dir exists", ["--id", "already-there"], "already exists" },
        { "cgroup without value", ["--cgroup", "cpu.shares"], "Invalid format for cgroup" },
        { "cgroup empty value", ["--cgroup", "cpu.shares="], "Invalid format for cgroup" },
        { "cgroup unknown controller", ["--cgroup", "nosuchctl.max=1"], "not available" },
        { "cgroup unknown file", ["--cgroup", "pids.nosuchfile=1"], "Unknown cgroup file" },
        { "cgroup file is a path", ["--cgroup", "../pids.max=1"], "Invalid cgroup file" },
        { "cgroup file without controller", ["--cgroup", "tasks=1"], "Invalid cgroup file" },
        { "cgroup version 3", ["--cgroup-version", "3"], "Invalid cgroup version" },
        { "parent cgroup with ..", ["--parent-cgroup", "a/../b", "--cgroup", "pids.max=5"], "--parent-cgroup" },
        { "absolute parent cgroup", ["--parent-cgroup", "/abs", "--cgroup", "pids.max=5"], "--parent-cgroup" },
        { "unknown resource", ["--resource-limit", "nproc=5"], "Invalid resource limit argument" },
        { "bad resource value", ["--resource-limit", "fsize=big"], "Invalid value for resource limit" },
        { "resource without =", ["--resource-limit", "fsize"], "Invalid format for resource limit" },
        { "netns not a namespace", ["--netns", "/etc/hostname"], "Not a network namespace" },
        { "netns missing", ["--netns", "/nonexistent/ns"], "network namespace" },
        { "chroot base missing", ["--chroot-base-dir", "/nonexistent/base"], "chroot base dir" },
        { "uid not a number", ["--uid", "root"], "Invalid uid" },
        { "gid negative", ["--gid", "-1"], "Invalid gid" },
        { "unknown flag", ["--seccomp-level", "2"], "wasn't expected" },
        { "missing --gid", ["--gid", null!], "Missing argument: --gid" },
        { "value missing", ["--id", null!, "--id"], "requires a value" },
        { "cpuset out of range (fails while writing: rolled back)", ["--cgroup", "cpuset.cpus=4095"], "cpuset.cpus" },
        { "no-file zero (the VMM could not open one file)", ["--resource-limit", "no-file=0"], "Invalid limit value for resource: no-file: 0" },
    };

    [SkippableTheory]
    [MemberData(nameof(InvalidCases))]
    public void InvalidInput_Exits1_WithMessage_LeavesNothingBehind(string name, string[] overrides, string message)
    {
        SkipUnlessReady();
        if (overrides.Contains("cpuset.cpus=4095")) Skip.If(JailerHarness.MountOf("cpuset") == null, "no v1 cpuset");
        if (overrides.Any(o => o != null && o.StartsWith("pids.", StringComparison.Ordinal)))
            Skip.If(JailerHarness.MountOf("pids") == null, "no v1 pids hierarchy");

        // Start from valid arguments and apply the case's overrides (a null value removes the flag).
        var map = new List<(string Flag, string? Value)>
        {
            ("--id", "invalid-case"), ("--exec-file", h.StandIn), ("--uid", "1234"), ("--gid", "2345"), ("--chroot-base-dir", h.BaseDir),
        };
        var extra = new List<string>();
        for (int i = 0; i < overrides.Length; i += 2)
        {
            string flag = overrides[i];
            string? value = i + 1 < overrides.Length ? overrides[i + 1] : null;
            int k = map.FindIndex(m => m.Flag == flag);
            if (i + 1 >= overrides.Length) { extra.Add(flag); continue; }
            if (k >= 0) map[k] = (flag, value);
            else { extra.Add(flag); extra.Add(value!); }
        }
        var args = new List<string>();
        foreach (var (flag, value) in map)
            if (value != null) { args.Add(flag); args.Add(value); }
        args.AddRange(extra);
        string id = map.First(m => m.Flag == "--id").Value ?? "invalid-case";

        string execDir = Path.Combine(h.BaseDir, JailerHarness.ExecName);
        bool preExisting = name == "jail dir exists";
        if (preExisting) Directory.CreateDirectory(Path.Combine(execDir, "already-there", "keep"));
        try
        {
            var (code, stdout, err) = h.RunJailer(args);
            output.WriteLine($"{name}: exit {code}: {err.Trim()}");
            Assert.Equal(1, code);
            Assert.Contains(message, err, StringComparison.OrdinalIgnoreCase);
            Assert.StartsWith("flint-jailer: error:", err);
            if (preExisting)
            {
                Assert.True(Directory.Exists(Path.Combine(execDir, "already-there", "keep")), "an existing jail must be left alone");
                Assert.Equal([Path.Combine(execDir, "already-there")], Directory.GetDirectories(execDir));
            }
            else
            {
                Assert.False(Directory.Exists(execDir), $"{execDir} left behind");
                Assert.Empty(Directory.GetFileSystemEntries(h.BaseDir));
            }
            foreach (string m in JailerHarness.CgroupMounts())
            {
                Assert.False(Directory.Exists(Path.Combine(m, JailerHarness.ExecName)), $"cgroup parent left in {m}");
                Assert.Empty(Directory.GetDirectories(m, "flint-jailer-probe-*"));
            }
        }
        finally
        {
            if (Directory.Exists(execDir)) Directory.Delete(execDir, recursive: true);
        }
    }

    /// <summary>
    /// Small limits are the VMM's, not the jailer's: the jailer used to apply them to itself before its own work and
    /// died (unhandled EMFILE while opening stderr) leaving the jail behind; now they are set just before execve.
    /// </summary>
    [SkippableFact]
    public void Small_resource_limits_apply_to_the_VMM_only()
    {
        SkipUnlessReady();
        string id = NewId("smallrlim");
        try
        {
            var (code, _, err) = h.RunJailer([.. h.Args(id, "--new-pid-ns", "--resource-limit", "no-file=6", "--resource-limit", "fsize=4096"), .. Hold]);
            Assert.True(code == 0, err);
            Report r = h.WaitReport(id);
            Assert.Equal("6 6", r["nofile"]);
            Assert.Equal("4096 4096", r["fsize"]);
            h.Release(id, h.PidFromFile(id));
        }
        finally { h.Cleanup(id); }
    }

    /// <summary>
    /// A failure after the jailer entered the jail (here: execve of a script whose interpreter the jail does not
    /// hold) exits 1 with the reason and removes the jail directory, which the jailer can no longer reach by path.
    /// </summary>
    [SkippableTheory]
    [InlineData("")]
    [InlineData("--new-pid-ns")]
    [InlineData("--daemonize")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // File.SetUnixFileMode
    public void FailureInsideTheJail_Exits1_LeavesNothingBehind(string mode)
    {
        SkipUnlessReady();
        string script = Path.Combine(h.Scratch, "flint-script");
        File.WriteAllText(script, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(script, (UnixFileMode)0x1ED /* 0755 */);
        string execDir = Path.Combine(h.BaseDir, "flint-script");
        var args = new List<string> { "--id", "inside", "--exec-file", script, "--uid", "1234", "--gid", "2345", "--chroot-base-dir", h.BaseDir };
        if (mode.Length > 0) args.Add(mode);
        try
        {
            var (code, _, err) = h.RunJailer(args);
            output.WriteLine($"exit {code}: {err.Trim()}");
            Assert.Equal(1, code);
            Assert.StartsWith("flint-jailer: error:", err);
            Assert.Contains("execve", err);
            Assert.Contains("No such file or directory", err);
            Assert.False(Directory.Exists(execDir), $"{execDir} left behind: " +
                string.Join(", ", Directory.Exists(execDir) ? Directory.GetFileSystemEntries(execDir, "*", SearchOption.AllDirectories) : []));
        }
        finally
        {
            if (Directory.Exists(execDir)) Directory.Delete(execDir, recursive: true);
        }
    }

    [SkippableFact]
    public void Ten_concurrent_jails_do_not_interfere()
    {
        SkipUnlessReady();
        string? cpu = JailerHarness.MountOf("cpu");
        var ids = Enumerable.Range(0, 10).Select(i => NewId($"conc{i}")).ToArray();
        var procs = new Process[10];
        try
        {
            Parallel.For(0, 10, i =>
            {
                var extra = new List<string> { "--resource-limit", $"no-file={300 + i}" };
                if (cpu != null) extra.AddRange(["--parent-cgroup", h.CgroupParent, "--cgroup", $"cpu.shares={200 + i}"]);
                if (i % 2 == 1) extra.Add("--new-pid-ns");
                procs[i] = h.Start([.. h.Args(ids[i], [.. extra]), "--", "--hold"]);
            });
            var mntNs = new HashSet<string>();
            var pids = new HashSet<int>();
            for (int i = 0; i < 10; i++)
            {
                Report r = h.WaitReport(ids[i]);
                int pid = h.PidFromFile(ids[i]);
                Assert.Equal(ids[i], r.ArgAfter("--id"));
                Assert.Equal($"{300 + i} {300 + i}", r["nofile"]);
                Assert.Equal(i % 2 == 1 ? "1" : pid.ToString(), r["pid"]);
                Assert.True(pids.Add(pid));
                Assert.True(mntNs.Add(JailerHarness.NsLink(pid, "mnt")), "each jail has its own mount namespace");
                if (cpu != null)
                    Assert.Equal($"{200 + i}", File.ReadAllText(Path.Combine(cpu, h.CgroupParent, ids[i], "cpu.shares")).Trim());
                // Each jail sees only its own files.
                Assert.Equal(File.ReadAllText(Path.Combine(h.JailRoot(ids[i]), JailerHarness.ExecName + ".pid")).Trim(), pid.ToString());
            }
            Assert.DoesNotContain(JailerHarness.NsLink(Environment.ProcessId, "mnt"), mntNs);
            for (int i = 0; i < 10; i++) h.Release(ids[i], h.PidFromFile(ids[i]));
            foreach (Process p in procs) Assert.True(p.WaitForExit(10_000));
            Assert.All(procs, p => Assert.Equal(0, p.ExitCode));
        }
        finally
        {
            foreach (Process? p in procs) p?.Dispose();
            foreach (string id in ids) h.Cleanup(id);
        }
    }

    /// <summary>
    /// Start-to-exec times: "total" from just before spawning the jailer to the stand-in's first instruction
    /// (process creation + NativeAOT start + jail set-up + exec), "in-jailer" from the jailer's own start time
    /// (--start-time-us, taken first thing in Main) to the stand-in's start.
    /// </summary>
    [SkippableFact]
    public void Start_to_exec_time_one_and_ten_parallel()
    {
        SkipUnlessReady();
        var one = new List<(double Total, double Inner)>();
        for (int round = 0; round < 5; round++)
        {
            string id = NewId("time1");
            try { one.Add(Measure([id])[0]); }
            finally { h.Cleanup(id); }
        }
        var ten = new List<(double Total, double Inner)>();
        for (int round = 0; round < 2; round++)
        {
            string[] ids = Enumerable.Range(0, 10).Select(i => NewId($"time10x{i}")).ToArray();
            try { ten.AddRange(Measure(ids)); }
            finally { foreach (string id in ids) h.Cleanup(id); }
        }
        string Fmt(List<(double Total, double Inner)> s) =>
            $"total median {Median(s.Select(x => x.Total)):F1} ms (max {s.Max(x => x.Total):F1}), " +
            $"in-jailer median {Median(s.Select(x => x.Inner)):F1} ms (max {s.Max(x => x.Inner):F1})";
        output.WriteLine($"1 jail    ({one.Count} runs): {Fmt(one)}");
        output.WriteLine($"10 parallel ({ten.Count} jails): {Fmt(ten)}");
        Console.WriteLine($"[flint-jailer timing] 1 jail: {Fmt(one)}; 10 parallel: {Fmt(ten)}");
        Assert.All(one.Concat(ten), x => Assert.True(x.Total < 5000, $"start-to-exec {x.Total} ms"));
    }

    private List<(double Total, double Inner)> Measure(string[] ids)
    {
        var starts = new ulong[ids.Length];
        var procs = new Process[ids.Length];
        Parallel.For(0, ids.Length, new ParallelOptions { MaxDegreeOfParallelism = ids.Length }, i =>
        {
            starts[i] = JailerHarness.MonoUs();
            procs[i] = h.Start(h.Args(ids[i]));
        });
        var result = new List<(double, double)>();
        for (int i = 0; i < ids.Length; i++)
        {
            Assert.True(procs[i].WaitForExit(30_000));
            Assert.True(procs[i].ExitCode == 0, procs[i].StandardError.ReadToEnd());
            Report r = h.WaitReport(ids[i]);
            ulong mono = ulong.Parse(r["mono_us"]), jailerStart = ulong.Parse(r.ArgAfter("--start-time-us"));
            result.Add(((mono - starts[i]) / 1000.0, (mono - jailerStart) / 1000.0));
            procs[i].Dispose();
        }
        return result;
    }

    private static double Median(IEnumerable<double> xs)
    {
        var a = xs.Order().ToArray();
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }
}

/// <summary>Command-line parsing, no root needed.</summary>
public sealed class JailerOptionsTests
{
    [Fact]
    public void Parses_Firecracker_flags()
    {
        var o = JailerOptions.Parse([
            "--id", "vm-1", "--exec-file", "/usr/bin/flint", "--uid", "123", "--gid", "100", "--chroot-base-dir", "/x",
            "--netns", "/run/netns/n", "--daemonize", "--new-pid-ns", "--cgroup", "cpuset.cpus=0", "--cgroup", "cpuset.mems=0",
            "--cgroup-version", "2", "--parent-cgroup", "a/b", "--resource-limit", "fsize=100", "--resource-limit", "no-file=1024",
            "--", "--config-file", "c.json", "--id", "ignored-by-jailer",
        ]);
        Assert.Equal("vm-1", o.Id);
        Assert.Equal("/usr/bin/flint", o.ExecFile);
        Assert.Equal(123u, o.Uid);
        Assert.Equal(100u, o.Gid);
        Assert.Equal("/x", o.ChrootBaseDir);
        Assert.Equal("/run/netns/n", o.NetNs);
        Assert.True(o.Daemonize);
        Assert.True(o.NewPidNs);
        Assert.Equal([("cpuset.cpus", "0"), ("cpuset.mems", "0")], o.Cgroups);
        Assert.Equal(2, o.CgroupVersion);
        Assert.Equal("a/b", o.ParentCgroup);
        Assert.Equal(100ul, o.FileSizeLimit);
        Assert.Equal(1024ul, o.NoFileLimit);
        Assert.Equal(["--config-file", "c.json", "--id", "ignored-by-jailer"], o.ExtraArgs);
    }

    [Fact]
    public void Defaults_are_Firecrackers()
    {
        var o = JailerOptions.Parse(["--id", "a", "--exec-file", "f", "--uid", "0", "--gid", "0"]);
        Assert.Equal("/srv/jailer", o.ChrootBaseDir);
        Assert.Equal(1, o.CgroupVersion);
        Assert.Null(o.ParentCgroup);
        Assert.False(o.Daemonize);
        Assert.Null(o.NoFileLimit);
    }

    [Theory]
    [InlineData("a", true)]
    [InlineData("551e7604-e35c-42b3-b825-416853441234", true)]
    [InlineData("", false)]
    [InlineData("a_b", false)]
    [InlineData("a.b", false)]
    [InlineData("a/b", false)]
    [InlineData("é", false)]
    public void The_id_rule(string id, bool ok) => Assert.Equal(ok, JailerOptions.IsValidId(id));

    [Fact]
    public void The_id_rule_bounds_the_length()
    {
        Assert.True(JailerOptions.IsValidId(new string('x', 64)));
        Assert.False(JailerOptions.IsValidId(new string('x', 65)));
    }

    [Theory]
    [InlineData("--id", "a", "--id", "b")]
    [InlineData("--bogus")]
    [InlineData("positional")]
    [InlineData("--daemonize=yes")]
    public void Bad_arguments_are_rejected(params string[] extra) =>
        Assert.Throws<JailerException>(() => JailerOptions.Parse(["--id", "a", "--exec-file", "f", "--uid", "0", "--gid", "0", .. extra]));
}

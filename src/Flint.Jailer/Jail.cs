using System.Runtime.InteropServices;
using Flint.Sys;
using static Flint.Sys.JailerLibc;

namespace Flint.Jailer;

/// <summary>What a failed run created before the jail was entered, undone in reverse.</summary>
public sealed class Rollback
{
    public string? JailIdDir;          // <base>/<exec>/<id>: removed with everything in it
    public string? JailExecDir;        // <base>/<exec>: removed only when we made it and it is empty
    public List<string> CgroupDirs = new();
    public List<CgroupTarget> Attached = new();
    /// <summary>Set just before the pivot: removes the jail from inside it.</summary>
    public InsideJailCleanup? InsideJail;

    public void Undo()
    {
        InsideJail?.Dispose();
        string pid = Environment.ProcessId.ToString();
        foreach (CgroupTarget t in Attached)
        {
            if (t.OriginalPath == null) continue;
            try { Cgroups.WriteFile(Path.Combine(t.Mount.Dir, t.OriginalPath.TrimStart('/'), "cgroup.procs"), pid); }
            catch (JailerException) { }
        }
        for (int i = CgroupDirs.Count - 1; i >= 0; i--)
            try { Directory.Delete(CgroupDirs[i]); } catch (Exception) { }
        if (JailIdDir != null) try { Directory.Delete(JailIdDir, recursive: true); } catch (Exception) { }
        if (JailExecDir != null) try { Directory.Delete(JailExecDir); } catch (Exception) { }
    }
}

/// <summary>The validated plan for one jail: every input checked, nothing created yet.</summary>
public sealed class JailPlan
{
    public required JailerOptions Options;
    public required string ExecPath;      // canonical
    public required string ExecName;
    public required string ExecDir;       // <base>/<exec name>
    public required string IdDir;         // <base>/<exec name>/<id>
    public required string ChrootDir;     // <base>/<exec name>/<id>/root
    public required List<CgroupTarget> Cgroups;
    public int NetNsFd = -1;
    public uint? UserfaultfdMinor;

    // SAFETY: syscalls get pinned NUL-terminated paths and stack structs.
    public static unsafe JailPlan Create(JailerOptions o)
    {
        if (!JailerOptions.IsValidId(o.Id))
            throw new JailerException($"Invalid instance ID: '{o.Id}' (1 to 64 characters, alphanumerics and '-' only).");

        string exec = Canonical(o.ExecFile, "exec file");
        if (FileType(exec) != S_IFREG)
            throw new JailerException($"Exec file is not a regular file: {o.ExecFile}");
        string execName = Path.GetFileName(exec);

        string baseDir = Canonical(o.ChrootBaseDir, "chroot base dir");
        if (FileType(baseDir) != S_IFDIR) throw new JailerException($"Chroot base dir is not a directory: {o.ChrootBaseDir}");
        string execDir = Path.Combine(baseDir, execName);
        string idDir = Path.Combine(execDir, o.Id);
        if (Path.Exists(idDir)) throw new JailerException($"Jail directory already exists: {idDir}");

        List<CgroupTarget> cgroups = Flint.Jailer.Cgroups.Plan(o, execName);

        var plan = new JailPlan
        {
            Options = o, ExecPath = exec, ExecName = execName, ExecDir = execDir, IdDir = idDir,
            ChrootDir = Path.Combine(idDir, "root"), Cgroups = cgroups,
        };

        if (o.NetNs != null)
        {
            int fd = Libc.Open(o.NetNs, Libc.O_RDONLY);
            if (fd < 0) throw new JailerException($"Cannot open network namespace {o.NetNs}: {Libc.StrError(Libc.Errno)}");
            const uint NS_GET_NSTYPE = 0xb703;
            int type = Libc.ioctl_val(fd, NS_GET_NSTYPE, 0);
            if (type != CLONE_NEWNET)
            {
                Libc.close(fd);
                throw new JailerException($"Not a network namespace: {o.NetNs}");
            }
            plan.NetNsFd = fd;
        }
        plan.UserfaultfdMinor = FindMiscMinor("userfaultfd");
        return plan;
    }

    private static string Canonical(string path, string what)
    {
        if (path.Length == 0) throw new JailerException($"Empty path for {what}.");
        return RealPath(path)
            ?? throw new JailerException($"Failed to canonicalize {what} '{path}': {Libc.StrError(Errno)}");
    }

    private static uint? FindMiscMinor(string name)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/misc"))
            {
                string[] f = line.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length == 2 && f[1] == name && uint.TryParse(f[0], out uint minor)) return minor;
            }
        }
        catch (IOException) { }
        return null;
    }
}

/// <summary>Builds the jail and execs the VMM in it: Firecracker's order of operations.</summary>
// SAFETY: mount/chroot/pivot_root get pinned NUL-terminated paths; structs are on the stack.
public sealed unsafe class Jail(JailPlan plan, ulong startUs, ulong startCpuUs)
{
    private JailerOptions O => plan.Options;
    private bool _pivoted, _bound;

    public int Run()
    {
        var rb = new Rollback();
        int devNull = -1;
        // Touch what later needs the host filesystem (and a free descriptor) first.
        _ = Console.Error;
        try
        {
            CreateChrootDir(rb);
            CopyExecFile();
            if (plan.NetNsFd >= 0)
            {
                if (setns(plan.NetNsFd, CLONE_NEWNET) != 0) throw Fail($"setns({O.NetNs}, CLONE_NEWNET)");
                Libc.close(plan.NetNsFd);
            }
            Cgroups.Apply(plan.Cgroups, rb);
            if (O.Daemonize)
            {
                devNull = Libc.Open("/dev/null", Libc.O_RDWR);
                if (devNull < 0) throw Fail("open /dev/null");
            }
            // The jail's directories and device nodes are made through host paths, before the pivot, so a failure
            // there is undone like any other; inside, only the launch is left.
            PopulateJail();
            rb.InsideJail = InsideJailCleanup.Prepare(plan, rb.JailExecDir != null);
            EnterChroot();
        }
        catch (Exception e)
        {
            // Once pivot_root has run, the host paths are out of reach: only the descriptor can clean up.
            if (_pivoted) rb.InsideJail!.Run();
            else
            {
                // The bind mount (in this process's own mount namespace) would keep the root dir busy.
                if (_bound) fixed (byte* d = Z(plan.ChrootDir)) umount2(d, MNT_DETACH);
                rb.Undo();
            }
            if (e is JailerException) throw;
            throw new JailerException($"Unexpected error while building the jail: {e.Message}");
        }

        try
        {
            return Launch(devNull, rb.InsideJail!);
        }
        catch (Exception e)
        {
            // The host paths are out of reach now: remove the jail through the descriptor kept for it.
            rb.InsideJail!.Run();
            if (e is JailerException) throw;
            throw new JailerException($"Unexpected error while launching {plan.ExecName}: {e.Message}");
        }
    }

    /// <summary>
    /// The jail's tree, Firecracker's: root, dev, dev/net and run owned by uid:gid with mode 0700, and the device
    /// nodes for /dev/net/tun, /dev/kvm, /dev/urandom (optional) and /dev/userfaultfd (when the host has it).
    /// </summary>
    private void PopulateJail()
    {
        foreach (string dir in InsideJailCleanup.Dirs)
        {
            string host = Path.Combine(plan.ChrootDir, dir);
            MkDir(host, 0x1C0 /* 0700 */);
            fixed (byte* p = Z(host))
            {
                if (chmod(p, 0x1C0 /* 0700 */) != 0) throw Fail($"chmod /{dir}");
                if (chown(p, O.Uid, O.Gid) != 0) throw Fail($"chown /{dir}");
            }
        }
        MknodAndOwn("dev/net/tun", 10, 200);
        MknodAndOwn("dev/kvm", 10, 232);
        try { MknodAndOwn("dev/urandom", 1, 9); }
        catch (JailerException e) { Console.Error.WriteLine($"flint-jailer: warning: {e.Message}; MMDS version 2 will not be available."); }
        if (plan.UserfaultfdMinor is uint minor) MknodAndOwn("dev/userfaultfd", 10, minor);
    }

    private int Launch(int devNull, InsideJailCleanup cleanup)
    {
        string chrootExec = "/" + plan.ExecName;
        string pidFile = chrootExec + ".pid";
        bool forks = O.Daemonize || O.NewPidNs;
        ulong cpuNow = NowUs(CLOCK_PROCESS_CPUTIME_ID);
        // Firecracker's opaque timings: start of the jailer, CPU time of the exec'd process so far (a fresh
        // child's clock starts at ~0) and the CPU time the jailer spent.
        var argv = new List<string>
        {
            chrootExec, "--id", O.Id,
            "--start-time-us", startUs.ToString(),
            "--start-time-cpu-us", (forks ? 0 : cpuNow).ToString(),
            "--parent-cpu-time-us", (cpuNow - startCpuUs).ToString(),
        };
        argv.AddRange(O.ExtraArgs);

        ExecBlock* b = (ExecBlock*)NativeMemory.AllocZeroed((nuint)sizeof(ExecBlock));
        b->Path = CString(chrootExec);
        b->Argv = CStringArray(argv);
        b->Envp = CStringArray(Array.Empty<string>());
        b->Uid = O.Uid;
        b->Gid = O.Gid;
        b->DevNullFd = devNull;
        b->StatusFd = -1;
        b->NoFile = O.NoFileLimit ?? JailerOptions.DefaultNoFile;
        if (O.FileSizeLimit is ulong fsize) { b->FileSize = fsize; b->HasFileSize = 1; }

        if (!forks)
        {
            // The VMM keeps this process's pid: record it, then become it.
            WritePidFile(pidFile, Environment.ProcessId);
            cleanup.ArmStandbyThread();
            var (step, err) = Spawn.ExecInPlace(b);
            throw new JailerException($"Failed to exec {chrootExec} ({Spawn.StepName(step)}): {Libc.StrError(err)}");
        }

        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0) throw Fail("pipe2");
        b->StatusFd = fds[1];
        bool sessionLeader = Raw(SYS_getsid, 0) == Environment.ProcessId;

        int child;
        bool noGc = false;
        try { noGc = GC.TryStartNoGCRegion(4 << 20); } catch (InvalidOperationException) { }
        try
        {
            child = O.Daemonize ? Spawn.ForkDaemon(b, fds[0], O.NewPidNs) : Spawn.CloneIntoNewPidNs(b, fds[0], sessionLeader);
        }
        finally
        {
            if (noGc) try { GC.EndNoGCRegion(); } catch (InvalidOperationException) { }
        }
        Libc.close(fds[1]);
        if (child < 0)
        {
            Libc.close(fds[0]);
            throw new JailerException($"clone failed: {Libc.StrError(-child)}");
        }

        int vmmPid = O.Daemonize ? 0 : child;
        if (vmmPid > 0) WritePidFile(pidFile, vmmPid);
        (int Step, int Errno)? failure = null;
        int* rec = stackalloc int[2];
        while (true)
        {
            nint n = Libc.read(fds[0], rec, 8);
            if (n < 0 && Libc.Errno == Libc.EINTR) continue;
            if (n != 8) break;
            if (rec[0] == Spawn.StepPid) { vmmPid = rec[1]; WritePidFile(pidFile, vmmPid); }
            else failure = (rec[0], rec[1]);
        }
        Libc.close(fds[0]);
        if (O.Daemonize)
        {
            int status;
            while (waitpid(child, &status, 0) < 0 && Errno == Libc.EINTR) { }
        }
        if (failure is var (s, e))
        {
            if (!O.Daemonize) { int status; waitpid(child, &status, 0); }
            throw new JailerException($"Failed to exec {chrootExec} ({Spawn.StepName(s)}): {Libc.StrError(e)}");
        }
        if (vmmPid <= 0) throw new JailerException("The daemon process exited before exec.");
        return 0;
    }

    private static void WritePidFile(string path, int pid)
    {
        try { File.WriteAllText(path, pid.ToString()); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new JailerException($"Cannot write {path}: {e.Message}");
        }
    }

    private void CreateChrootDir(Rollback rb)
    {
        if (MkDir(plan.ExecDir, 0x1ED /* 0755 */)) rb.JailExecDir = plan.ExecDir;
        // The id directory is the uniqueness point: if another jailer made it since validation, stop.
        fixed (byte* p = Z(plan.IdDir))
            if (mkdir(p, 0x1ED /* 0755 */) != 0)
            {
                int err = Errno;
                throw new JailerException(err == JailerLibc.EEXIST
                    ? $"Jail directory already exists: {plan.IdDir}"
                    : $"Cannot create {plan.IdDir}: {Libc.StrError(err)}");
            }
        rb.JailIdDir = plan.IdDir;
        MkDir(plan.ChrootDir, 0x1ED /* 0755 */);
    }

    private void CopyExecFile()
    {
        string dst = Path.Combine(plan.ChrootDir, plan.ExecName);
        try
        {
            // A copy, not a link: two VMMs never share the text pages of one file.
            File.Copy(plan.ExecPath, dst, overwrite: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new JailerException($"Cannot copy {plan.ExecPath} to {dst}: {e.Message}");
        }
        UnixFileMode mode = File.GetUnixFileMode(plan.ExecPath);
        fixed (byte* p = Z(dst))
            if (chown(p, O.Uid, O.Gid) != 0) throw Fail($"chown {dst}");
        File.SetUnixFileMode(dst, mode & ~(UnixFileMode.SetUser | UnixFileMode.SetGroup));
    }

    /// <summary>New mount namespace, root pivoted onto the chroot dir, the old root detached and removed.
    /// unshare(CLONE_NEWNS) works in a multithreaded process: it gives this thread its own fs_struct and mount
    /// namespace, and this thread is the one that execs (or clones the process that does).</summary>
    private void EnterChroot()
    {
        if (unshare(CLONE_NEWNS) != 0) throw Fail("unshare(CLONE_NEWNS)");
        fixed (byte* root = Z("/"))
        fixed (byte* dir = Z(plan.ChrootDir))
        fixed (byte* dot = Z("."))
        fixed (byte* old = Z("old_root"))
        fixed (byte* oldAbs = Z("/old_root"))
        {
            if (mount(null, root, null, MS_SLAVE | MS_REC, null) != 0) throw Fail("mount / MS_SLAVE|MS_REC");
            if (mount(dir, dir, null, MS_BIND | MS_REC, null) != 0) throw Fail($"bind mount {plan.ChrootDir}");
            _bound = true;
            if (chdir(dir) != 0) throw Fail($"chdir {plan.ChrootDir}");
            if (mkdir(old, 0x180 /* 0600 */) != 0) throw Fail("mkdir old_root");
            if (RawSyscall(SYS_pivot_root, (long)dot, (long)old, 0, 0, 0, 0) != 0)
                throw new JailerException($"pivot_root failed: {Libc.StrError(*ErrnoLocation())}");
            _pivoted = true;
            if (chdir(root) != 0) throw Fail("chdir /");
            if (umount2(oldAbs, MNT_DETACH) != 0) throw Fail("umount2 old_root");
            if (rmdir(oldAbs) != 0) throw Fail("rmdir old_root");
        }
    }

    /// <summary>Makes the character device <paramref name="rel"/> (relative to the jail root) owned by uid:gid.</summary>
    private void MknodAndOwn(string rel, uint major, uint minor)
    {
        fixed (byte* p = Z(Path.Combine(plan.ChrootDir, rel)))
        {
            long r = Raw(SYS_mknodat, AT_FDCWD, (long)p, S_IFCHR | S_IRUSR | S_IWUSR, (long)MakeDev(major, minor));
            if (r < 0) throw new JailerException($"mknod /{rel} ({major}, {minor}) failed: {Libc.StrError((int)-r)}");
            if (chown(p, O.Uid, O.Gid) != 0) throw Fail($"chown /{rel}");
        }
    }

    /// <summary>mkdir; true if this call created it, false if it was there; throws otherwise.</summary>
    public static bool MkDir(string path, uint mode)
    {
        fixed (byte* p = Z(path))
        {
            if (mkdir(p, mode) == 0) return true;
            int err = Errno;
            if (err == JailerLibc.EEXIST) return false;
            throw new JailerException($"Cannot create directory {path}: {Libc.StrError(err)}");
        }
    }

    internal static byte[] Z(string s)
    {
        byte[] b = new byte[System.Text.Encoding.UTF8.GetByteCount(s) + 1];
        System.Text.Encoding.UTF8.GetBytes(s, b);
        return b;
    }

    private static JailerException Fail(string what) => new($"{what} failed: {Libc.StrError(Errno)}");
}

using Flint.Sys;
using static Flint.Sys.JailerLibc;

namespace Flint.Jailer;

/// <summary>
/// Removes the jail when the launch fails after the pivot (execve refused, clone failed, the pid file could not be
/// written). By then the host's paths are gone from this process's view, so a descriptor of the chroot base dir is
/// opened before the pivot and everything the jailer made is unlinked relative to it: the exact list of what
/// <see cref="Jail"/> puts in a jail, deepest first, then the id dir, then the exec dir when this run made it and it
/// is empty. (Cgroup directories stay, as in Firecracker: this process is still a member of them.)
/// </summary>
// SAFETY: unlinkat/rmdir get pinned NUL-terminated names.
public sealed unsafe class InsideJailCleanup : IDisposable
{
    /// <summary>The jail's directories, relative to its root ("" is the root itself), parents first.</summary>
    public static readonly string[] Dirs = ["", "dev", "dev/net", "run"];

    private const long SYS_unlinkat = 263;
    private const int AT_REMOVEDIR = 0x200;

    private int _baseFd;
    private readonly string _execName, _idRel, _rootRel;
    private readonly bool _removeExecDir;

    private InsideJailCleanup(int baseFd, string execName, string id, bool removeExecDir)
    {
        _baseFd = baseFd;
        _execName = execName;
        _idRel = $"{execName}/{id}";
        _rootRel = $"{execName}/{id}/root";
        _removeExecDir = removeExecDir;
    }

    /// <summary>Opens the base dir (O_CLOEXEC: the VMM never inherits it). Call before the pivot.</summary>
    public static InsideJailCleanup Prepare(JailPlan plan, bool madeExecDir)
    {
        string baseDir = Path.GetDirectoryName(plan.ExecDir)!;
        int fd = Libc.Open(baseDir, O_RDONLY | O_DIRECTORY);
        if (fd < 0) throw new JailerException($"Failed to open directory {baseDir}: {Libc.StrError(Errno)}");
        return new InsideJailCleanup(fd, plan.ExecName, plan.Options.Id, madeExecDir);
    }

    private Thread? _standby;
    private readonly SemaphoreSlim _go = new(0);

    /// <summary>
    /// Starts a thread that keeps this thread's (root) credentials, for the in-place exec: the raw setuid/setgid
    /// there change only the calling thread, so after a failed execve this thread can no longer remove the jail
    /// (the id dir belongs to root) but a thread started before the drop still can. A successful execve ends it.
    /// </summary>
    public void ArmStandbyThread()
    {
        _standby = new Thread(() => { _go.Wait(); RemoveJail(); }) { IsBackground = true, Name = "jail-cleanup" };
        _standby.Start();
    }

    /// <summary>Best effort: every step is tried; what fails (it was never made) is skipped.</summary>
    public void Run()
    {
        if (_standby is { } t)
        {
            _standby = null;
            _go.Release();
            t.Join();
            return;
        }
        RemoveJail();
    }

    private void RemoveJail()
    {
        if (_baseFd < 0) return;
        string[] files = [_execName, _execName + ".pid", "dev/net/tun", "dev/kvm", "dev/urandom", "dev/userfaultfd"];
        foreach (string f in files) Unlink($"{_rootRel}/{f}", 0);
        Unlink($"{_rootRel}/old_root", AT_REMOVEDIR);
        for (int i = Dirs.Length - 1; i >= 0; i--)
            Unlink(Dirs[i].Length == 0 ? _rootRel : $"{_rootRel}/{Dirs[i]}", AT_REMOVEDIR);
        Unlink(_idRel, AT_REMOVEDIR);
        if (_removeExecDir) Unlink(_execName, AT_REMOVEDIR); // only succeeds when no other jail is in it
        Dispose();
    }

    private void Unlink(string rel, int flags)
    {
        fixed (byte* p = Jail.Z(rel))
            Raw(SYS_unlinkat, _baseFd, (long)p, flags);
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _baseFd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}

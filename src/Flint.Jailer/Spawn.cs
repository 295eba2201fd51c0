using System.Runtime.InteropServices;
using static Flint.Sys.JailerLibc;

namespace Flint.Jailer;

/// <summary>Everything the final exec needs, in unmanaged memory, so the child side of a clone() touches no
/// managed state.</summary>
[StructLayout(LayoutKind.Sequential)]
// SAFETY: argv/envp arrays in native memory built before clone(), read by the child's execve only.
public unsafe struct ExecBlock
{
    public byte* Path;
    public byte** Argv;
    public byte** Envp;
    public uint Uid, Gid;
    /// <summary>/dev/null to put on 0, 1 and 2 (--daemonize), or -1.</summary>
    public int DevNullFd;
    /// <summary>The write end of the status pipe (O_CLOEXEC: closes by itself when execve succeeds), or -1.</summary>
    public int StatusFd;
    /// <summary>RLIMIT_NOFILE for the VMM (soft = hard).</summary>
    public ulong NoFile;
    /// <summary>RLIMIT_FSIZE for the VMM (soft = hard) when <see cref="HasFileSize"/> is 1.</summary>
    public ulong FileSize;
    public int HasFileSize;
}

/// <summary>
/// The last steps: drop privileges and execve, either in this process or in children made by raw clone().
///
/// The .NET runtime is multithreaded, so a child of clone()/fork() holds only a copy of the calling thread: it
/// must not allocate, take a lock, run a static constructor or call glibc functions that track threads
/// (setuid() broadcasts to every thread glibc knows of). The child code below uses locals, unmanaged memory
/// and <see cref="RawSyscall"/> only. Before cloning, the caller opens a no-GC region so that no collection can
/// be mid-suspension when the child's copy of this thread returns from a P/Invoke (and the project turns off
/// background GC).
/// </summary>
// SAFETY: clone/execve get argv/envp built in native memory before the clone (the child allocates nothing).
public static unsafe class Spawn
{
    /// <summary>Step numbers reported through the status pipe (0 = "pid follows").</summary>
    public const int StepPid = 0, StepDup2 = 1, StepSetgroups = 2, StepSetgid = 3, StepSetuid = 4, StepSigmask = 5,
        StepExecve = 6, StepSetsid = 7, StepClone = 8, StepNoFile = 9, StepFileSize = 10;

    private const long SYS_setrlimit = 160;

    public static string StepName(int step) => step switch
    {
        StepDup2 => "dup2 /dev/null onto stdio",
        StepSetgroups => "setgroups",
        StepSetgid => "setgid",
        StepSetuid => "setuid",
        StepSigmask => "resetting the signal mask",
        StepExecve => "execve",
        StepSetsid => "setsid",
        StepClone => "clone",
        StepNoFile => "setrlimit(RLIMIT_NOFILE)",
        StepFileSize => "setrlimit(RLIMIT_FSIZE)",
        _ => $"step {step}",
    };

    /// <summary>
    /// Drops to uid/gid and execs. Returns only on failure, as (step, errno). Safe in a cloned child; also used
    /// in the jailer's own process (on its main thread: the raw credential syscalls change this thread, the one
    /// that execs; execve ends the others).
    /// </summary>
    public static (int Step, int Errno) ExecInPlace(ExecBlock* b)
    {
        long r;
        if (b->DevNullFd >= 0)
        {
            for (int fd = 0; fd <= 2; fd++)
                if ((r = Raw(SYS_dup2, b->DevNullFd, fd)) < 0) return (StepDup2, (int)-r);
        }
        // The resource limits are the VMM's: set here, as the last steps before exec (while still privileged, after
        // stdio is in place), so the jailer's own work never runs under them. A small no-file limit applied earlier
        // made the jailer itself fail to open stderr and abort, leaving the jail behind; a small fsize could have
        // killed it with SIGXFSZ while it wrote the pid file.
        ulong* lim = stackalloc ulong[2];
        lim[0] = lim[1] = b->NoFile;
        if ((r = Raw(SYS_setrlimit, RLIMIT_NOFILE, (long)lim)) < 0) return (StepNoFile, (int)-r);
        if (b->HasFileSize != 0)
        {
            lim[0] = lim[1] = b->FileSize;
            if ((r = Raw(SYS_setrlimit, RLIMIT_FSIZE, (long)lim)) < 0) return (StepFileSize, (int)-r);
        }
        if ((r = Raw(SYS_setgroups, 0, 0)) < 0) return (StepSetgroups, (int)-r);
        if ((r = Raw(SYS_setgid, b->Gid)) < 0) return (StepSetgid, (int)-r);
        if ((r = Raw(SYS_setuid, b->Uid)) < 0) return (StepSetuid, (int)-r);

        // A clean signal state for the VMM: empty mask, SIGPIPE back to default (.NET ignores it, and an
        // ignored disposition survives execve).
        ulong set = 0;
        if ((r = Raw(SYS_rt_sigprocmask, 2 /* SIG_SETMASK */, (long)&set, 0, 8)) < 0) return (StepSigmask, (int)-r);
        ulong* act = stackalloc ulong[4];
        act[0] = act[1] = act[2] = act[3] = 0; // handler SIG_DFL, flags 0, restorer 0, mask 0
        Raw(SYS_rt_sigaction, SIGPIPE, (long)act, 0, 8);

        r = Raw(SYS_execve, (long)b->Path, (long)b->Argv, (long)b->Envp);
        return (StepExecve, (int)-r);
    }

    /// <summary>Child side: report a failed step on the status pipe and exit. Never returns.</summary>
    private static void ChildFail(ExecBlock* b, int step, int errno)
    {
        int* rec = stackalloc int[2];
        rec[0] = step;
        rec[1] = errno;
        if (b->StatusFd >= 0) Raw(SYS_write, b->StatusFd, (long)rec, 8);
        Raw(SYS_exit_group, 1);
    }

    private static void ChildReportPid(ExecBlock* b, int pid)
    {
        int* rec = stackalloc int[2];
        rec[0] = StepPid;
        rec[1] = pid;
        Raw(SYS_write, b->StatusFd, (long)rec, 8);
    }

    /// <summary>
    /// --new-pid-ns without --daemonize: clone into a new PID namespace; the child (pid 1 there) execs.
    /// Returns the child's host pid; the caller reads the status pipe.
    /// </summary>
    public static int CloneIntoNewPidNs(ExecBlock* b, int statusReadFd, bool setsidInChild)
    {
        long pid = Raw(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0)
        {
            Raw(SYS_close, statusReadFd);
            if (setsidInChild) Raw(SYS_setsid);
            var (step, err) = ExecInPlace(b);
            ChildFail(b, step, err);
        }
        return (int)pid; // > 0, or -errno
    }

    /// <summary>
    /// --daemonize: fork a middle process that calls setsid() and then clones the daemon (into a new PID
    /// namespace with --new-pid-ns), reports the daemon's pid on the status pipe and exits. The daemon is not a
    /// session leader, so it can never get a controlling terminal back. Returns the middle process's pid.
    /// </summary>
    public static int ForkDaemon(ExecBlock* b, int statusReadFd, bool newPidNs)
    {
        long mid = Raw(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (mid != 0) return (int)mid;

        Raw(SYS_close, statusReadFd);
        long r = Raw(SYS_setsid);
        if (r < 0) ChildFail(b, StepSetsid, (int)-r);
        long daemon = Raw(SYS_clone, (newPidNs ? CLONE_NEWPID : 0) | SIGCHLD, 0, 0, 0, 0);
        if (daemon < 0) ChildFail(b, StepClone, (int)-daemon);
        if (daemon == 0)
        {
            var (step, err) = ExecInPlace(b);
            ChildFail(b, step, err);
        }
        ChildReportPid(b, (int)daemon);
        Raw(SYS_exit_group, 0);
        return -1; // not reached
    }
}

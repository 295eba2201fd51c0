using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// Thread-directed signals used to kick a vCPU thread out of KVM_RUN (pause, stop). The handler does nothing:
/// its only job is to make the blocked ioctl return EINTR.
/// </summary>
// SAFETY: sigaction gets a stack struct; the handlers are unmanaged function pointers to static methods that never move.
public static unsafe class Signals
{
    /// <summary>SIGRTMIN+6: clear of glibc's (32, 33) and the .NET runtime's activation signal (SIGRTMIN).</summary>
    public const int VcpuKick = 40;

    [DllImport("libc", SetLastError = true)] private static extern int tgkill(int tgid, int tid, int sig);

    private static int _installed;

    /// <summary>
    /// Installs the no-op handler for <see cref="VcpuKick"/> once per process (no SA_RESTART: KVM_RUN must return).
    /// It is one native `ret` (<see cref="FatalSignals.NoopHandler"/>): a managed [UnmanagedCallersOnly] handler would
    /// fail fast when the signal lands while the thread runs managed code, which a kick can. glibc's sigaction supplies
    /// the sa_restorer that returns from the signal frame.
    /// </summary>
    public static void InstallKickHandler()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        SigAction.Install(VcpuKick, new SigAction { Handler = FatalSignals.NoopHandler });
    }

    /// <summary>
    /// Installs a native handler for <paramref name="signal"/> that only increments a counter, and returns the
    /// counter. For signals whose default is fatal but which the VMM must survive and count (SIGPIPE): the
    /// handler is `movabs rax, &amp;counter; lock inc qword [rax]; ret`, so nothing managed runs in signal context.
    /// </summary>
    public static long* InstallCountingHandler(int signal)
    {
        long* counter = (long*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(8);
        byte* page = (byte*)Libc.mmap(null, 4096, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        if ((nint)page == Libc.MAP_FAILED) throw SysException.Last("mmap signal handler");
        page[0] = 0x48; page[1] = 0xB8;            // movabs rax, imm64
        *(ulong*)(page + 2) = (ulong)counter;
        page[10] = 0xF0; page[11] = 0x48; page[12] = 0xFF; page[13] = 0x00; // lock inc qword ptr [rax]
        page[14] = 0xC3;                           // ret
        if (Libc.mprotect(page, 4096, Libc.PROT_READ | Libc.PROT_EXEC) < 0) throw SysException.Last("mprotect signal handler");
        SigAction.Install(signal, new SigAction { Handler = (nint)page, Flags = SigAction.SA_RESTART });
        return counter;
    }

    public static void Kick(int tid)
    {
        if (tgkill(Libc.getpid(), tid, VcpuKick) < 0 && Libc.Errno != 3 /* ESRCH: thread gone */)
            throw SysException.Last("tgkill");
    }
}

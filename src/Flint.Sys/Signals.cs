using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// Thread-directed signals used to kick a vCPU thread out of KVM_RUN (pause, stop). The handler does nothing:
/// its only job is to make the blocked ioctl return EINTR.
/// </summary>
public static unsafe class Signals
{
    /// <summary>SIGRTMIN+6: clear of glibc's (32, 33) and the .NET runtime's activation signal (SIGRTMIN).</summary>
    public const int VcpuKick = 40;

    [StructLayout(LayoutKind.Sequential)]
    private struct SigAction
    {
        public nint Handler;
        public ulong Mask0, Mask1, Mask2, Mask3, Mask4, Mask5, Mask6, Mask7, Mask8, Mask9, Mask10, Mask11, Mask12, Mask13, Mask14, Mask15;
        public int Flags;
        public nint Restorer;
    }

    [DllImport("libc", SetLastError = true)] private static extern int sigaction(int sig, SigAction* act, SigAction* old);
    [DllImport("libc", SetLastError = true)] private static extern int tgkill(int tgid, int tid, int sig);

    private static int _installed;

    /// <summary>
    /// Installs the no-op handler for <see cref="VcpuKick"/> once per process (no SA_RESTART: KVM_RUN must return).
    /// The handler is one native `ret` instruction on its own executable page: a managed [UnmanagedCallersOnly]
    /// handler would fail fast when the signal lands while the thread runs managed code, which a kick can.
    /// glibc's sigaction supplies the sa_restorer that returns from the signal frame.
    /// </summary>
    public static void InstallKickHandler()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        byte* page = (byte*)Libc.mmap(null, 4096, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        if ((nint)page == Libc.MAP_FAILED) throw SysException.Last("mmap kick handler");
        page[0] = 0xC3; // ret
        if (Libc.mprotect(page, 4096, Libc.PROT_READ | Libc.PROT_EXEC) < 0) throw SysException.Last("mprotect kick handler");
        var act = new SigAction { Handler = (nint)page };
        if (sigaction(VcpuKick, &act, null) < 0) throw SysException.Last("sigaction");
    }

    public static void Kick(int tid)
    {
        if (tgkill(Libc.getpid(), tid, VcpuKick) < 0 && Libc.Errno != 3 /* ESRCH: thread gone */)
            throw SysException.Last("tgkill");
    }
}

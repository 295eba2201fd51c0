using System.Runtime.InteropServices;
using Flint.Sys;

namespace Flint.Seccomp;

/// <summary>
/// Installs compiled filters: the process baseline on every thread at once (<see cref="InstallOnAllThreads"/>), then each
/// role's filter on its own thread (<see cref="InstallOnCurrentThread(ReadOnlySpan{SockFilter})"/>), stacked on the
/// baseline (the kernel runs both; the stricter answer wins).
/// </summary>
// SAFETY: the BPF program is pinned for the seccomp(2) call and its length is its instruction count.
public static unsafe class SeccompFilter
{
    private const int PR_SET_NO_NEW_PRIVS = 38;
    private const long SYS_seccomp = 317;
    private const long SECCOMP_SET_MODE_FILTER = 1;
    private const long SECCOMP_FILTER_FLAG_TSYNC = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct SockFprog
    {
        public ushort Len;
        public SockFilter* Filter;
    }

    private static int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5) => SeccompLibc.prctl(option, arg2, arg3, arg4, arg5);
    private static long syscall(long number, long op, long flags, void* args) => SeccompLibc.syscall(number, op, flags, args);

    /// <summary>
    /// Sets no_new_privs and attaches <paramref name="program"/> to the calling thread. The filter also applies to every
    /// thread this thread creates afterwards (the kernel copies it on clone). An empty program installs nothing.
    /// </summary>
    public static void InstallOnCurrentThread(ReadOnlySpan<SockFilter> program) => Install(program, 0);

    /// <summary>
    /// Attaches <paramref name="program"/> to every thread of the process at once (SECCOMP_FILTER_FLAG_TSYNC), the
    /// runtime's own included (the finalizer, and any it starts later: a new thread inherits its creator's filters).
    /// The kernel refuses (returning a thread id) unless every other thread's filters are an ancestor of the caller's,
    /// so this goes on before any role filter.
    /// </summary>
    public static void InstallOnAllThreads(ReadOnlySpan<SockFilter> program) => Install(program, SECCOMP_FILTER_FLAG_TSYNC);

    /// <summary>The process baseline from <paramref name="config"/> on every thread (nothing when disabled).</summary>
    public static void InstallOnAllThreads(SeccompConfig config) => InstallOnAllThreads(config.Get(ThreadKind.Process));

    private static void Install(ReadOnlySpan<SockFilter> program, long flags)
    {
        if (program.IsEmpty) return;
        if (program.Length > Bpf.MaxInstructions) throw new ArgumentException($"BPF program too long ({program.Length} > {Bpf.MaxInstructions})", nameof(program));
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) throw SysException.Last("prctl(PR_SET_NO_NEW_PRIVS)");
        fixed (SockFilter* p = program)
        {
            var prog = new SockFprog { Len = (ushort)program.Length, Filter = p };
            // SAFETY: prog points at the pinned program for the duration of the call; the kernel copies it.
            long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
            if (r < 0) throw SysException.Last("seccomp(SECCOMP_SET_MODE_FILTER)");
            if (r > 0) throw new InvalidOperationException($"seccomp(SECCOMP_FILTER_FLAG_TSYNC): thread {r} already runs under another filter");
        }
    }

    /// <summary>Installs the filter for <paramref name="kind"/> from <paramref name="config"/> (nothing when disabled).</summary>
    public static void InstallOnCurrentThread(SeccompConfig config, ThreadKind kind) => InstallOnCurrentThread(config.Get(kind));
}

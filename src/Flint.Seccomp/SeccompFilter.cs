using System.Runtime.InteropServices;
using Flint.Sys;

namespace Flint.Seccomp;

/// <summary>Installs a compiled filter on the calling thread only (no TSYNC: each thread kind gets its own filter).</summary>
public static unsafe class SeccompFilter
{
    private const int PR_SET_NO_NEW_PRIVS = 38;
    private const long SYS_seccomp = 317;
    private const long SECCOMP_SET_MODE_FILTER = 1;

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
    public static void InstallOnCurrentThread(ReadOnlySpan<SockFilter> program)
    {
        if (program.IsEmpty) return;
        if (program.Length > Bpf.MaxInstructions) throw new ArgumentException($"BPF program too long ({program.Length} > {Bpf.MaxInstructions})", nameof(program));
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) throw SysException.Last("prctl(PR_SET_NO_NEW_PRIVS)");
        fixed (SockFilter* p = program)
        {
            var prog = new SockFprog { Len = (ushort)program.Length, Filter = p };
            if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) throw SysException.Last("seccomp(SECCOMP_SET_MODE_FILTER)");
        }
    }

    /// <summary>Installs the filter for <paramref name="kind"/> from <paramref name="config"/> (nothing when disabled).</summary>
    public static void InstallOnCurrentThread(SeccompConfig config, ThreadKind kind) => InstallOnCurrentThread(config.Get(kind));
}

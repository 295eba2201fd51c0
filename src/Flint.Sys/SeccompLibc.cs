using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// prctl(2) and the seccomp(2) system call, for installing seccomp filters (Flint.Seccomp), so that its P/Invoke
/// lives here with the rest of libc. Blittable signatures: NativeAOT emits direct calls.
/// </summary>
// SAFETY: P/Invoke declarations only; the filter program pointer is pinned by the caller for the prctl/seccomp call.
public static unsafe class SeccompLibc
{
    private const string L = "libc";

    [DllImport(L, SetLastError = true)] public static extern int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    /// <summary>
    /// syscall(2) with three arguments, errno kept (SetLastError) for <see cref="SysException.Last"/>. glibc has no
    /// seccomp() wrapper. <see cref="JailerLibc.RawSyscall"/> is the jailer's fork-safe variant without SetLastError.
    /// </summary>
    [DllImport(L, SetLastError = true)] public static extern long syscall(long number, long arg1, long arg2, void* arg3);
}

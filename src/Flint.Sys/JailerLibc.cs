using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// The libc calls the jailer makes: namespaces, mounts, device nodes, credentials, rlimits, process creation.
/// Blittable signatures only (NativeAOT emits direct calls, no marshalling stubs).
///
/// Two families:
///  * the plain imports (SetLastError = true) are for the jailer's own, multithreaded process;
///  * <see cref="RawSyscall"/> / <see cref="ErrnoLocation"/> are for the code that runs in a child after
///    clone()/fork(): libc's <c>syscall()</c> is a few instructions of assembly that touch no lock, and reading
///    errno through <c>__errno_location()</c> needs no managed thread state. x86_64 syscall numbers.
/// </summary>
// SAFETY: P/Invoke declarations only; callers pass pinned NUL-terminated paths and stack structs.
public static unsafe class JailerLibc
{
    private const string L = "libc";

    public const int CLONE_NEWNS = 0x00020000, CLONE_NEWPID = 0x20000000, CLONE_NEWNET = 0x40000000;
    public const int SIGCHLD = 17, SIGPIPE = 13;

    public const ulong MS_RDONLY = 1, MS_BIND = 0x1000, MS_REC = 0x4000, MS_PRIVATE = 1 << 18, MS_SLAVE = 1 << 19;
    public const int MNT_DETACH = 2;

    public const uint S_IFCHR = 0x2000, S_IRUSR = 0x100, S_IWUSR = 0x80;
    public const int AT_FDCWD = -100;

    public const int RLIMIT_FSIZE = 1, RLIMIT_NOFILE = 7;
    public const ulong RLIM_INFINITY = ulong.MaxValue;

    public const int CLOCK_MONOTONIC = 1, CLOCK_PROCESS_CPUTIME_ID = 2;
    public const int O_CLOEXEC = 0x80000, O_RDWR = 2, O_RDONLY = 0, O_DIRECTORY = 0x10000;
    public const int EEXIST = 17, ENOENT = 2, EINTR = 4, EBUSY = 16;

    // x86_64 syscall numbers used through RawSyscall.
    public const long SYS_write = 1, SYS_close = 3, SYS_rt_sigaction = 13, SYS_rt_sigprocmask = 14, SYS_dup2 = 33,
        SYS_getpid = 39, SYS_clone = 56, SYS_execve = 59, SYS_setuid = 105, SYS_setgid = 106, SYS_setsid = 112,
        SYS_setgroups = 116, SYS_getsid = 124, SYS_pivot_root = 155, SYS_exit_group = 231, SYS_mknodat = 259,
        SYS_close_range = 436;
    public const uint CLOSE_RANGE_CLOEXEC = 4;

    [DllImport(L, SetLastError = true)] public static extern int unshare(int flags);
    [DllImport(L, SetLastError = true)] public static extern int setns(int fd, int nstype);
    [DllImport(L, SetLastError = true)] public static extern int mount(byte* source, byte* target, byte* fstype, ulong flags, void* data);
    [DllImport(L, SetLastError = true)] public static extern int umount2(byte* target, int flags);
    [DllImport(L, SetLastError = true)] public static extern int chdir(byte* path);
    [DllImport(L, SetLastError = true)] public static extern int mkdir(byte* path, uint mode);
    [DllImport(L, SetLastError = true)] public static extern int rmdir(byte* path);
    [DllImport(L, SetLastError = true)] public static extern int chmod(byte* path, uint mode);
    [DllImport(L, SetLastError = true)] public static extern int chown(byte* path, uint uid, uint gid);
    [DllImport(L, SetLastError = true)] public static extern int lchown(byte* path, uint uid, uint gid);
    [DllImport(L, SetLastError = true)] public static extern int setrlimit(int resource, RLimit* rlim);
    [DllImport(L, SetLastError = true)] public static extern int getrlimit(int resource, RLimit* rlim);
    [DllImport(L, SetLastError = true)] public static extern int pipe2(int* fds, int flags);
    [DllImport(L, SetLastError = true)] public static extern int waitpid(int pid, int* status, int options);
    [DllImport(L, SetLastError = true)] public static extern int clock_gettime(int clockId, TimeSpec* tp);
    [DllImport(L, SetLastError = true)] public static extern nint signal(int signum, nint handler);
    [DllImport(L, SetLastError = true)] public static extern byte* realpath(byte* path, byte* resolved);
    [DllImport(L)] public static extern void free(void* p);
    [DllImport(L, SetLastError = true)] public static extern int statx(int dirfd, byte* path, int flags, uint mask, byte* buf);

    public const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000;
    public const uint STATX_TYPE = 1;

    /// <summary>realpath(3): the canonical absolute path, or null with errno set.</summary>
    public static string? RealPath(string path)
    {
        byte* c = CString(path);
        byte* r = realpath(c, null);
        NativeMemory.Free(c);
        if (r == null) return null;
        string s = Marshal.PtrToStringUTF8((nint)r)!;
        free(r);
        return s;
    }

    /// <summary>The file type bits (S_IFMT) of a path, following links; 0 with errno set on failure.</summary>
    public static uint FileType(string path)
    {
        byte* c = CString(path);
        byte* buf = stackalloc byte[256];
        int rc = statx(AT_FDCWD, c, 0, STATX_TYPE, buf);
        NativeMemory.Free(c);
        return rc == 0 ? *(ushort*)(buf + 28) & S_IFMT : 0;
    }

    /// <summary>libc <c>syscall()</c> with six integer arguments; no SetLastError, safe after fork.</summary>
    [DllImport(L, EntryPoint = "syscall")] public static extern long RawSyscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

    [DllImport(L, EntryPoint = "__errno_location")] public static extern int* ErrnoLocation();

    /// <summary>Marshal.GetLastPInvokeError() for the SetLastError imports above.</summary>
    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>A raw syscall with libc's convention (-1 and errno); returns the result or -errno.</summary>
    public static long Raw(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
    {
        long r = RawSyscall(nr, a1, a2, a3, a4, a5, a6);
        return r == -1 ? -*ErrnoLocation() : r;
    }

    /// <summary>Linux makedev() for the (major, minor) pairs the jailer uses.</summary>
    public static ulong MakeDev(uint major, uint minor) =>
        ((ulong)(major & 0xfff) << 8) | ((ulong)(major & ~0xfffu) << 32) | (minor & 0xffu) | ((ulong)(minor & ~0xffu) << 12);

    /// <summary>A time from clock_gettime in microseconds.</summary>
    public static ulong NowUs(int clock)
    {
        TimeSpec ts;
        clock_gettime(clock, &ts);
        return (ulong)ts.Sec * 1_000_000UL + (ulong)ts.NSec / 1000UL;
    }

    /// <summary>A NUL-terminated UTF-8 copy of <paramref name="s"/> in unmanaged memory (never freed: the jailer
    /// execs soon, and the child side of a fork must not touch the managed heap).</summary>
    public static byte* CString(string s)
    {
        int n = System.Text.Encoding.UTF8.GetByteCount(s);
        byte* p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        System.Text.Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
        p[n] = 0;
        return p;
    }

    /// <summary>A NULL-terminated array of C strings in unmanaged memory.</summary>
    public static byte** CStringArray(IReadOnlyList<string> items)
    {
        byte** a = (byte**)NativeMemory.AllocZeroed((nuint)(items.Count + 1), (nuint)sizeof(nint));
        for (int i = 0; i < items.Count; i++) a[i] = CString(items[i]);
        return a;
    }
}

[StructLayout(LayoutKind.Sequential)]
public struct RLimit { public ulong Cur; public ulong Max; }

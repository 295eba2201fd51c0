using System.Runtime.InteropServices;

namespace Flint.Bench.Harness;

/// <summary>The few libc calls the harness needs: posix_spawn with fd redirections, wait4 with rusage, kill.</summary>
internal static unsafe partial class Native
{
    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CLOEXEC = 0x80000;
    public const int WNOHANG = 1;
    public const int SIGKILL = 9, SIGTERM = 15;

    [StructLayout(LayoutKind.Sequential)]
    public struct Timeval { public long Sec, Usec; public readonly double Ms => Sec * 1e3 + Usec / 1e3; }

    [StructLayout(LayoutKind.Sequential)]
    public struct Rusage
    {
        public Timeval Utime, Stime;
        public long MaxRss, IxRss, IdRss, IsRss, MinFlt, MajFlt, NSwap, InBlock, OuBlock, MsgSnd, MsgRcv, NSignals, NVcsw, NIvcsw;
    }

    [LibraryImport("libc", SetLastError = true)]
    public static partial int posix_spawn_file_actions_init(void* fa);
    [LibraryImport("libc", SetLastError = true)]
    public static partial int posix_spawn_file_actions_destroy(void* fa);
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn_file_actions_addopen(void* fa, int fd, string path, int oflag, int mode);
    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_adddup2(void* fa, int fd, int newfd);
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn(out int pid, string path, void* fileActions, void* attr, nint* argv, nint* envp);
    [LibraryImport("libc", SetLastError = true)]
    public static partial int wait4(int pid, out int status, int options, out Rusage rusage);
    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);
    [LibraryImport("libc", SetLastError = true)]
    public static partial int pipe2(int* fds, int flags);
    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);
    [LibraryImport("libc")]
    public static partial int usleep(uint usec);
    [LibraryImport("libc")]
    public static partial long sysconf(int name);
    public const int _SC_CLK_TCK = 2;
}

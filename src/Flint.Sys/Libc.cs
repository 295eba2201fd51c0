using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// The libc calls Flint makes outside KVM itself: files, memory mappings, eventfd, epoll, timerfd.
/// Blittable signatures only, so NativeAOT emits direct calls with no marshalling stubs.
/// </summary>
// SAFETY: P/Invoke declarations only; callers pass pinned or stack buffers with their lengths.
public static unsafe class Libc
{
    private const string L = "libc";

    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_TRUNC = 0x200,
        O_APPEND = 0x400, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    public const int PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
    public const int MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000,
        MAP_HUGETLB = 0x40000, MAP_HUGE_2MB = 21 << 26;
    public const int MADV_DONTNEED = 4, MADV_REMOVE = 9, MADV_DONTDUMP = 16, MADV_HUGEPAGE = 14;
    /// <summary>memfd_create flags (vhost-user guest RAM) and the fcntl commands used on sockets.</summary>
    public const uint MFD_CLOEXEC = 1;
    public const int F_GETFL = 3, F_SETFL = 4;
    /// <summary>lseek whence values; SEEK_DATA/SEEK_HOLE walk a sparse file's written extents.</summary>
    public const int SEEK_SET = 0, SEEK_CUR = 1, SEEK_END = 2, SEEK_DATA = 3, SEEK_HOLE = 4;
    public const int EFD_NONBLOCK = 0x800, EFD_CLOEXEC = 0x80000;
    public const int EPOLL_CLOEXEC = 0x80000;
    public const int EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 1, EPOLLOUT = 4, EPOLLERR = 8, EPOLLHUP = 0x10;
    public const int CLOCK_MONOTONIC = 1;
    public const int TFD_NONBLOCK = 0x800, TFD_CLOEXEC = 0x80000;
    public const int EINTR = 4, EAGAIN = 11, ENOENT = 2, EBADF = 9, ENOTTY = 25;
    public const int EPERM = 1, ENXIO = 6, EACCES = 13, ENODEV = 19, EISDIR = 21;
    public static readonly nint MAP_FAILED = -1;

    [DllImport(L, SetLastError = true)] public static extern int open(byte* path, int flags, int mode);
    [DllImport(L, SetLastError = true)] public static extern int close(int fd);
    [DllImport(L, SetLastError = true)] public static extern nint read(int fd, void* buf, nuint count);
    [DllImport(L, SetLastError = true)] public static extern nint write(int fd, void* buf, nuint count);
    [DllImport(L, SetLastError = true)] public static extern nint readv(int fd, IoVec* iov, int iovcnt);
    [DllImport(L, SetLastError = true)] public static extern nint writev(int fd, IoVec* iov, int iovcnt);
    [DllImport(L, SetLastError = true)] public static extern nint pread(int fd, void* buf, nuint count, long offset);
    [DllImport(L, SetLastError = true)] public static extern nint pwrite(int fd, void* buf, nuint count, long offset);
    [DllImport(L, SetLastError = true)] public static extern int fsync(int fd);
    [DllImport(L, SetLastError = true)] public static extern int fdatasync(int fd);
    [DllImport(L, SetLastError = true)] public static extern long lseek(int fd, long offset, int whence);
    [DllImport(L, SetLastError = true)] public static extern int ioctl(int fd, nuint request, void* arg);
    [DllImport(L, SetLastError = true)] public static extern void* mmap(void* addr, nuint length, int prot, int flags, int fd, long offset);
    [DllImport(L, SetLastError = true)] public static extern int munmap(void* addr, nuint length);
    [DllImport(L, SetLastError = true)] public static extern int mprotect(void* addr, nuint length, int prot);
    [DllImport(L, SetLastError = true)] public static extern int madvise(void* addr, nuint length, int advice);
    /// <summary>msync flags: MS_SYNC waits until the dirty pages of a shared file mapping are on the file.</summary>
    public const int MS_ASYNC = 1, MS_INVALIDATE = 2, MS_SYNC = 4;
    [DllImport(L, SetLastError = true)] public static extern int msync(void* addr, nuint length, int flags);
    [DllImport(L, SetLastError = true)] public static extern int mincore(void* addr, nuint length, byte* vec);
    /// <summary>An entry of the auxiliary vector the kernel gave the process (0 when absent); no error to read.</summary>
    [DllImport(L)] public static extern nuint getauxval(ulong type);
    /// <summary>A relative timeout for <see cref="futex"/> (struct timespec).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Timespec { public long Seconds; public long Nanoseconds; }
    /// <summary>futex(2) through syscall(2) (glibc has no wrapper): wait and wake only, relative timeout.</summary>
    public static int futex(int* word, int op, int value, Timespec* timeout) => (int)futex_syscall(202, word, op, value, timeout);
    [DllImport(L, EntryPoint = "syscall", SetLastError = true)] private static extern long futex_syscall(long number, int* word, int op, int value, Timespec* timeout);

    /// <summary>
    /// How many pages of [addr, addr+length) are resident (mincore). For tests and diagnostics that check memory was
    /// really given back to the host; not used on any VMM thread (no seccomp filter allows it). -1 on failure.
    /// </summary>
    public static long ResidentPages(void* addr, ulong length)
    {
        ulong pages = (length + 4095) / 4096;
        var vec = new byte[pages];
        fixed (byte* v = vec)
        {
            // SAFETY: vec holds one byte per page of the range, as mincore writes; addr is the caller's mapping.
            if (mincore(addr, (nuint)length, v) < 0) return -1;
        }
        long n = 0;
        foreach (byte b in vec) n += b & 1;
        return n;
    }
    [DllImport(L, SetLastError = true)] public static extern int ftruncate(int fd, long length);
    [DllImport(L, SetLastError = true)] public static extern int memfd_create(byte* name, uint flags);
    /// <summary>fcntl with an int argument (F_GETFL/F_SETFL); the variadic int passes in the same register on x86-64.</summary>
    [DllImport(L, SetLastError = true)] public static extern int fcntl(int fd, int cmd, int arg);
    [DllImport(L, SetLastError = true)] public static extern int eventfd(uint initval, int flags);
    [DllImport(L, SetLastError = true)] public static extern int epoll_create1(int flags);
    [DllImport(L, SetLastError = true)] public static extern int epoll_ctl(int epfd, int op, int fd, EpollEvent* ev);
    [DllImport(L, SetLastError = true)] public static extern int epoll_wait(int epfd, EpollEvent* events, int maxevents, int timeout);
    [DllImport(L, SetLastError = true)] public static extern int timerfd_create(int clockid, int flags);
    [DllImport(L, SetLastError = true)] public static extern int timerfd_settime(int fd, int flags, ITimerSpec* newValue, ITimerSpec* oldValue);
    [DllImport(L, SetLastError = true)] public static extern int getpid();
    [DllImport(L, SetLastError = true)] public static extern int kill(int pid, int sig);
    [DllImport(L, SetLastError = true)] public static extern int gettid();
    [DllImport(L)] public static extern byte* strerror(int errnum);
    [DllImport(L, SetLastError = true)] public static extern nint getrandom(void* buf, nuint len, uint flags);
    /// <summary>struct stat is 144 bytes on x86_64, 128 on arm64: pass at least 256. Needs glibc 2.33+ (older ones export only __fxstat).</summary>
    [DllImport(L, SetLastError = true)] public static extern int fstat(int fd, byte* statBuf);
    /// <summary>posix_fadvise returns the error number itself (0 on success), not -1 and errno.</summary>
    [DllImport(L)] public static extern int posix_fadvise(int fd, long offset, long len, int advice);
    public const int POSIX_FADV_DONTNEED = 4;

    /// <summary>
    /// ioctl with an integer third argument (KVM_RUN's 0, a flag word). The same call as <see cref="ioctl"/>: the
    /// variadic argument travels in one register either way, so it is one declaration, not two; errno is kept.
    /// </summary>
    public static int ioctl_val(int fd, nuint request, nuint arg) => ioctl(fd, request, (void*)arg);

    /// <summary><paramref name="n"/> bytes from the kernel's CSPRNG (getrandom(2); blocks only before the pool is seeded).</summary>
    public static byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        fixed (byte* p = b)
        {
            for (int got = 0; got < n;)
            {
                nint r = getrandom(p + got, (nuint)(n - got), 0);
                if (r < 0) { if (Errno == EINTR) continue; throw SysException.Last("getrandom"); }
                got += (int)r;
            }
        }
        return b;
    }

    /// <summary>
    /// Fills [p, p+len) from getrandom(2), retrying short reads and EINTR; false on any other error. For guest
    /// buffers (virtio-rng), where the caller holds a host pointer and must not allocate.
    /// </summary>
    public static bool FillRandom(byte* p, ulong len)
    {
        while (len > 0)
        {
            nint n = getrandom(p, (nuint)len, 0);
            if (n < 0)
            {
                if (Errno == EINTR) continue;
                return false;
            }
            if (n == 0) return false;
            p += n;
            len -= (ulong)n;
        }
        return true;
    }

    /// <summary>_exit(2): ends the process at once (exit_group), running no atexit handlers or runtime shutdown.</summary>
    [DllImport(L, EntryPoint = "_exit")] public static extern void ExitNow(int status);

    public static int Errno => Marshal.GetLastPInvokeError();

    public static string StrError(int errno) => Marshal.PtrToStringUTF8((nint)strerror(errno)) ?? $"errno {errno}";

    /// <summary>Opens a path given as a .NET string; returns the fd or -1 with errno set.</summary>
    public static int Open(string path, int flags, int mode = 0)
    {
        int n = System.Text.Encoding.UTF8.GetByteCount(path);
        Span<byte> buf = n < 1024 ? stackalloc byte[n + 1] : new byte[n + 1];
        System.Text.Encoding.UTF8.GetBytes(path, buf);
        buf[n] = 0;
        fixed (byte* p = buf) return open(p, flags | O_CLOEXEC, mode);
    }
}

[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct EpollEvent
{
    public uint Events;
    public ulong Data;
}

[StructLayout(LayoutKind.Sequential)]
public struct TimeSpec { public long Sec; public long NSec; }

[StructLayout(LayoutKind.Sequential)]
public struct ITimerSpec { public TimeSpec Interval; public TimeSpec Value; }

using System.Runtime.CompilerServices;

namespace Flint.Sys;

/// <summary>How to obtain a userfaultfd.</summary>
public enum UffdSource
{
    /// <summary>The userfaultfd(2) syscall; /dev/userfaultfd when the kernel denies it (EPERM: no CAP_SYS_PTRACE
    /// and vm.unprivileged_userfaultfd=0, as in a jail; ENOSYS).</summary>
    SyscallThenDevice,
    /// <summary>/dev/userfaultfd only: for a thread whose seccomp filter traps the syscall (Flint's process baseline).</summary>
    DeviceOnly,
}

/// <summary>
/// userfaultfd(2): create one (syscall or /dev/userfaultfd), the API handshake, register/unregister ranges, and the
/// handler's side (read events, UFFDIO_COPY, UFFDIO_ZEROPAGE). Failures throw <see cref="SysException"/> except on the
/// handler's hot path (<see cref="Copy"/>, <see cref="ZeroPage"/>, <see cref="ReadEvent"/>), which returns -errno so a
/// busy handler allocates nothing.
/// </summary>
// SAFETY: ioctls get stack structs; UFFDIO_COPY sources are mapped pages of the snapshot file, bounds-checked by the caller.
public static unsafe class Userfaultfd
{
    public const string DevicePath = "/dev/userfaultfd";

    /// <summary>
    /// A new userfaultfd with <paramref name="flags"/> (O_CLOEXEC, O_NONBLOCK), able to take kernel-mode faults too
    /// (KVM touches guest memory from the kernel: no UFFD_USER_MODE_ONLY), as Firecracker creates it.
    /// </summary>
    public static int Open(int flags, UffdSource source)
    {
        int syscallErrno = 0;
        if (source == UffdSource.SyscallThenDevice)
        {
            long fd = SeccompLibc.syscall(UffdAbi.SysUserfaultfd, flags, 0, null);
            if (fd >= 0) return (int)fd;
            syscallErrno = Libc.Errno;
            if (syscallErrno is not (Libc.EPERM or UffdAbi.ENOSYS)) throw new SysException("userfaultfd", syscallErrno);
        }
        int dev = Libc.Open(DevicePath, Libc.O_RDWR);
        if (dev < 0)
        {
            int e = Libc.Errno;
            string why = source == UffdSource.DeviceOnly
                ? "the userfaultfd syscall is refused by this thread's seccomp filter, and Linux 6.1+ is needed for the device"
                : $"the userfaultfd syscall failed too ({Libc.StrError(syscallErrno)})";
            throw new SysException($"open {DevicePath}", e, why);
        }
        try
        {
            int fd = Libc.ioctl_val(dev, UffdAbi.USERFAULTFD_IOC_NEW, (nuint)flags);
            if (fd < 0) throw SysException.Last("USERFAULTFD_IOC_NEW");
            return fd;
        }
        finally { Libc.close(dev); }
    }

    /// <summary>UFFDIO_API: the handshake (once per userfaultfd), requiring <paramref name="features"/>; returns the ioctls it offers.</summary>
    public static ulong Handshake(int uffd, ulong features)
    {
        // SAFETY (here and below): each ioctl gets a pointer to a local struct of exactly the size its number encodes.
        var api = new UffdioApi { Api = UffdAbi.Api, Features = features };
        if (Libc.ioctl(uffd, UffdAbi.UFFDIO_API, &api) < 0) throw SysException.Last("UFFDIO_API");
        if ((api.Features & features) != features)
            throw new SysException("UFFDIO_API", UffdAbi.EINVAL, $"the kernel lacks the features 0x{features & ~api.Features:x}");
        return api.Ioctls;
    }

    /// <summary>UFFDIO_REGISTER of [addr, addr+len) in <paramref name="mode"/> (missing pages).</summary>
    public static void Register(int uffd, ulong addr, ulong len, ulong mode = UffdAbi.RegisterModeMissing)
    {
        var reg = new UffdioRegister { Range = new UffdioRange { Start = addr, Len = len }, Mode = mode };
        if (Libc.ioctl(uffd, UffdAbi.UFFDIO_REGISTER, &reg) < 0) throw SysException.Last("UFFDIO_REGISTER");
    }

    /// <summary>UFFDIO_UNREGISTER; 0 or -errno (a handler that unregisters what the balloon removed goes on either way).</summary>
    public static int Unregister(int uffd, ulong addr, ulong len)
    {
        var r = new UffdioRange { Start = addr, Len = len };
        return Libc.ioctl(uffd, UffdAbi.UFFDIO_UNREGISTER, &r) < 0 ? -Libc.Errno : 0;
    }

    /// <summary>
    /// UFFDIO_COPY of <paramref name="len"/> bytes from <paramref name="src"/> to the faulting range at
    /// <paramref name="dst"/>, waking the faulting threads. Returns the bytes copied, or -errno: -EEXIST (the page is
    /// there already: someone else served it), -EAGAIN (a non-cooperative event, e.g. a remove, is pending: read
    /// events, then retry), others.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Copy(int uffd, ulong dst, void* src, ulong len)
    {
        var c = new UffdioCopy { Dst = dst, Src = (ulong)src, Len = len };
        while (true)
        {
            if (Libc.ioctl(uffd, UffdAbi.UFFDIO_COPY, &c) == 0) return c.Copy;
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            // A partial copy reports what it did in c.Copy (positive); the rest is retried by the caller's next fault.
            return c.Copy > 0 ? c.Copy : -e;
        }
    }

    /// <summary>
    /// UFFDIO_ZEROPAGE: maps the kernel's shared zero page over the faulting range at <paramref name="dst"/> (no page
    /// is allocated or copied until the guest writes there), waking the faulting threads. Returns the bytes mapped, or
    /// -errno as <see cref="Copy"/> does; -EINVAL where the memory type has no zero page (hugetlbfs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long ZeroPage(int uffd, ulong dst, ulong len)
    {
        var z = new UffdioZeropage { Range = new UffdioRange { Start = dst, Len = len } };
        while (true)
        {
            if (Libc.ioctl(uffd, UffdAbi.UFFDIO_ZEROPAGE, &z) == 0) return z.Zeropage;
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            return z.Zeropage > 0 ? z.Zeropage : -e;
        }
    }

    /// <summary>UFFDIO_WAKE: wakes threads waiting on [addr, addr+len) (after an EEXIST copy, whose caller may sleep on it).</summary>
    public static void Wake(int uffd, ulong addr, ulong len)
    {
        var r = new UffdioRange { Start = addr, Len = len };
        Libc.ioctl(uffd, UffdAbi.UFFDIO_WAKE, &r);
    }

    /// <summary>Reads one event from a non-blocking userfaultfd: 1 (read), 0 (none pending), -errno.</summary>
    public static int ReadEvent(int uffd, out UffdMsg msg)
    {
        msg = default;
        while (true)
        {
            fixed (UffdMsg* m = &msg)
            {
                nint n = Libc.read(uffd, m, (nuint)sizeof(UffdMsg));
                if (n == sizeof(UffdMsg)) return 1;
                if (n >= 0) return -UffdAbi.EINVAL;
            }
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            return e == Libc.EAGAIN ? 0 : -e;
        }
    }
}

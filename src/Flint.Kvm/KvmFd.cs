using Flint.Sys;

namespace Flint.Kvm;

/// <summary>Shared plumbing for the three fd kinds: an owned fd and checked ioctl calls.</summary>
// SAFETY: ioctl gets pointers to the caller's stack structs, whose layouts match the kernel's (StructLayoutTests).
public abstract unsafe class KvmFd : IDisposable
{
    public int Fd { get; private set; }

    protected KvmFd(int fd) => Fd = fd;

    protected int Ioctl(nuint request, void* arg, string name)
    {
        int r;
        do r = Libc.ioctl(Fd, request, arg); while (r < 0 && Libc.Errno == Libc.EINTR);
        if (r < 0) throw KvmException.Last(name);
        return r;
    }

    protected int IoctlVal(nuint request, nuint arg, string name)
    {
        int r;
        do r = Libc.ioctl_val(Fd, request, arg); while (r < 0 && Libc.Errno == Libc.EINTR);
        if (r < 0) throw KvmException.Last(name);
        return r;
    }

    public virtual void Dispose()
    {
        if (Fd >= 0) { Libc.close(Fd); Fd = -1; }
        GC.SuppressFinalize(this);
    }
}

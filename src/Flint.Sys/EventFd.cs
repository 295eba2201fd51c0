namespace Flint.Sys;

/// <summary>A Linux eventfd: the doorbell between KVM (irqfd/ioeventfd), the event loop and device threads.</summary>
// SAFETY: read/write get the address of an 8-byte local, as eventfd requires.
public sealed unsafe class EventFd : IDisposable
{
    public int Fd { get; private set; }

    public EventFd(bool nonBlocking = true)
    {
        Fd = Libc.eventfd(0, Libc.EFD_CLOEXEC | (nonBlocking ? Libc.EFD_NONBLOCK : 0));
        if (Fd < 0) throw SysException.Last("eventfd");
    }

    /// <summary>Adds <paramref name="value"/> to the counter, waking any reader.</summary>
    public void Write(ulong value = 1)
    {
        ulong v = value;
        while (Libc.write(Fd, &v, 8) < 0)
        {
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            if (e == Libc.EAGAIN) return; // counter saturated: the reader has a wake-up pending anyway
            throw new SysException("eventfd write", e);
        }
    }

    /// <summary>Reads and resets the counter; 0 when nothing was pending (non-blocking fd).</summary>
    public ulong Read()
    {
        ulong v = 0;
        while (Libc.read(Fd, &v, 8) < 0)
        {
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            if (e == Libc.EAGAIN) return 0;
            throw new SysException("eventfd read", e);
        }
        return v;
    }

    public void Dispose()
    {
        if (Fd >= 0) { Libc.close(Fd); Fd = -1; }
    }
}

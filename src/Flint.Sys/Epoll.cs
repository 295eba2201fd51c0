namespace Flint.Sys;

/// <summary>An epoll instance; the token registered with each fd comes back in <see cref="EpollEvent.Data"/>.</summary>
// SAFETY: epoll_ctl/epoll_wait get a stack event or the caller's pinned event span with its length.
public sealed unsafe class Epoll : IDisposable
{
    public int Fd { get; private set; }

    public Epoll()
    {
        Fd = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (Fd < 0) throw SysException.Last("epoll_create1");
    }

    public void Add(int fd, ulong token, uint events = Libc.EPOLLIN) => Ctl(Libc.EPOLL_CTL_ADD, fd, token, events);
    public void Modify(int fd, ulong token, uint events) => Ctl(Libc.EPOLL_CTL_MOD, fd, token, events);
    public void Remove(int fd) => Ctl(Libc.EPOLL_CTL_DEL, fd, 0, 0);

    private void Ctl(int op, int fd, ulong token, uint events)
    {
        var ev = new EpollEvent { Events = events, Data = token };
        if (Libc.epoll_ctl(Fd, op, fd, &ev) < 0) throw SysException.Last("epoll_ctl");
    }

    /// <summary>Waits for events; returns how many were written into <paramref name="events"/> (0 on timeout or EINTR).</summary>
    public int Wait(Span<EpollEvent> events, int timeoutMs)
    {
        fixed (EpollEvent* p = events)
        {
            int n = Libc.epoll_wait(Fd, p, events.Length, timeoutMs);
            if (n < 0)
            {
                if (Libc.Errno == Libc.EINTR) return 0;
                throw SysException.Last("epoll_wait");
            }
            return n;
        }
    }

    public void Dispose()
    {
        if (Fd >= 0) { Libc.close(Fd); Fd = -1; }
    }
}

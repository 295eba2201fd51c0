namespace Flint.Sys;

/// <summary>A monotonic timerfd, polled by the event loop (metrics flushes, rate limiter re-arm).</summary>
// SAFETY: read/timerfd_settime get pointers to locals on the stack, sized as the kernel expects.
public sealed unsafe class TimerFd : IDisposable
{
    public int Fd { get; private set; }

    public TimerFd()
    {
        Fd = Libc.timerfd_create(Libc.CLOCK_MONOTONIC, Libc.TFD_NONBLOCK | Libc.TFD_CLOEXEC);
        if (Fd < 0) throw SysException.Last("timerfd_create");
    }

    /// <summary>Arms the timer; zero disarms. A non-zero period makes it repeat.</summary>
    public void Arm(TimeSpan first, TimeSpan period = default)
    {
        var spec = new ITimerSpec { Value = ToSpec(first), Interval = ToSpec(period) };
        if (Libc.timerfd_settime(Fd, 0, &spec, null) < 0) throw SysException.Last("timerfd_settime");
    }

    /// <summary>Consumes the expiry count so the fd stops polling readable.</summary>
    public ulong Read()
    {
        ulong v = 0;
        return Libc.read(Fd, &v, 8) == 8 ? v : 0;
    }

    private static TimeSpec ToSpec(TimeSpan t)
    {
        long ns = t.Ticks * 100;
        return new TimeSpec { Sec = ns / 1_000_000_000, NSec = ns % 1_000_000_000 };
    }

    public void Dispose()
    {
        if (Fd >= 0) { Libc.close(Fd); Fd = -1; }
    }
}

namespace Flint.Sys;

/// <summary>
/// The process's CPU time (all threads) from clock_gettime(CLOCK_PROCESS_CPUTIME_ID). Used instead of
/// Process.TotalProcessorTime, which calls getrusage: the boot timer reads it on a vCPU thread, whose seccomp filter
/// allows clock_gettime but not getrusage (seen killing the VMM on a KVM host).
/// </summary>
// SAFETY: clock_gettime writes one timespec into a local on the stack.
public static unsafe class ProcessClock
{
    private const int CLOCK_PROCESS_CPUTIME_ID = 2;

    public static TimeSpan CpuTime()
    {
        TimeSpec ts;
        if (JailerLibc.clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return TimeSpan.Zero;
        return TimeSpan.FromTicks(ts.Sec * TimeSpan.TicksPerSecond + ts.NSec / 100);
    }
}

using Flint.Sys;

namespace Flint.Seccomp;

/// <summary>Seccomp counters for the metrics writer (<c>seccomp.num_faults</c>).</summary>
public static class SeccompMetrics
{
    /// <summary>Bad syscalls intercepted so far. The process exits on the first; the final metrics flush on fatal signals
    /// (<see cref="FatalSignals.SetNotifyFd"/>) is where this shows as 1.</summary>
    public static long NumFaults => FatalSignals.Count(FatalSignals.SIGSYS);
}

/// <summary>
/// The process-wide SIGSYS handler for the filters' <c>"trap"</c> action: logs
/// <c>Shutting down VM after intercepting a bad syscall (N)</c> (N = si_syscall), counts it, has the metrics flushed and
/// exits 148. It is one of the native handlers in <see cref="FatalSignals"/>, which says why they are machine code.
/// </summary>
public static class SigsysHandler
{
    public const int ExitCode = 148;
    public const int SIGSYS = FatalSignals.SIGSYS;

    /// <summary>Installs the SIGSYS handler for the whole process (idempotent). Call it before the first filter goes on.</summary>
    public static void Install() => FatalSignals.Install(SIGSYS);
}

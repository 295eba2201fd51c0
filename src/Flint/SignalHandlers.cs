using Flint.Sys;
using Flint.Vmm;
using Flint.Vmm.Metrics;

namespace Flint;

/// <summary>
/// Firecracker's process signal policy. SIGPIPE gets a native counting handler and is otherwise ignored (a closed API
/// peer or FIFO must not kill the VMM). SIGSYS (148), SIGBUS (149), SIGSEGV (150), SIGILL (157), SIGXFSZ (151),
/// SIGXCPU (154) and SIGHUP (156) get the native handlers of <see cref="FatalSignals"/>, which log and count in signal
/// context and then make <see cref="FatalEventFd"/> readable. Both the API thread and the main thread's event loop
/// watch it: whichever is not the thread that took the signal runs <see cref="OnFatalSignal"/>, which flushes the
/// metrics and exits with the code. The handler exits by itself after 2 s if neither could (no API and the main thread
/// took it, or the runtime is stuck behind the faulting thread).
/// <para>
/// No thread of its own, and no runtime one: .NET's PosixSignalRegistration (used here before) starts a ".NET
/// SigHandler" thread and runs the handlers on thread-pool workers, threads that would exist outside any role's
/// seccomp filter; and its handler returned, so a write past RLIMIT_FSIZE went on to fail with EFBIG, an unhandled
/// IOException and exit 134 instead of SIGXFSZ's 151. A watcher thread of ours cost about 1.4 ms of start-up CPU.
/// </para>
/// </summary>
// SAFETY: the SIGPIPE counter is native memory allocated once for the process life (a signal handler may not touch managed objects).
internal sealed unsafe class SignalHandlers
{
    private const int SIGPIPE = 13;

    private readonly long* _sigpipe;
    private readonly EventFd _fatal = new();
    private readonly Action _flushMetrics;
    private int _exiting;

    /// <summary>Readable once a native fatal-signal handler has run; watchers call <see cref="OnFatalSignal"/>.</summary>
    public int FatalEventFd => _fatal.Fd;

    public SignalHandlers(MetricsRegistry metrics, Action flushMetrics)
    {
        _flushMetrics = flushMetrics;
        foreach (var (signo, name) in new[]
                 {
                     (FatalSignals.SIGBUS, "sigbus"), (FatalSignals.SIGSEGV, "sigsegv"), (FatalSignals.SIGILL, "sigill"),
                     (FatalSignals.SIGHUP, "sighup"), (FatalSignals.SIGXCPU, "sigxcpu"), (FatalSignals.SIGXFSZ, "sigxfsz"),
                 })
        {
            FatalSignals.Install(signo);
            // Firecracker stores 1 (the process exits on the first); a second SIGXFSZ from the final flush counts 2.
            metrics.Bind("signals", name, () => Math.Min(1, FatalSignals.Count(signo)));
        }
        FatalSignals.SetNotifyFd(_fatal.Fd);
        _sigpipe = Flint.Sys.Signals.InstallCountingHandler(SIGPIPE);
        metrics.Bind("signals", "sigpipe", () => Interlocked.Read(ref *_sigpipe));
    }

    /// <summary>A watcher saw <see cref="FatalEventFd"/> readable: flush the metrics and exit with the signal's code.
    /// The first watcher does it; a second one parks until the process is gone.</summary>
    public void OnFatalSignal()
    {
        if (Interlocked.Exchange(ref _exiting, 1) == 1) Thread.Sleep(Timeout.Infinite);
        try { _flushMetrics(); } catch (Exception) { /* exiting anyway */ }
        Libc.ExitNow(FatalSignals.FiredExitCode() ?? ExitCodes.GenericError);
    }
}

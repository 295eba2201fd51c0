using System.Runtime.InteropServices;
using Flint.Sys;
using Flint.Vmm;
using Flint.Vmm.Logging;
using Flint.Vmm.Metrics;

namespace Flint;

/// <summary>
/// Firecracker's process signal policy. SIGXFSZ, SIGXCPU and SIGHUP log, count, flush metrics and exit with their
/// codes (151, 154, 156) through the runtime's PosixSignalRegistration, so their handlers run as managed code off the
/// signal context. SIGPIPE gets a native counting handler and is otherwise ignored (a closed API peer or FIFO must not
/// kill the VMM). SIGSYS (148), SIGBUS (149), SIGSEGV (150) and SIGILL (157) get the native handlers of
/// <see cref="FatalSignals"/>, which log and count in signal context and then make <see cref="FatalEventFd"/> readable.
/// Both the API thread and the main thread's event loop watch it: whichever is not the thread that took the signal
/// runs <see cref="OnFatalSignal"/>, which flushes the metrics and exits with the code. The handler exits by itself
/// after 2 s if neither could (no API and the main thread took it, or the runtime is stuck behind the faulting thread).
/// No thread of its own: a watcher thread cost about 1.4 ms of start-up CPU.
/// </summary>
internal sealed unsafe class SignalHandlers : IDisposable
{
    private const int SIGHUP = 1, SIGPIPE = 13, SIGXCPU = 24, SIGXFSZ = 25;

    private readonly List<PosixSignalRegistration> _registrations = [];
    private long _sighup, _sigxcpu, _sigxfsz;
    private readonly long* _sigpipe;
    private readonly EventFd _fatal = new();
    private readonly Action _flushMetrics;
    private int _exiting;

    /// <summary>Readable once a native fatal-signal handler has run; watchers call <see cref="OnFatalSignal"/>.</summary>
    public int FatalEventFd => _fatal.Fd;

    public SignalHandlers(MetricsRegistry metrics, Action flushMetrics)
    {
        _flushMetrics = flushMetrics;
        foreach (int signo in new[] { FatalSignals.SIGBUS, FatalSignals.SIGSEGV, FatalSignals.SIGILL })
            FatalSignals.Install(signo);
        metrics.Bind("signals", "sigbus", () => FatalSignals.Count(FatalSignals.SIGBUS));
        metrics.Bind("signals", "sigsegv", () => FatalSignals.Count(FatalSignals.SIGSEGV));
        metrics.Bind("signals", "sigill", () => FatalSignals.Count(FatalSignals.SIGILL));
        FatalSignals.SetNotifyFd(_fatal.Fd);

        metrics.Bind("signals", "sighup", () => Interlocked.Read(ref _sighup));
        _sigpipe = Flint.Sys.Signals.InstallCountingHandler(SIGPIPE);
        metrics.Bind("signals", "sigpipe", () => Interlocked.Read(ref *_sigpipe));
        metrics.Bind("signals", "sigxcpu", () => Interlocked.Read(ref _sigxcpu));
        metrics.Bind("signals", "sigxfsz", () => Interlocked.Read(ref _sigxfsz));

        Fatal(SIGXFSZ, ExitCodes.SigXfsz, () => Interlocked.Increment(ref _sigxfsz), flushMetrics);
        Fatal(SIGXCPU, ExitCodes.SigXcpu, () => Interlocked.Increment(ref _sigxcpu), flushMetrics);
        Fatal(SIGHUP, ExitCodes.SigHup, () => Interlocked.Increment(ref _sighup), flushMetrics);
    }

    private void Fatal(int signo, int exitCode, Action count, Action flushMetrics)
    {
        _registrations.Add(PosixSignalRegistration.Create((PosixSignal)signo, ctx =>
        {
            ctx.Cancel = true;
            count();
            Logger.Error($"Shutting down VM after intercepting signal {signo}, code 0.");
            try { flushMetrics(); } catch (Exception) { /* exiting anyway */ }
            Environment.Exit(exitCode);
        }));
    }

    /// <summary>A watcher saw <see cref="FatalEventFd"/> readable: flush the metrics and exit with the signal's code.
    /// The first watcher does it; a second one parks until the process is gone.</summary>
    public void OnFatalSignal()
    {
        if (Interlocked.Exchange(ref _exiting, 1) == 1) Thread.Sleep(Timeout.Infinite);
        try { _flushMetrics(); } catch (Exception) { /* exiting anyway */ }
        Libc.ExitNow(FatalSignals.FiredExitCode() ?? ExitCodes.GenericError);
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
    }
}

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
/// <see cref="FatalSignals"/>, which log and count in signal context and then wake the watcher thread started here: it
/// flushes the metrics and exits with the signal's code (the handler exits by itself if that takes over 2 s, as it can
/// when the faulting thread holds the runtime in cooperative mode).
/// </summary>
internal sealed unsafe class SignalHandlers : IDisposable
{
    private const int SIGHUP = 1, SIGPIPE = 13, SIGXCPU = 24, SIGXFSZ = 25;
    private const int WatcherStackSize = 256 * 1024;

    private readonly List<PosixSignalRegistration> _registrations = [];
    private long _sighup, _sigxcpu, _sigxfsz;
    private readonly long* _sigpipe;
    private readonly EventFd _fatal = new(nonBlocking: false);

    /// <param name="filterWatcher">Run by the watcher thread on itself before it waits (installs its seccomp filter).</param>
    public SignalHandlers(MetricsRegistry metrics, Action flushMetrics, Action filterWatcher)
    {
        foreach (int signo in new[] { FatalSignals.SIGBUS, FatalSignals.SIGSEGV, FatalSignals.SIGILL })
            FatalSignals.Install(signo);
        metrics.Bind("signals", "sigbus", () => FatalSignals.Count(FatalSignals.SIGBUS));
        metrics.Bind("signals", "sigsegv", () => FatalSignals.Count(FatalSignals.SIGSEGV));
        metrics.Bind("signals", "sigill", () => FatalSignals.Count(FatalSignals.SIGILL));
        FatalSignals.SetNotifyFd(_fatal.Fd);
        new Thread(() => WatchFatalSignals(flushMetrics, filterWatcher), WatcherStackSize) { Name = "fc_sigwatch", IsBackground = true }.Start();

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

    /// <summary>Waits for a native fatal-signal handler's wake-up, then flushes the metrics and exits with its code.</summary>
    private void WatchFatalSignals(Action flushMetrics, Action filterWatcher)
    {
        filterWatcher();
        _fatal.Read();
        try { flushMetrics(); } catch (Exception) { /* exiting anyway */ }
        Libc.ExitNow(FatalSignals.FiredExitCode() ?? ExitCodes.GenericError);
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
    }
}

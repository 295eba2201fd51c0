using System.Runtime.InteropServices;
using Flint.Vmm;
using Flint.Vmm.Logging;
using Flint.Vmm.Metrics;

namespace Flint;

/// <summary>
/// Firecracker's process signal policy: SIGXFSZ, SIGXCPU and SIGHUP log, count, flush metrics and exit with their
/// codes (151, 154, 156); SIGPIPE is counted and otherwise ignored (a closed API peer or FIFO must not kill the VMM).
/// The fatal ones are delivered through the runtime's PosixSignalRegistration, so their handlers run as managed code
/// off the signal context; SIGPIPE gets a native counting handler (the runtime keeps it ignored and never reports it). SIGSEGV, SIGBUS and SIGILL stay with the .NET runtime, which needs them for its own fault handling
/// (a NullReferenceException is a SIGSEGV underneath); they are counted at 0 and not remapped to 149/150/157.
/// </summary>
internal sealed unsafe class SignalHandlers : IDisposable
{
    private const int SIGHUP = 1, SIGPIPE = 13, SIGXCPU = 24, SIGXFSZ = 25;

    private readonly List<PosixSignalRegistration> _registrations = [];
    private long _sighup, _sigxcpu, _sigxfsz;
    private readonly long* _sigpipe;

    public SignalHandlers(MetricsRegistry metrics, Action flushMetrics)
    {
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

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
    }
}

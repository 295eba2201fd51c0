using System.Diagnostics;
using Flint.Vmm.Rpc;

namespace Flint.Vmm.Metrics;

/// <summary>
/// The pause and resume numbers of Firecracker's <c>latencies_us</c> group (SharedStoreMetric: the last duration,
/// in µs). <c>pause_vm</c> / <c>resume_vm</c> time the whole API request, from the API thread, as Firecracker's
/// api_server/mod.rs serve_vmm_action_request does, and only when it succeeded; <c>vmm_pause_vm</c> /
/// <c>vmm_resume_vm</c> time the VMM's own work, as its rpc_interface.rs does. The snapshot numbers stay 0: Flint
/// has no snapshots.
/// </summary>
public sealed class VmLatencyMetrics
{
    private long _pauseVm, _resumeVm, _vmmPauseVm, _vmmResumeVm;

    public void BindTo(MetricsRegistry r)
    {
        r.Bind("latencies_us", "pause_vm", () => Volatile.Read(ref _pauseVm));
        r.Bind("latencies_us", "resume_vm", () => Volatile.Read(ref _resumeVm));
        r.Bind("latencies_us", "vmm_pause_vm", () => Volatile.Read(ref _vmmPauseVm));
        r.Bind("latencies_us", "vmm_resume_vm", () => Volatile.Read(ref _vmmResumeVm));
    }

    /// <summary>Runs the VMM's pause and stores how long it took (vmm_pause_vm).</summary>
    public void TimeVmmPause(Action pause) => Time(pause, ref _vmmPauseVm);

    /// <summary>Runs the VMM's resume and stores how long it took (vmm_resume_vm).</summary>
    public void TimeVmmResume(Action resume) => Time(resume, ref _vmmResumeVm);

    /// <summary>The API server's handler, timing PATCH /vm requests that succeed (pause_vm, resume_vm).</summary>
    public IApiHandler TimeApiRequests(IApiHandler inner) => new Timed(inner, this);

    private static void Time(Action work, ref long store)
    {
        long start = Stopwatch.GetTimestamp();
        work();
        Volatile.Write(ref store, (long)Stopwatch.GetElapsedTime(start).TotalMicroseconds);
    }

    private sealed class Timed(IApiHandler inner, VmLatencyMetrics m) : IApiHandler
    {
        public ApiResponse Handle(VmmAction action)
        {
            if (action is not (Pause or Resume)) return inner.Handle(action);
            long start = Stopwatch.GetTimestamp();
            var r = inner.Handle(action);
            if (r.Status < 300)
                Volatile.Write(ref action is Pause ? ref m._pauseVm : ref m._resumeVm, (long)Stopwatch.GetElapsedTime(start).TotalMicroseconds);
            return r;
        }
    }
}

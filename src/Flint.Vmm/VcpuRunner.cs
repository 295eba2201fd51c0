using Flint.Devices;
using Flint.Kvm;

namespace Flint.Vmm;

/// <summary>
/// One vCPU thread: run, dispatch the exit, repeat. The exit path allocates nothing.
/// Pause and stop kick the thread out of its run through the backend.
/// </summary>
public sealed class VcpuRunner
{
    private readonly IVcpuBackend _backend;
    private readonly VcpuExitHandler _exits;
    private readonly VmExit _exit;
    private readonly VcpuMetrics _metrics;
    private readonly ManualResetEventSlim _started = new(), _parked = new(), _resume = new(true);
    private Thread? _thread;
    private volatile bool _stop, _pauseRequested;

    public uint Id => _backend.Id;

    /// <summary>Runs once on the vCPU thread just before its first KVM_RUN (seccomp installs its filter here).</summary>
    public Action? BeforeRun { get; set; }

    public VcpuRunner(Vcpu vcpu, Bus pio, Bus mmio, VmExit exit, VcpuMetrics metrics)
        : this(new KvmVcpuBackend(vcpu, metrics), pio, mmio, exit, metrics) { }

    private VcpuRunner(KvmVcpuBackend backend, Bus pio, Bus mmio, VmExit exit, VcpuMetrics metrics)
        : this(backend, new VcpuExitHandler(backend.Id, pio, mmio, exit, metrics, backend.DescribeState), exit, metrics) { }

    public VcpuRunner(IVcpuBackend backend, VcpuExitHandler exits, VmExit exit, VcpuMetrics metrics)
    {
        _backend = backend;
        _exits = exits;
        _exit = exit;
        _metrics = metrics;
    }

    public void Start()
    {
        _thread = new Thread(Loop, 256 * 1024) { Name = $"fc_vcpu {Id}", IsBackground = true };
        _thread.Start();
        _started.Wait();
    }

    /// <summary>Stops the vCPU at the next exit and waits until it is parked outside KVM_RUN.</summary>
    public void Pause()
    {
        _resume.Reset();
        _parked.Reset();
        _pauseRequested = true;
        _backend.Kick();
        _parked.Wait();
    }

    public void Resume()
    {
        _pauseRequested = false;
        _resume.Set();
    }

    public void Stop()
    {
        _stop = true;
        _resume.Set();
        _backend.Kick();
    }

    public bool Join(TimeSpan timeout) => _thread?.Join(timeout) ?? true;

    private void Loop()
    {
        _backend.AttachThread();
        _started.Set();
        try
        {
            BeforeRun?.Invoke();
            while (!_stop)
            {
                if (_pauseRequested)
                {
                    _parked.Set();
                    _resume.Wait();
                    continue;
                }
                if (!_backend.Run(out VcpuExit exit))
                {
                    // Interrupted (kick or a runtime signal): clear immediate_exit and re-check the flags.
                    _backend.ClearKick();
                    continue;
                }
                if (_exits.Handle(exit) == VcpuExitAction.Stop) break;
            }
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _metrics.Failures);
            _exit.Request(ExitCodes.GenericError, $"vCPU {Id} failed: {e.Message}");
        }
        finally
        {
            _backend.DetachThread();
            _parked.Set();
        }
    }
}

using Flint.Devices;
using Flint.Kvm;

namespace Flint.Vmm;

/// <summary>
/// One vCPU thread and its state machine (<see cref="VcpuState"/>): run, handle the exit, repeat; park while
/// paused; leave on stop, guest end or failure.
///
/// Other threads never touch the thread's state directly: they write a request (run, pause, stop) under
/// <see cref="_gate"/> and kick the vCPU; the vCPU thread answers by moving its state under the same lock and
/// pulsing it, and the requester waits for that answer with a deadline. Because the state only changes on the vCPU
/// thread, and a parked thread leaves Paused only when the request is no longer Pause, "state == Paused" can never
/// be a stale answer to a newer request (the bug of the event-reset design: a resume's wake-up lost to the next
/// pause's reset left both sides waiting forever).
///
/// The run loop reads the request with one volatile load per exit and takes no lock: the hot path allocates and
/// blocks on nothing.
/// </summary>
public sealed class VcpuRunner
{
    /// <summary>How long a requester waits for the vCPU thread's answer: Firecracker's RECV_TIMEOUT_SEC.</summary>
    public static readonly TimeSpan DefaultAckTimeout = TimeSpan.FromSeconds(30);

    private enum Request { Run, Pause, Stop }

    private readonly IVcpuBackend _backend;
    private readonly VcpuExitHandler _exits;
    private readonly VmExit _exit;
    private readonly VcpuMetrics _metrics;
    private readonly object _gate = new();
    private VcpuState _state = VcpuState.NotStarted;   // written by the vCPU thread only, under _gate
    private volatile Request _request = Request.Run;   // written under _gate; read lock-free by the run loop
    private Thread? _thread;
    private Action? _parkedWork;       // run by the parked vCPU thread (snapshot state), under _gate
    private Exception? _parkedError;

    public uint Id => _backend.Id;

    /// <summary>Runs once on the vCPU thread just before its first KVM_RUN (seccomp installs its filter here).</summary>
    public Action? BeforeRun { get; set; }

    /// <summary>The bound on <see cref="Start"/>, <see cref="Pause"/> and <see cref="Resume"/>'s waits.</summary>
    public TimeSpan AckTimeout { get; set; } = DefaultAckTimeout;

    public VcpuState State { get { lock (_gate) return _state; } }

    public VcpuRunner(Vcpu vcpu, Bus pio, Bus mmio, VmExit exit, VcpuMetrics metrics)
        : this(new KvmVcpuBackend(vcpu, metrics), pio, mmio, exit, metrics) => KvmVcpu = vcpu;

    /// <summary>The KVM vCPU this runner drives (null for test backends): snapshots save and restore its state.</summary>
    public Vcpu? KvmVcpu { get; }

    private VcpuRunner(KvmVcpuBackend backend, Bus pio, Bus mmio, VmExit exit, VcpuMetrics metrics)
        : this(backend, new VcpuExitHandler(backend.Id, pio, mmio, exit, metrics, backend.DescribeState), exit, metrics) { }

    public VcpuRunner(IVcpuBackend backend, VcpuExitHandler exits, VmExit exit, VcpuMetrics metrics)
    {
        _backend = backend;
        _exits = exits;
        _exit = exit;
        _metrics = metrics;
    }

    /// <summary>Starts the thread and waits (bounded) until it runs, or has already exited (a failed BeforeRun).</summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_thread != null) throw new InvalidOperationException($"vCPU {Id} was already started");
            _thread = new Thread(Loop, 256 * 1024) { Name = $"fc_vcpu {Id}", IsBackground = true };
        }
        _thread.Start();
        var deadline = Deadline.After(AckTimeout);
        lock (_gate)
        {
            // Any state but NotStarted answers: a pause may already have parked it, a failed BeforeRun ended it
            // (and told VmExit why).
            while (_state == VcpuState.NotStarted)
            {
                int left = deadline.MillisecondsLeft;
                if (left <= 0) throw new VcpuStateException($"vCPU {Id} did not start within {AckTimeout.TotalSeconds:0.###} s");
                Monitor.Wait(_gate, left);
            }
        }
    }

    /// <summary>
    /// Starts the thread parked (a VM restored from a snapshot starts Paused, as Firecracker's): the request is Pause
    /// before the thread exists, so no guest instruction runs until a resume.
    /// </summary>
    public void StartPaused()
    {
        lock (_gate) _request = Request.Pause;
        Start();
        AwaitPaused(Deadline.After(AckTimeout));
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the parked vCPU thread and waits for it (bounded by <paramref name="deadline"/>).
    /// Snapshots save vCPU state this way: the vCPU filter allows the KVM GET ioctls there, as Firecracker's does.
    /// </summary>
    public void RunWhileParked(Action work, Deadline deadline)
    {
        lock (_gate)
        {
            if (_state != VcpuState.Paused || _request != Request.Pause)
                throw new VcpuStateException($"vCPU {Id} is not paused");
            _parkedWork = work;
            _parkedError = null;
            Monitor.PulseAll(_gate);
            while (_parkedWork != null)
            {
                if (_state == VcpuState.Exited) throw new VcpuStateException($"vCPU {Id} exited before saving its state");
                int left = deadline.MillisecondsLeft;
                if (left <= 0) throw new VcpuStateException($"vCPU {Id} did not save its state within {deadline.Budget.TotalSeconds:0.###} s");
                Monitor.Wait(_gate, left);
            }
            if (_parkedError != null) throw _parkedError;
        }
    }

    /// <summary>Pause: <see cref="RequestPause"/> then <see cref="AwaitPaused"/>.</summary>
    public void Pause()
    {
        RequestPause();
        AwaitPaused(Deadline.After(AckTimeout));
    }

    /// <summary>Resume: <see cref="RequestResume"/> then <see cref="AwaitRunning"/>.</summary>
    public void Resume()
    {
        RequestResume();
        AwaitRunning(Deadline.After(AckTimeout));
    }

    /// <summary>Asks the vCPU to park at its next exit and kicks it out of its run; does not wait.</summary>
    public void RequestPause()
    {
        lock (_gate)
        {
            ThrowIfGone("pause");
            _request = Request.Pause;
        }
        // After the request is published: the kick's fence orders the two, so a vCPU that misses the kick
        // (it was between runs) sees the request on its next check.
        _backend.Kick();
    }

    /// <summary>Asks a paused vCPU to run again; does not wait.</summary>
    public void RequestResume()
    {
        lock (_gate)
        {
            ThrowIfGone("resume");
            _request = Request.Run;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Waits until the vCPU is parked; throws <see cref="VcpuStateException"/> if it exited or the deadline passed.</summary>
    public void AwaitPaused(Deadline deadline) => AwaitState(VcpuState.Paused, "pause", deadline);

    /// <summary>Waits until the vCPU runs again; throws <see cref="VcpuStateException"/> if it exited or the deadline passed.</summary>
    public void AwaitRunning(Deadline deadline) => AwaitState(VcpuState.Running, "resume", deadline);

    /// <summary>Asks the vCPU thread to leave (whatever it is doing) and kicks it; never throws, never waits.</summary>
    public void Stop()
    {
        lock (_gate)
        {
            if (_state == VcpuState.Exited) return;
            _request = Request.Stop;
            Monitor.PulseAll(_gate);
        }
        _backend.Kick();
    }

    /// <summary>Waits (bounded) for the thread to end; false if it is still running after <paramref name="timeout"/>.</summary>
    public bool Join(TimeSpan timeout) => _thread?.Join(timeout) ?? true;

    private void ThrowIfGone(string verb)
    {
        if (_state == VcpuState.Exited || _request == Request.Stop)
            throw new VcpuStateException($"cannot {verb} vCPU {Id}: it has exited");
        if (_thread == null)
            throw new VcpuStateException($"cannot {verb} vCPU {Id}: it has not been started");
    }

    private void AwaitState(VcpuState wanted, string verb, Deadline deadline)
    {
        lock (_gate)
        {
            while (_state != wanted)
            {
                if (_state == VcpuState.Exited) throw new VcpuStateException($"vCPU {Id} exited before it could {verb}");
                int left = deadline.MillisecondsLeft;
                if (left <= 0)
                    throw new VcpuStateException($"vCPU {Id} did not {verb} within {deadline.Budget.TotalSeconds:0.###} s (state {_state})");
                Monitor.Wait(_gate, left);
            }
        }
    }

    private void Loop()
    {
        try
        {
            _backend.AttachThread();
            BeforeRun?.Invoke();
            lock (_gate)
            {
                _state = VcpuState.Running;
                Monitor.PulseAll(_gate);
            }
            RunUntilStopped();
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _metrics.Failures);
            _exit.Request(ExitCodes.GenericError, $"vCPU {Id} failed: {e.Message}");
        }
        finally
        {
            _backend.DetachThread();
            lock (_gate)
            {
                _state = VcpuState.Exited;
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>The hot loop: no lock, no allocation; a request other than Run takes it to <see cref="Park"/>.</summary>
    private void RunUntilStopped()
    {
        while (true)
        {
            if (_request != Request.Run)
            {
                if (!Park()) return;
                continue;
            }
            if (!_backend.Run(out VcpuExit exit))
            {
                // Kicked (or another signal): re-arm, then the request check above says why.
                _backend.ClearKick();
                continue;
            }
            if (_exits.Handle(exit) == VcpuExitAction.Stop) return;
        }
    }

    /// <summary>
    /// Running → Paused, and back when the request is Run again. False when the request is Stop. The wait itself
    /// is as long as the VM stays paused, by design: the requesters' waits are the bounded ones.
    /// </summary>
    private bool Park()
    {
        lock (_gate)
            if (_request == Request.Stop) return false;
        // Before answering "paused": the last exit's I/O is completed (state saved while parked is then consistent),
        // and the guest's clock learns it was stopped (Firecracker does both on pause too).
        _backend.CompletePendingIo();
        _backend.OnPaused();
        lock (_gate)
        {
            _state = VcpuState.Paused;
            Monitor.PulseAll(_gate);
            while (_request == Request.Pause)
            {
                if (_parkedWork is { } work)
                {
                    try { work(); }
                    catch (Exception e) { _parkedError = e; }
                    _parkedWork = null;
                    Monitor.PulseAll(_gate);
                    continue;
                }
                Monitor.Wait(_gate);
            }
            if (_request == Request.Stop) return false;
            _state = VcpuState.Running;
            Monitor.PulseAll(_gate);
        }
        // The pause's kick may still be armed (it came between two runs): clear it so the first run after resume
        // is a real one. The fence in ClearKick keeps a newer pause's kick from being lost (see IVcpuBackend).
        _backend.ClearKick();
        return true;
    }
}

using Flint.Devices;
using Flint.Kvm;
using Flint.Sys;
using Flint.Vmm.Logging;

namespace Flint.Vmm;

/// <summary>
/// One vCPU thread: KVM_RUN, dispatch the exit to the PIO or MMIO bus, repeat. The exit path allocates nothing.
/// Pause and stop kick the thread out of KVM_RUN with immediate_exit plus a directed signal.
/// </summary>
public sealed unsafe class VcpuRunner
{
    private readonly Vcpu _vcpu;
    private readonly Bus _pio, _mmio;
    private readonly VmExit _exit;
    private readonly VcpuMetrics _metrics;
    private readonly ManualResetEventSlim _started = new(), _parked = new(), _resume = new(true);
    private Thread? _thread;
    private volatile bool _stop, _pauseRequested;
    private int _tid;

    public uint Id => _vcpu.Id;

    /// <summary>Runs once on the vCPU thread just before its first KVM_RUN (seccomp installs its filter here).</summary>
    public Action? BeforeRun { get; set; }

    public VcpuRunner(Vcpu vcpu, Bus pio, Bus mmio, VmExit exit, VcpuMetrics metrics)
    {
        _vcpu = vcpu;
        _pio = pio;
        _mmio = mmio;
        _exit = exit;
        _metrics = metrics;
    }

    public void Start()
    {
        Signals.InstallKickHandler();
        _thread = new Thread(Loop, 256 * 1024) { Name = $"fc_vcpu {_vcpu.Id}", IsBackground = true };
        _thread.Start();
        _started.Wait();
    }

    /// <summary>Stops the vCPU at the next exit and waits until it is parked outside KVM_RUN.</summary>
    public void Pause()
    {
        _resume.Reset();
        _parked.Reset();
        _pauseRequested = true;
        Kick();
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
        Kick();
    }

    public void Join(TimeSpan timeout) => _thread?.Join(timeout);

    private void Kick()
    {
        _vcpu.ImmediateExit = true;
        if (_tid != 0) Signals.Kick(_tid);
    }

    private void Loop()
    {
        _tid = Libc.gettid();
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
                if (!_vcpu.RunOnce())
                {
                    // Interrupted (kick or a runtime signal): clear immediate_exit and re-check the flags.
                    _vcpu.ImmediateExit = false;
                    continue;
                }
                if (!HandleExit()) break;
            }
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _metrics.Failures);
            _exit.Request(ExitCodes.GenericError, $"vCPU {_vcpu.Id} failed: {e.Message}");
        }
        finally
        {
            _parked.Set();
        }
    }

    /// <summary>Handles one exit; false ends this vCPU (and the VM has been told why).</summary>
    private bool HandleExit()
    {
        KvmRun* run = _vcpu.Run;
        switch ((ExitReason)run->ExitReason)
        {
            case ExitReason.Io:
            {
                ref IoExit io = ref run->Io;
                byte* data = (byte*)run + io.DataOffset;
                int size = io.Size;
                if (io.Direction == IoExit.Out)
                {
                    Interlocked.Increment(ref _metrics.ExitIoOut);
                    for (uint i = 0; i < io.Count; i++) _pio.Write(io.Port, new ReadOnlySpan<byte>(data + i * size, size));
                }
                else
                {
                    Interlocked.Increment(ref _metrics.ExitIoIn);
                    for (uint i = 0; i < io.Count; i++) _pio.Read(io.Port, new Span<byte>(data + i * size, size));
                }
                return !_exit.IsRequested;
            }
            case ExitReason.Mmio:
            {
                ref MmioExit m = ref run->Mmio;
                int len = (int)Math.Min(m.Len, 8u);
                var span = new Span<byte>((byte*)run + 32 + 8, len);
                if (m.IsWrite != 0)
                {
                    Interlocked.Increment(ref _metrics.ExitMmioWrite);
                    _mmio.Write(m.PhysAddr, span);
                }
                else
                {
                    Interlocked.Increment(ref _metrics.ExitMmioRead);
                    _mmio.Read(m.PhysAddr, span);
                }
                return !_exit.IsRequested;
            }
            case ExitReason.Hlt:
                // With the in-kernel irqchip KVM handles HLT itself; an HLT exit means the guest is done.
                _exit.Request(ExitCodes.Ok, $"vCPU {_vcpu.Id} halted");
                return false;
            case ExitReason.Shutdown:
                // Triple fault: how a guest without another reset path reboots. Where it was says whether it was
                // meant (a reboot path) or a crash, so it goes in the log line (a rare exit: no hot-path cost).
                _exit.Request(ExitCodes.Ok, $"vCPU {_vcpu.Id} received KVM_EXIT_SHUTDOWN (guest reboot or triple fault) {DescribeCpuState()}");
                return false;
            case ExitReason.SystemEvent:
            {
                var type = (SystemEventType)run->SystemEvent.Type;
                if (type is SystemEventType.Shutdown or SystemEventType.Reset)
                    _exit.Request(ExitCodes.Ok, $"vCPU {_vcpu.Id} received system event {type}");
                else
                    _exit.Request(ExitCodes.GenericError, $"vCPU {_vcpu.Id} received system event {type}");
                return false;
            }
            case ExitReason.InternalError:
                Interlocked.Increment(ref _metrics.Failures);
                _exit.Request(ExitCodes.GenericError,
                    $"KVM internal error on vCPU {_vcpu.Id}. Suberror: {run->Internal.Suberror}");
                return false;
            case ExitReason.FailEntry:
                Interlocked.Increment(ref _metrics.Failures);
                _exit.Request(ExitCodes.GenericError,
                    $"KVM_EXIT_FAIL_ENTRY on vCPU {_vcpu.Id}: hardware entry failure reason 0x{run->HardwareExitReason:x}");
                return false;
            case ExitReason.Intr:
                return true;
            default:
                Interlocked.Increment(ref _metrics.Failures);
                _exit.Request(ExitCodes.GenericError, $"Unexpected exit reason on vCPU {_vcpu.Id}: {run->ExitReason}");
                return false;
        }
    }

    /// <summary>rip, rsp, control registers and EFER of this vCPU, for the log; empty when KVM will not say.</summary>
    private string DescribeCpuState()
    {
        try
        {
            var r = _vcpu.GetRegs();
            var sr = _vcpu.GetSregs();
            return $"at rip=0x{r.Rip:x} rsp=0x{r.Rsp:x} cr0=0x{sr.Cr0:x} cr2=0x{sr.Cr2:x} cr3=0x{sr.Cr3:x} cr4=0x{sr.Cr4:x} efer=0x{sr.Efer:x}";
        }
        catch (Exception)
        {
            return "";
        }
    }
}

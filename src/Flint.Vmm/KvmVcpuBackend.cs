using Flint.Kvm;
using Flint.Sys;
using Flint.Vmm.Logging;

namespace Flint.Vmm;

/// <summary>
/// A KVM vCPU as <see cref="IVcpuBackend"/>: KVM_RUN on the vCPU fd; the kick is kvm_run.immediate_exit (for a
/// KVM_RUN not yet entered) plus a directed signal (for one in progress), so no kick is ever lost.
/// </summary>
public sealed class KvmVcpuBackend : IVcpuBackend
{
    private readonly Vcpu _vcpu;
    private readonly VcpuMetrics _metrics;
    private int _tid;

    public KvmVcpuBackend(Vcpu vcpu, VcpuMetrics metrics)
    {
        _vcpu = vcpu;
        _metrics = metrics;
        // Installed here, on the building thread, before any seccomp filter and before the first kick.
        Signals.InstallKickHandler();
    }

    public uint Id => _vcpu.Id;

    public void AttachThread() => Volatile.Write(ref _tid, Libc.gettid());

    public void DetachThread() => Volatile.Write(ref _tid, 0);

    public bool Run(out VcpuExit exit)
    {
        if (!_vcpu.RunOnce())
        {
            exit = default;
            return false;
        }
        exit = _vcpu.ReadExit();
        return true;
    }

    public void Kick()
    {
        _vcpu.ImmediateExit = true;
        // The flag must be visible before the signal: a KVM_RUN entered after the signal sees the flag instead.
        Interlocked.MemoryBarrier();
        int tid = Volatile.Read(ref _tid);
        if (tid != 0) Signals.Kick(tid);
    }

    public void ClearKick()
    {
        _vcpu.ImmediateExit = false;
        // Store-load fence: the runner's next read of its request must not be satisfied before this store lands,
        // or a kick that set the flag in between would be wiped out while its request went unseen.
        Interlocked.MemoryBarrier();
    }

    public void OnPaused()
    {
        int errno = _vcpu.KvmclockCtrl();
        if (errno == 0) return;
        // As Firecracker: counted, never fatal. EINVAL is the normal answer for a guest without kvmclock
        // (no-kvmclock, or a guest like ours that never enables it), so only other errors are logged.
        Interlocked.Increment(ref _metrics.KvmclockCtrlFails);
        if (errno != Vcpu.KvmclockNotEnabledErrno) Logger.Warn($"KVM_KVMCLOCK_CTRL on vCPU {Id} failed: errno {errno}");
    }

    public void CompletePendingIo()
    {
        // KVM_RUN with immediate_exit set runs the pending completion (complete_userspace_io) and returns EINTR before
        // entering the guest. The flag stays set: the runner's ClearKick after the pause re-arms it.
        _vcpu.ImmediateExit = true;
        Interlocked.MemoryBarrier();
        try { _vcpu.RunOnce(); }
        catch (KvmException e) { Logger.Warn($"vCPU {Id}: completing the pending I/O before pausing failed: {e.Message}"); }
    }

    public string DescribeState()
    {
        try
        {
            var r = _vcpu.GetRegs();
            var sr = _vcpu.GetSregs();
            return $"at rip=0x{r.Rip:x} rsp=0x{r.Rsp:x} cr0=0x{sr.Cr0:x} cr2=0x{sr.Cr2:x} cr3=0x{sr.Cr3:x} cr4=0x{sr.Cr4:x} efer=0x{sr.Efer:x}";
        }
        catch (KvmException)
        {
            return "";
        }
    }
}

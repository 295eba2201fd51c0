using Flint.Kvm;

namespace Flint.Vmm;

/// <summary>
/// The part of a vCPU that actually runs guest code: KVM_RUN and the kick that cuts it short. Behind an interface
/// so the runner's state machine (pause, resume, stop, their bounded waits) runs in tests with a fake vCPU.
/// <see cref="Run"/>, <see cref="AttachThread"/>, <see cref="DetachThread"/>, <see cref="ClearKick"/> and
/// <see cref="OnPaused"/> are called on the vCPU thread only; <see cref="Kick"/> from any thread.
/// </summary>
public interface IVcpuBackend
{
    uint Id { get; }

    /// <summary>Remembers the calling thread as the one <see cref="Kick"/> interrupts.</summary>
    void AttachThread();

    /// <summary>The vCPU thread is leaving: kicks from now on only set the flag.</summary>
    void DetachThread();

    /// <summary>
    /// Runs the vCPU until its next exit (true, <paramref name="exit"/> filled in) or until a kick interrupts it
    /// (false). A kick that came before the call makes it return false at once: kicks are never lost.
    /// Allocates nothing (the hot path).
    /// </summary>
    bool Run(out VcpuExit exit);

    /// <summary>Makes the current or the next <see cref="Run"/> return false. Safe from any thread, at any time.</summary>
    void Kick();

    /// <summary>Re-arms <see cref="Run"/> after it returned false; a full fence, so a request written before the
    /// next kick is seen by the caller's next check.</summary>
    void ClearKick();

    /// <summary>The vCPU is about to park (pause): KVM_KVMCLOCK_CTRL, so the guest's watchdog forgives the gap.</summary>
    void OnPaused();

    /// <summary>Registers for a log line about a crash; empty when they cannot be read.</summary>
    string DescribeState();

    /// <summary>
    /// Before the vCPU parks: finishes the I/O instruction of the last exit (KVM completes it, and moves RIP past it,
    /// only at the next KVM_RUN) without running guest code, so state saved while parked is consistent and a restored
    /// guest does not repeat its last port or MMIO access. Called on the vCPU thread.
    /// </summary>
    void CompletePendingIo() { }
}

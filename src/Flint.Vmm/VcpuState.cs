namespace Flint.Vmm;

/// <summary>
/// Where a vCPU thread is, as Firecracker's vcpu.rs states (plus the time before its thread starts). Only the
/// vCPU thread moves it, so it always tells what that thread is doing, never what it was asked to do.
/// </summary>
public enum VcpuState
{
    /// <summary>Built, thread not yet running guest code.</summary>
    NotStarted,
    /// <summary>In its run loop (running guest code or handling an exit).</summary>
    Running,
    /// <summary>Parked outside KVM_RUN until resumed or stopped.</summary>
    Paused,
    /// <summary>Its thread has left the loop (guest end, failure, stop); final.</summary>
    Exited,
}

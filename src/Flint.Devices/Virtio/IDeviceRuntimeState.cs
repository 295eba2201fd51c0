using Flint.Snapshot;

namespace Flint.Devices.Virtio;

/// <summary>
/// A virtio device with state of its own beyond the transport's (queues, features) and beyond what the VM's
/// configuration rebuilds: the rate limiters' buckets, the balloon's target, counters and held buffers. These are the
/// fields Firecracker's per-device persist.rs saves that a device built from the saved configuration would not have.
/// </summary>
public interface IDeviceRuntimeState
{
    void SaveRuntimeState(StateWriter w);

    /// <summary>
    /// Called on the restored device after its transport (so a device that was live is activated again), before any
    /// vCPU runs. Every value is checked as guest input is: a bad one throws <see cref="SnapshotFormatException"/>.
    /// </summary>
    void RestoreRuntimeState(StateReader r);
}

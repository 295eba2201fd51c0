using Flint.Memory;

namespace Flint.Devices.Virtio;

/// <summary>
/// A virtio device as the transport sees it: identity, features, config space, and the queue work.
/// The transport (MMIO today) owns the register file and the queues; the device only ever sees
/// validated, activated queues. Register-side calls come from vCPU threads under the transport's lock;
/// <see cref="ProcessQueue"/> runs on the event-loop thread, also under that lock.
/// </summary>
public interface IVirtioDevice
{
    /// <summary>Spec device id, see <see cref="VirtioDeviceType"/>.</summary>
    uint DeviceType { get; }

    /// <summary>Features offered to the driver; always includes <see cref="VirtioFeatures.Version1"/>.</summary>
    ulong AvailableFeatures { get; }

    /// <summary>Maximum size of each queue; its length is the number of queues.</summary>
    ReadOnlySpan<ushort> QueueMaxSizes { get; }

    /// <summary>Bumped whenever config space changes, so a driver reading it in pieces can detect a torn read.</summary>
    uint ConfigGeneration { get; }

    bool IsActivated { get; }

    /// <summary>Reads config space at <paramref name="offset"/>; bytes past the device's config read as zero.</summary>
    void ReadConfig(ulong offset, Span<byte> data);

    /// <summary>Writes config space; read-only fields ignore the write.</summary>
    void WriteConfig(ulong offset, ReadOnlySpan<byte> data);

    /// <summary>
    /// Called once on DRIVER_OK. Returns false when the device cannot run with this setup (a queue badly laid
    /// out, too few queues ready); the transport then sets DEVICE_NEEDS_RESET.
    /// </summary>
    bool Activate(GuestMemory memory, VirtQueue[] queues, VirtioInterrupt interrupt, ulong ackedFeatures);

    /// <summary>The guest notified queue <paramref name="index"/>: drain it. Must never throw on guest input.</summary>
    void ProcessQueue(int index);

    /// <summary>Whether a snapshot restore rings queue <paramref name="queue"/> once (see VirtioDevice).</summary>
    bool ReplaysKickAfterRestore(int queue);

    /// <summary>
    /// True when another process (a vhost-user backend) serves the queues: it reads the doorbell eventfds itself (the
    /// event loop must not drain them) and raises the queue interrupt through the irqfd directly, without the
    /// transport's status bit, so InterruptStatus reports a used buffer unless only a config change is pending
    /// (Firecracker's MmioTransport with is_vhost_user).
    /// </summary>
    bool ServedByExternalBackend => false;

    /// <summary>Back to the pre-activation state (status 0 written): forget memory, queues and in-flight work.</summary>
    void Reset();
}

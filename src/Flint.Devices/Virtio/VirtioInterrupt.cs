namespace Flint.Devices.Virtio;

/// <summary>
/// A virtio device's interrupt: the interrupt status bits (virtio-mmio InterruptStatus, virtio-pci ISR; spec 4.2.2,
/// 4.1.4.5: bit 0 used buffer, bit 1 config change) plus what delivers them. Over virtio-mmio that is one shared
/// line; over virtio-pci with MSI-X (<see cref="Vectors"/>) each queue and the config change go to the vector the
/// driver chose. Bits are set by the event loop and cleared by vCPU writes (ACK, or the ISR read), so the status
/// is an atomic int rather than something under the transport lock.
/// </summary>
public sealed class VirtioInterrupt
{
    public const uint UsedBuffer = 1;
    public const uint ConfigChange = 2;

    private int _status;

    public VirtioInterrupt(IInterrupt line) => Line = line;

    /// <summary>MSI-X delivery: <paramref name="vectors"/> decides per queue; <paramref name="line"/> is not raised.</summary>
    public VirtioInterrupt(IInterrupt line, IVirtioVectorRouter vectors)
    {
        Line = line;
        Vectors = vectors;
    }

    public IInterrupt Line { get; }

    /// <summary>Per-queue vectors (virtio-pci with MSI-X); null on a shared line.</summary>
    public IVirtioVectorRouter? Vectors { get; }

    public uint Status => (uint)Volatile.Read(ref _status);

    /// <summary>
    /// Sets the used-buffer bit and raises the line. The line fires even when the bit was already set: a driver
    /// that read the status just before we set it and then acks would otherwise miss this batch. Over MSI-X only
    /// the vector of queue <paramref name="queue"/> fires.
    /// </summary>
    public void SignalUsedQueue(int queue)
    {
        Interlocked.Or(ref _status, (int)UsedBuffer);
        Interlocked.Increment(ref Metrics.InterruptMetrics.Triggers);
        if (Vectors is { } v) v.SignalQueue(queue);
        else Line.Trigger();
    }

    /// <summary>Two queues completed in one pass: one interrupt on a shared line, each queue's vector over MSI-X.</summary>
    public void SignalUsedQueues(int queue, int otherQueue)
    {
        Interlocked.Or(ref _status, (int)UsedBuffer);
        Interlocked.Increment(ref Metrics.InterruptMetrics.Triggers);
        if (Vectors is { } v)
        {
            v.SignalQueue(queue);
            v.SignalQueue(otherQueue);
        }
        else Line.Trigger();
    }

    public void SignalConfigChange()
    {
        Interlocked.Or(ref _status, (int)ConfigChange);
        Interlocked.Increment(ref Metrics.InterruptMetrics.Triggers);
        if (Vectors is { } v) v.SignalConfig();
        else Line.Trigger();
    }

    /// <summary>The driver's InterruptACK write: clears the given bits.</summary>
    public void Acknowledge(uint bits) => Interlocked.And(ref _status, ~(int)bits);

    /// <summary>The virtio-pci ISR read: returns the bits and clears them in one step (spec 4.1.4.5.1).</summary>
    public uint ReadAndClear() => (uint)Interlocked.Exchange(ref _status, 0);

    public void Reset() => Volatile.Write(ref _status, 0);

    /// <summary>Snapshot restore: the status bits the driver had not acknowledged yet (only the two defined bits).</summary>
    public void RestoreStatus(uint bits) => Volatile.Write(ref _status, (int)(bits & (UsedBuffer | ConfigChange)));
}

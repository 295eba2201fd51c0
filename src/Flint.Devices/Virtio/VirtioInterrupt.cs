namespace Flint.Devices.Virtio;

/// <summary>
/// The virtio-mmio interrupt status register (spec 4.2.2: bit 0 used buffer, bit 1 config change) plus the
/// interrupt line it drives. Bits are set by the event loop and cleared by vCPU writes to InterruptACK,
/// so the status is an atomic int rather than something under the transport lock.
/// </summary>
public sealed class VirtioInterrupt(IInterrupt line)
{
    public const uint UsedBuffer = 1;
    public const uint ConfigChange = 2;

    private int _status;

    public IInterrupt Line { get; } = line;

    public uint Status => (uint)Volatile.Read(ref _status);

    /// <summary>
    /// Sets the used-buffer bit and raises the line. The line fires even when the bit was already set: a driver
    /// that read the status just before we set it and then acks would otherwise miss this batch.
    /// </summary>
    public void SignalUsedQueue()
    {
        Interlocked.Or(ref _status, (int)UsedBuffer);
        Interlocked.Increment(ref Metrics.InterruptMetrics.Triggers);
        Line.Trigger();
    }

    public void SignalConfigChange()
    {
        Interlocked.Or(ref _status, (int)ConfigChange);
        Interlocked.Increment(ref Metrics.InterruptMetrics.Triggers);
        Line.Trigger();
    }

    /// <summary>The driver's InterruptACK write: clears the given bits.</summary>
    public void Acknowledge(uint bits) => Interlocked.And(ref _status, ~(int)bits);

    public void Reset() => Volatile.Write(ref _status, 0);

    /// <summary>Snapshot restore: the status bits the driver had not acknowledged yet (only the two defined bits).</summary>
    public void RestoreStatus(uint bits) => Volatile.Write(ref _status, (int)(bits & (UsedBuffer | ConfigChange)));
}

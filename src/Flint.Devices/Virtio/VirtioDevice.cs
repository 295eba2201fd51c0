using Flint.Devices.Logging;
using Flint.Memory;

namespace Flint.Devices.Virtio;

/// <summary>
/// Common plumbing for devices: queue validation on activation, activation state, config generation.
/// Concrete devices supply identity, config space and the per-queue work.
/// </summary>
public abstract class VirtioDevice : IVirtioDevice
{
    private uint _configGeneration;

    protected VirtioDevice()
    {
        Log = new DeviceLog(GetType().Name);
    }

    /// <summary>Rate-limited log for failures the guest or the host causes; pair every line with its metric.</summary>
    public DeviceLog Log { get; }

    public abstract uint DeviceType { get; }
    public abstract ulong AvailableFeatures { get; }
    public abstract ReadOnlySpan<ushort> QueueMaxSizes { get; }

    public uint ConfigGeneration => Volatile.Read(ref _configGeneration);

    /// <summary>A snapshot's config generation: the driver may compare it with one it read before the snapshot.</summary>
    public void RestoreConfigGeneration(uint generation) => Volatile.Write(ref _configGeneration, generation);

    public bool IsActivated { get => Volatile.Read(ref _activated); private set => Volatile.Write(ref _activated, value); }

    private bool _activated;

    protected GuestMemory? Memory { get; private set; }
    protected VirtQueue[] Queues { get; private set; } = [];
    protected VirtioInterrupt? Interrupt { get; private set; }
    protected ulong AckedFeatures { get; private set; }

    public abstract void ReadConfig(ulong offset, Span<byte> data);
    public abstract void WriteConfig(ulong offset, ReadOnlySpan<byte> data);
    public abstract void ProcessQueue(int index);

    /// <summary>
    /// Every queue the device needs must be ready and validly placed: the device has no use for a partial set,
    /// and validating here once keeps the request path free of layout checks.
    /// </summary>
    public bool Activate(GuestMemory memory, VirtQueue[] queues, VirtioInterrupt interrupt, ulong ackedFeatures)
    {
        if (IsActivated) return true;
        if (queues.Length < QueueMaxSizes.Length) { OnActivateFailed(); return false; }
        for (int i = 0; i < QueueMaxSizes.Length; i++)
        {
            if (!queues[i].Activate(memory))
            {
                for (int j = 0; j < i; j++) queues[j].Reset();
                OnActivateFailed();
                return false;
            }
        }
        bool eventIdx = (ackedFeatures & VirtioFeatures.RingEventIdx) != 0;
        for (int i = 0; i < QueueMaxSizes.Length; i++)
        {
            queues[i].EventIdx = eventIdx;
            queues[i].Log = Log;
        }
        Memory = memory;
        Queues = queues;
        Interrupt = interrupt;
        AckedFeatures = ackedFeatures;
        if (!StartBackend())
        {
            // The queues were fine but whoever serves them refused (a vhost-user backend gone): back to inactive.
            for (int i = 0; i < QueueMaxSizes.Length; i++) queues[i].Reset();
            Memory = null;
            Queues = [];
            Interrupt = null;
            AckedFeatures = 0;
            OnActivateFailed();
            return false;
        }
        IsActivated = true;
        OnActivated();
        return true;
    }

    /// <summary>
    /// The last step of activation, with memory, queues and interrupt set: a device whose queues another process
    /// serves (vhost-user) hands them over here. False refuses activation (the transport then sets DEVICE_NEEDS_RESET).
    /// </summary>
    protected virtual bool StartBackend() => true;

    /// <summary>
    /// Device reset. Order matters: first the device is marked inactive (new work sees that and leaves), then
    /// <see cref="OnReset"/> waits out work already in progress (each device takes its own lock there), and only
    /// then are memory, queues and interrupt dropped, so a queue being served on the event loop or a limiter timer
    /// never sees them vanish halfway through a request. The transport resets the queues after this returns.
    /// </summary>
    public void Reset()
    {
        IsActivated = false;
        OnReset();
        Memory = null;
        Interrupt = null;
        Queues = [];
        AckedFeatures = 0;
    }

    /// <summary>
    /// Config space changed (e.g. a resized drive): bump the generation so torn reads are detectable and,
    /// when a driver is attached, raise the config-change interrupt so it re-reads.
    /// </summary>
    protected void NotifyConfigChanged()
    {
        Interlocked.Increment(ref _configGeneration);
        if (IsActivated) Interrupt?.SignalConfigChange();
    }

    /// <summary>Copies the part of <paramref name="config"/> that <paramref name="offset"/> selects; the rest reads zero.</summary>
    protected static void ReadConfigBytes(ReadOnlySpan<byte> config, ulong offset, Span<byte> data)
    {
        data.Clear();
        if (offset >= (ulong)config.Length) return;
        var src = config[(int)offset..];
        src[..Math.Min(src.Length, data.Length)].CopyTo(data);
    }

    /// <summary>
    /// Whether a snapshot restore rings queue <paramref name="queue"/> once after the device came back (a doorbell the
    /// old process had not served died with it). Every queue by default; a device whose queue kick means more than
    /// "look at the ring" says no for it.
    /// </summary>
    public virtual bool ReplaysKickAfterRestore(int queue) => true;

    /// <summary>See <see cref="IVirtioDevice.ServedByExternalBackend"/>: a vhost-user device says yes.</summary>
    public virtual bool ServedByExternalBackend => false;

    protected virtual void OnActivated() { }
    protected virtual void OnActivateFailed() { }
    /// <summary>
    /// A barrier against work in progress: take the lock the device serves its queues under (and clear what the
    /// device keeps per activation). <see cref="IsActivated"/> is already false; memory and queues are still set.
    /// </summary>
    protected virtual void OnReset() { }
}

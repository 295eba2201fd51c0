using System.Buffers.Binary;
using Flint.Memory;
using Flint.Sys;

namespace Flint.Devices.Virtio;

/// <summary>
/// virtio-mmio version 2 (modern) transport for one device in a 4 KiB slot (spec 4.2).
/// Register accesses arrive on vCPU threads; queue work runs on the event loop via <see cref="ProcessQueueEvent"/>.
/// One lock per transport covers the status machine, queue setup, activation, reset and queue processing, so a
/// reset can never pull memory out from under a request being served. The two hot registers stay lock-free:
/// QueueNotify only kicks an eventfd, and InterruptStatus/ACK are an atomic word.
/// </summary>
public sealed partial class MmioTransport : IBusDevice, IDisposable
{
    public const ulong SlotSize = 0x1000;

    /// <summary>Offset of QueueNotify: the VMM registers each queue's eventfd as a KVM ioeventfd on slot base + this, datamatch = queue index.</summary>
    public const ulong NotifyAddress = MmioRegisters.QueueNotify;

    public const uint Magic = 0x74726976; // "virt"
    public const uint MmioVersion = 2;
    public const uint Vendor = 0x544e4c46; // "FLNT" as little-endian bytes

    private readonly Lock _lock = new();
    private uint _status;
    private uint _deviceFeaturesSel;
    private uint _driverFeaturesSel;
    private ulong _driverFeatures;
    private uint _queueSel;

    public MmioTransport(IVirtioDevice device, GuestMemory memory, IInterrupt interrupt)
    {
        Device = device;
        Memory = memory;
        Interrupt = new VirtioInterrupt(interrupt);
        var sizes = device.QueueMaxSizes;
        Queues = new VirtQueue[sizes.Length];
        QueueEvents = new EventFd[sizes.Length];
        try
        {
            for (int i = 0; i < sizes.Length; i++)
            {
                Queues[i] = new VirtQueue(sizes[i]);
                QueueEvents[i] = new EventFd();
            }
        }
        catch
        {
            foreach (var e in QueueEvents) e?.Dispose();
            throw;
        }
    }

    public IVirtioDevice Device { get; }
    public GuestMemory Memory { get; }
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue[] Queues { get; }

    /// <summary>One eventfd per queue: the doorbell the event loop polls. Written by KVM (ioeventfd) or by <see cref="Write"/>.</summary>
    public EventFd[] QueueEvents { get; }

    public uint DeviceStatus { get { lock (_lock) return _status; } }

    /// <summary>The features the driver wrote (meaningful once FEATURES_OK is set).</summary>
    public ulong DriverFeatures { get { lock (_lock) return _driverFeatures; } }

    public bool IsActivated => Device.IsActivated;

    public void Read(ulong offset, Span<byte> data)
    {
        if (offset >= MmioRegisters.Config)
        {
            // Config space takes any access width; the device lays out its own fields.
            lock (_lock) Device.ReadConfig(offset - MmioRegisters.Config, data);
            return;
        }
        if (data.Length != 4 || (offset & 3) != 0)
        {
            // The spec only defines 32-bit accesses to registers; anything else reads as zero.
            data.Clear();
            return;
        }
        uint v;
        if (offset == MmioRegisters.InterruptStatus) v = Device.ServedByExternalBackend ? ExternalBackendStatus(Interrupt.Status) : Interrupt.Status;
        else lock (_lock) v = ReadRegister(offset);
        BinaryPrimitives.WriteUInt32LittleEndian(data, v);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset >= MmioRegisters.Config)
        {
            lock (_lock) Device.WriteConfig(offset - MmioRegisters.Config, data);
            return;
        }
        if (data.Length != 4 || (offset & 3) != 0) return;
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(data);
        switch (offset)
        {
            case MmioRegisters.QueueNotify:
                // Only reached when no ioeventfd is registered. Ring the same doorbell so the queue is still
                // served on the event-loop thread, never on this vCPU thread.
                if (v < (uint)QueueEvents.Length) QueueEvents[v].Write(1);
                return;
            case MmioRegisters.InterruptAck:
                Interrupt.Acknowledge(v);
                return;
        }
        lock (_lock) WriteRegister(offset, v);
    }

    /// <summary>
    /// Event-loop entry point when queue <paramref name="index"/>'s eventfd is readable: consume the doorbell,
    /// then let the device drain the queue if the driver has brought it up.
    /// </summary>
    public void ProcessQueueEvent(int index)
    {
        if ((uint)index >= (uint)Queues.Length) return;
        QueueEvents[index].Read();
        lock (_lock)
        {
            if (Device.IsActivated) Device.ProcessQueue(index);
        }
    }

    private VirtQueue? SelectedQueue => _queueSel < (uint)Queues.Length ? Queues[_queueSel] : null;

    private uint ReadRegister(ulong offset)
    {
        var q = SelectedQueue;
        return offset switch
        {
            MmioRegisters.MagicValue => Magic,
            MmioRegisters.Version => MmioVersion,
            MmioRegisters.DeviceId => Device.DeviceType,
            MmioRegisters.VendorId => Vendor,
            MmioRegisters.DeviceFeatures => FeatureWord(Device.AvailableFeatures, _deviceFeaturesSel),
            MmioRegisters.QueueNumMax => q?.MaxSize ?? 0u,
            MmioRegisters.QueueNum => q?.Size ?? 0u,
            MmioRegisters.QueueReady => q is { Ready: true } ? 1u : 0u,
            MmioRegisters.Status => _status,
            MmioRegisters.QueueDescLow => (uint)(q?.DescTable ?? 0),
            MmioRegisters.QueueDescHigh => (uint)((q?.DescTable ?? 0) >> 32),
            MmioRegisters.QueueDriverLow => (uint)(q?.AvailRing ?? 0),
            MmioRegisters.QueueDriverHigh => (uint)((q?.AvailRing ?? 0) >> 32),
            MmioRegisters.QueueDeviceLow => (uint)(q?.UsedRing ?? 0),
            MmioRegisters.QueueDeviceHigh => (uint)((q?.UsedRing ?? 0) >> 32),
            MmioRegisters.ConfigGeneration => Device.ConfigGeneration,
            _ => 0,
        };
    }

    private static uint FeatureWord(ulong features, uint sel) => sel switch
    {
        0 => (uint)features,
        1 => (uint)(features >> 32),
        _ => 0,
    };

    private void WriteRegister(ulong offset, uint v)
    {
        switch (offset)
        {
            case MmioRegisters.DeviceFeaturesSel: _deviceFeaturesSel = v; break;
            case MmioRegisters.DriverFeaturesSel: _driverFeaturesSel = v; break;
            case MmioRegisters.DriverFeatures:
                // Feature negotiation is only open between DRIVER and FEATURES_OK (spec 3.1.1 steps 3-5).
                if ((_status & VirtioStatus.Driver) == 0 || (_status & VirtioStatus.FeaturesOk) != 0) break;
                if (_driverFeaturesSel == 0) _driverFeatures = (_driverFeatures & 0xffff_ffff_0000_0000UL) | v;
                else if (_driverFeaturesSel == 1) _driverFeatures = (_driverFeatures & 0xffff_ffffUL) | ((ulong)v << 32);
                break;
            case MmioRegisters.QueueSel: _queueSel = v; break;
            case MmioRegisters.QueueNum:
                if (ConfigurableQueue() is { } qn) qn.Size = v <= ushort.MaxValue ? (ushort)v : (ushort)0; // 0 fails validation
                break;
            case MmioRegisters.QueueReady:
                if (QueueSetupOpen() && SelectedQueue is { } qr) qr.Ready = (v & 1) != 0;
                break;
            case MmioRegisters.QueueDescLow: if (ConfigurableQueue() is { } a) a.DescTable = Low(a.DescTable, v); break;
            case MmioRegisters.QueueDescHigh: if (ConfigurableQueue() is { } b) b.DescTable = High(b.DescTable, v); break;
            case MmioRegisters.QueueDriverLow: if (ConfigurableQueue() is { } c) c.AvailRing = Low(c.AvailRing, v); break;
            case MmioRegisters.QueueDriverHigh: if (ConfigurableQueue() is { } d) d.AvailRing = High(d.AvailRing, v); break;
            case MmioRegisters.QueueDeviceLow: if (ConfigurableQueue() is { } e) e.UsedRing = Low(e.UsedRing, v); break;
            case MmioRegisters.QueueDeviceHigh: if (ConfigurableQueue() is { } f) f.UsedRing = High(f.UsedRing, v); break;
            case MmioRegisters.Status: WriteStatus(v); break;
        }
    }

    private static ulong Low(ulong old, uint v) => (old & 0xffff_ffff_0000_0000UL) | v;
    private static ulong High(ulong old, uint v) => (old & 0xffff_ffffUL) | ((ulong)v << 32);

    // Queues are set up after FEATURES_OK and before DRIVER_OK (spec 3.1.1 step 7); once live, their layout is frozen.
    private bool QueueSetupOpen() =>
        (_status & VirtioStatus.FeaturesOk) != 0 && (_status & (VirtioStatus.DriverOk | VirtioStatus.Failed)) == 0;

    private VirtQueue? ConfigurableQueue() => QueueSetupOpen() && SelectedQueue is { Ready: false } q ? q : null;

    /// <summary>
    /// The status state machine (spec 2.1, 3.1.1). 0 resets. Otherwise bits are only ever added, each step needs
    /// the one before it, and a write that would clear a bit or skip a step is ignored. FEATURES_OK sticks only
    /// when the driver's features are a subset of ours and include VERSION_1 (the driver reads it back to check).
    /// DRIVER_OK activates the device; if that fails we raise DEVICE_NEEDS_RESET and a config interrupt.
    /// </summary>
    private void WriteStatus(uint v)
    {
        if (v == 0)
        {
            ResetLocked();
            return;
        }
        uint old = _status;
        if ((v & VirtioStatus.Failed) != 0)
        {
            // The driver gave up on the device; record it and stop accepting setup.
            _status = old | VirtioStatus.Failed;
            return;
        }
        const uint known = VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk | VirtioStatus.DriverOk;
        uint next = (v & known) | (old & VirtioStatus.DeviceNeedsReset);
        if ((next & old) != old) return; // only reset may clear bits
        if ((next & VirtioStatus.Driver) != 0 && (next & VirtioStatus.Acknowledge) == 0) return;
        if ((next & VirtioStatus.FeaturesOk) != 0 && (next & VirtioStatus.Driver) == 0) return;
        if ((next & VirtioStatus.DriverOk) != 0 && (next & VirtioStatus.FeaturesOk) == 0) return;

        uint added = next & ~old;
        if ((added & VirtioStatus.FeaturesOk) != 0 && !FeaturesAcceptable())
        {
            next &= ~VirtioStatus.FeaturesOk;
            if ((next & VirtioStatus.DriverOk) != 0) return; // cannot go live on a refused feature set
        }
        _status = next;
        if ((added & VirtioStatus.DriverOk) != 0 && (old & VirtioStatus.DeviceNeedsReset) == 0)
        {
            if (!Device.Activate(Memory, Queues, Interrupt, _driverFeatures))
            {
                _status |= VirtioStatus.DeviceNeedsReset;
                Interrupt.SignalConfigChange();
            }
        }
    }

    /// <summary>
    /// A vhost-user backend signals used buffers straight through the irqfd, so the status bit is never set for them:
    /// report a used buffer unless a config change alone is pending (Firecracker's mapping for vhost-user).
    /// </summary>
    internal static uint ExternalBackendStatus(uint status) =>
        status == VirtioInterrupt.ConfigChange ? VirtioInterrupt.ConfigChange : VirtioInterrupt.UsedBuffer;

    private bool FeaturesAcceptable() =>
        (_driverFeatures & ~Device.AvailableFeatures) == 0 && (_driverFeatures & VirtioFeatures.Version1) != 0;

    private void ResetLocked()
    {
        Device.Reset();
        foreach (var q in Queues) q.Reset();
        Interrupt.Reset();
        _status = 0;
        _driverFeatures = 0;
        _deviceFeaturesSel = _driverFeaturesSel = _queueSel = 0;
    }

    public void Dispose()
    {
        foreach (var e in QueueEvents) e.Dispose();
    }
}

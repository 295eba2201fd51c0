using Flint.Memory;
using Flint.Sys;

namespace Flint.Devices.Virtio;

/// <summary>
/// What every virtio transport shares (spec 3.1, 4.1, 4.2): the device status state machine, feature negotiation,
/// the queue-select register and each queue's setup window, activation, reset, and the queue doorbells. The MMIO and
/// PCI transports only decode their own register layouts onto this; the rules that keep a hostile driver from
/// skipping a step (or moving a live ring) live here once.
/// Every member except <see cref="RingDoorbell"/> and <see cref="ProcessQueueEvent"/> is called with
/// <see cref="Lock"/> held by the transport.
/// </summary>
public sealed class VirtioTransportCore : IDisposable
{
    public VirtioTransportCore(IVirtioDevice device, GuestMemory memory, VirtioInterrupt interrupt)
    {
        Device = device;
        Memory = memory;
        Interrupt = interrupt;
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

    /// <summary>Covers status, negotiation, queue setup, activation, reset and queue processing (see MmioTransport).</summary>
    public Lock Lock { get; } = new();

    public IVirtioDevice Device { get; }
    public GuestMemory Memory { get; }
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue[] Queues { get; }

    /// <summary>One eventfd per queue: the doorbell the event loop polls. Written by KVM (ioeventfd) or by the transport.</summary>
    public EventFd[] QueueEvents { get; }

    public uint Status;
    public uint DeviceFeaturesSel;
    public uint DriverFeaturesSel;
    public ulong DriverFeatures;
    public uint QueueSel;

    public VirtQueue? SelectedQueue => QueueSel < (uint)Queues.Length ? Queues[QueueSel] : null;

    /// <summary>The 32 bits of the offered features that <see cref="DeviceFeaturesSel"/> selects (0 past the second word).</summary>
    public uint DeviceFeatureWord() => DeviceFeaturesSel switch
    {
        0 => (uint)Device.AvailableFeatures,
        1 => (uint)(Device.AvailableFeatures >> 32),
        _ => 0,
    };

    public uint DriverFeatureWord() => DriverFeaturesSel switch
    {
        0 => (uint)DriverFeatures,
        1 => (uint)(DriverFeatures >> 32),
        _ => 0,
    };

    /// <summary>Feature negotiation is only open between DRIVER and FEATURES_OK (spec 3.1.1 steps 3-5).</summary>
    public void WriteDriverFeatureWord(uint v)
    {
        if ((Status & VirtioStatus.Driver) == 0 || (Status & VirtioStatus.FeaturesOk) != 0) return;
        if (DriverFeaturesSel == 0) DriverFeatures = (DriverFeatures & 0xffff_ffff_0000_0000UL) | v;
        else if (DriverFeaturesSel == 1) DriverFeatures = (DriverFeatures & 0xffff_ffffUL) | ((ulong)v << 32);
    }

    /// <summary>Queues are set up after FEATURES_OK and before DRIVER_OK (spec 3.1.1 step 7); once live, their layout is frozen.</summary>
    public bool QueueSetupOpen() =>
        (Status & VirtioStatus.FeaturesOk) != 0 && (Status & (VirtioStatus.DriverOk | VirtioStatus.Failed)) == 0;

    /// <summary>The selected queue while its layout may still change (setup window open, queue not yet enabled), else null.</summary>
    public VirtQueue? ConfigurableQueue() => QueueSetupOpen() && SelectedQueue is { Ready: false } q ? q : null;

    /// <summary>The driver's queue size write; a size past 16 bits becomes 0, which fails validation at activation.</summary>
    public void WriteQueueSize(uint v)
    {
        if (ConfigurableQueue() is { } q) q.Size = v <= ushort.MaxValue ? (ushort)v : (ushort)0;
    }

    public void WriteQueueReady(bool ready)
    {
        if (QueueSetupOpen() && SelectedQueue is { } q) q.Ready = ready;
    }

    /// <summary>
    /// The status state machine (spec 2.1, 3.1.1). 0 resets. Otherwise bits are only ever added, each step needs
    /// the one before it, and a write that would clear a bit or skip a step is ignored. FEATURES_OK sticks only
    /// when the driver's features are a subset of ours and include VERSION_1 (the driver reads it back to check).
    /// DRIVER_OK activates the device; if that fails we raise DEVICE_NEEDS_RESET and a config interrupt.
    /// Returns true when the write reset the device.
    /// </summary>
    public bool WriteStatus(uint v)
    {
        if (v == 0)
        {
            Reset();
            return true;
        }
        uint old = Status;
        if ((v & VirtioStatus.Failed) != 0)
        {
            // The driver gave up on the device; record it and stop accepting setup.
            Status = old | VirtioStatus.Failed;
            return false;
        }
        const uint known = VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk | VirtioStatus.DriverOk;
        uint next = (v & known) | (old & VirtioStatus.DeviceNeedsReset);
        if ((next & old) != old) return false; // only reset may clear bits
        if ((next & VirtioStatus.Driver) != 0 && (next & VirtioStatus.Acknowledge) == 0) return false;
        if ((next & VirtioStatus.FeaturesOk) != 0 && (next & VirtioStatus.Driver) == 0) return false;
        if ((next & VirtioStatus.DriverOk) != 0 && (next & VirtioStatus.FeaturesOk) == 0) return false;

        uint added = next & ~old;
        if ((added & VirtioStatus.FeaturesOk) != 0 && !FeaturesAcceptable())
        {
            next &= ~VirtioStatus.FeaturesOk;
            if ((next & VirtioStatus.DriverOk) != 0) return false; // cannot go live on a refused feature set
        }
        Status = next;
        if ((added & VirtioStatus.DriverOk) != 0 && (old & VirtioStatus.DeviceNeedsReset) == 0) ActivateOrFlagReset();
        return false;
    }

    /// <summary>Activates the device on its queues; a refusal sets DEVICE_NEEDS_RESET and raises a config interrupt.</summary>
    public void ActivateOrFlagReset()
    {
        if (Device.Activate(Memory, Queues, Interrupt, DriverFeatures)) return;
        Status |= VirtioStatus.DeviceNeedsReset;
        Interrupt.SignalConfigChange();
    }

    private bool FeaturesAcceptable() =>
        (DriverFeatures & ~Device.AvailableFeatures) == 0 && (DriverFeatures & VirtioFeatures.Version1) != 0;

    /// <summary>Device reset (status 0 written): the device first, so no request is in flight when the queues go.</summary>
    public void Reset()
    {
        Device.Reset();
        foreach (var q in Queues) q.Reset();
        Interrupt.Reset();
        Status = 0;
        DriverFeatures = 0;
        DeviceFeaturesSel = DriverFeaturesSel = QueueSel = 0;
    }

    /// <summary>
    /// A notify write that reached the VMM (no ioeventfd registered): ring the queue's doorbell so the queue is still
    /// served on the event-loop thread, never on the vCPU thread. An index past the last queue is ignored.
    /// </summary>
    public void RingDoorbell(uint queue)
    {
        if (queue < (uint)QueueEvents.Length) QueueEvents[queue].Write(1);
    }

    /// <summary>
    /// Event-loop entry point when queue <paramref name="index"/>'s eventfd is readable: consume the doorbell,
    /// then let the device drain the queue if the driver has brought it up.
    /// </summary>
    public void ProcessQueueEvent(int index)
    {
        if ((uint)index >= (uint)Queues.Length) return;
        QueueEvents[index].Read();
        lock (Lock)
        {
            if (Device.IsActivated) Device.ProcessQueue(index);
        }
    }

    public void Dispose()
    {
        foreach (var e in QueueEvents) e.Dispose();
    }
}

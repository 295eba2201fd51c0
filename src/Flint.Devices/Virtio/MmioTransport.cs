using System.Buffers.Binary;
using Flint.Memory;
using Flint.Sys;

namespace Flint.Devices.Virtio;

/// <summary>
/// virtio-mmio version 2 (modern) transport for one device in a 4 KiB slot (spec 4.2).
/// Register accesses arrive on vCPU threads; queue work runs on the event loop via <see cref="ProcessQueueEvent"/>.
/// The status machine, negotiation and queue setup are <see cref="VirtioTransportCore"/>'s, shared with the PCI
/// transport; this type decodes the MMIO register file onto it. One lock per transport covers the status machine, queue setup, activation, reset and queue processing, so a
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

    private readonly VirtioTransportCore _core;

    public MmioTransport(IVirtioDevice device, GuestMemory memory, IInterrupt interrupt)
    {
        _core = new VirtioTransportCore(device, memory, new VirtioInterrupt(interrupt));
    }

    public IVirtioDevice Device => _core.Device;
    public GuestMemory Memory => _core.Memory;
    public VirtioInterrupt Interrupt => _core.Interrupt;
    public VirtQueue[] Queues => _core.Queues;

    /// <summary>One eventfd per queue: the doorbell the event loop polls. Written by KVM (ioeventfd) or by <see cref="Write"/>.</summary>
    public EventFd[] QueueEvents => _core.QueueEvents;

    public uint DeviceStatus { get { lock (_core.Lock) return _core.Status; } }

    /// <summary>The features the driver wrote (meaningful once FEATURES_OK is set).</summary>
    public ulong DriverFeatures { get { lock (_core.Lock) return _core.DriverFeatures; } }

    public bool IsActivated => Device.IsActivated;

    public void Read(ulong offset, Span<byte> data)
    {
        if (offset >= MmioRegisters.Config)
        {
            // Config space takes any access width; the device lays out its own fields.
            lock (_core.Lock) Device.ReadConfig(offset - MmioRegisters.Config, data);
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
        else lock (_core.Lock) v = ReadRegister(offset);
        BinaryPrimitives.WriteUInt32LittleEndian(data, v);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset >= MmioRegisters.Config)
        {
            lock (_core.Lock) Device.WriteConfig(offset - MmioRegisters.Config, data);
            return;
        }
        if (data.Length != 4 || (offset & 3) != 0) return;
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(data);
        switch (offset)
        {
            case MmioRegisters.QueueNotify:
                // Only reached when no ioeventfd is registered.
                _core.RingDoorbell(v);
                return;
            case MmioRegisters.InterruptAck:
                Interrupt.Acknowledge(v);
                return;
        }
        lock (_core.Lock) WriteRegister(offset, v);
    }

    /// <summary>Event-loop entry point when queue <paramref name="index"/>'s eventfd is readable.</summary>
    public void ProcessQueueEvent(int index) => _core.ProcessQueueEvent(index);

    private uint ReadRegister(ulong offset)
    {
        var q = _core.SelectedQueue;
        return offset switch
        {
            MmioRegisters.MagicValue => Magic,
            MmioRegisters.Version => MmioVersion,
            MmioRegisters.DeviceId => Device.DeviceType,
            MmioRegisters.VendorId => Vendor,
            MmioRegisters.DeviceFeatures => _core.DeviceFeatureWord(),
            MmioRegisters.QueueNumMax => q?.MaxSize ?? 0u,
            MmioRegisters.QueueNum => q?.Size ?? 0u,
            MmioRegisters.QueueReady => q is { Ready: true } ? 1u : 0u,
            MmioRegisters.Status => _core.Status,
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

    private void WriteRegister(ulong offset, uint v)
    {
        var c = _core;
        switch (offset)
        {
            case MmioRegisters.DeviceFeaturesSel: c.DeviceFeaturesSel = v; break;
            case MmioRegisters.DriverFeaturesSel: c.DriverFeaturesSel = v; break;
            case MmioRegisters.DriverFeatures: c.WriteDriverFeatureWord(v); break;
            case MmioRegisters.QueueSel: c.QueueSel = v; break;
            case MmioRegisters.QueueNum: c.WriteQueueSize(v); break;
            case MmioRegisters.QueueReady: c.WriteQueueReady((v & 1) != 0); break;
            case MmioRegisters.QueueDescLow: if (c.ConfigurableQueue() is { } a) a.DescTable = Low(a.DescTable, v); break;
            case MmioRegisters.QueueDescHigh: if (c.ConfigurableQueue() is { } b) b.DescTable = High(b.DescTable, v); break;
            case MmioRegisters.QueueDriverLow: if (c.ConfigurableQueue() is { } d) d.AvailRing = Low(d.AvailRing, v); break;
            case MmioRegisters.QueueDriverHigh: if (c.ConfigurableQueue() is { } e) e.AvailRing = High(e.AvailRing, v); break;
            case MmioRegisters.QueueDeviceLow: if (c.ConfigurableQueue() is { } f) f.UsedRing = Low(f.UsedRing, v); break;
            case MmioRegisters.QueueDeviceHigh: if (c.ConfigurableQueue() is { } g) g.UsedRing = High(g.UsedRing, v); break;
            case MmioRegisters.Status: c.WriteStatus(v); break;
        }
    }

    internal static ulong Low(ulong old, uint v) => (old & 0xffff_ffff_0000_0000UL) | v;
    internal static ulong High(ulong old, uint v) => (old & 0xffff_ffffUL) | ((ulong)v << 32);

    /// <summary>
    /// A vhost-user backend signals used buffers straight through the irqfd, so the status bit is never set for them:
    /// report a used buffer unless a config change alone is pending (Firecracker's mapping for vhost-user).
    /// </summary>
    internal static uint ExternalBackendStatus(uint status) =>
        status == VirtioInterrupt.ConfigChange ? VirtioInterrupt.ConfigChange : VirtioInterrupt.UsedBuffer;

    public void Dispose()
    {
        _core.Dispose();
    }
}

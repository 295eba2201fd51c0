using System.Buffers.Binary;
using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;
using Flint.Memory;
using Flint.Sys;

namespace Flint.Devices.Virtio.Pci;

/// <summary>
/// A modern virtio-pci function (spec 4.1) for one <see cref="IVirtioDevice"/>: a type-0 config space with the
/// virtio vendor capabilities and MSI-X, and one 64-bit BAR holding common config, ISR, device config, the queue
/// doorbells and the MSI-X table and PBA (<see cref="VirtioPciLayout"/>). The status machine, negotiation and queue
/// setup are <see cref="VirtioTransportCore"/>'s, the same rules the MMIO transport enforces. Interrupts are MSI-X
/// only (no INTx, as Firecracker): one vector per queue plus one for config changes.
/// Threads: config cycles and BAR accesses arrive on vCPU threads; queue work on the event loop. Locks are taken in
/// the order config space, then core, then MSI-X table, never the other way.
/// </summary>
public sealed partial class VirtioPciTransport : IPciDevice, IBusDevice, IVirtioVectorRouter, IDisposable
{
    private readonly VirtioTransportCore _core;
    private readonly Lock _configLock = new();
    private readonly PciConfigSpace _config;
    private readonly PciBars _bars = new();
    private readonly int _msixCapOffset;
    private readonly int _pciCfgCapOffset;
    private ushort _configVector = VirtioPciLayout.NoVector;
    private readonly ushort[] _queueVectors;

    /// <param name="barAddress">Guest-physical address of BAR 0 (the VMM places it; the guest cannot move it).</param>
    /// <param name="vectors">The host side of the function's MSI-X vectors: one per queue plus one for config.</param>
    public VirtioPciTransport(IVirtioDevice device, GuestMemory memory, ulong barAddress, IMsiVectors vectors)
    {
        int queues = device.QueueMaxSizes.Length;
        if (vectors.Count != queues + 1)
            throw new ArgumentException($"virtio-pci needs {queues + 1} MSI-X vectors (one per queue and one for config), got {vectors.Count}");
        Msix = new MsixTable(vectors);
        _core = new VirtioTransportCore(device, memory, new VirtioInterrupt(NoLegacyInterrupt.Instance, this));
        _queueVectors = new ushort[queues];
        _queueVectors.AsSpan().Fill(VirtioPciLayout.NoVector);
        BarAddress = barAddress;

        ushort deviceId = (ushort)(VirtioPciLayout.DeviceIdBase + device.DeviceType);
        var (cls, sub) = VirtioPciLayout.ClassOf(device.DeviceType);
        _config = new PciConfigSpace(VirtioPciLayout.VendorId, deviceId, VirtioPciLayout.Revision, cls, sub, 0,
            VirtioPciLayout.VendorId, deviceId);
        _bars.SetMemory64(VirtioPciLayout.Bar, barAddress, VirtioPciLayout.BarSize);
        (_msixCapOffset, _pciCfgCapOffset) = VirtioPciCapabilities.AddAll(_config, Msix.Count);
    }

    public IVirtioDevice Device => _core.Device;
    public VirtioInterrupt Interrupt => _core.Interrupt;
    public VirtQueue[] Queues => _core.Queues;
    public MsixTable Msix { get; }
    public ulong BarAddress { get; }

    /// <summary>Guest-physical address of queue <paramref name="queue"/>'s doorbell (for a KVM ioeventfd).</summary>
    public ulong NotifyAddress(int queue) => BarAddress + VirtioPciLayout.NotifyOffset + (ulong)queue * VirtioPciLayout.NotifyOffMultiplier;

    /// <summary>One eventfd per queue: the doorbell the event loop polls.</summary>
    public EventFd[] QueueEvents => _core.QueueEvents;

    public bool IsActivated => Device.IsActivated;
    public uint DeviceStatus { get { lock (_core.Lock) return _core.Status; } }

    /// <summary>BAR writes the guest made that would have moved a BAR (ignored).</summary>
    public long RejectedBarWrites { get { lock (_configLock) return _bars.RejectedWrites; } }

    public void ProcessQueueEvent(int index) => _core.ProcessQueueEvent(index);

    // ---- Configuration space (IPciDevice) ----

    public uint ReadConfigRegister(int register)
    {
        lock (_configLock)
        {
            if (PciBars.IsBarRegister(register)) return _bars.Read(register - PciBars.FirstRegister);
            if (register == PciCfgDataRegister) return ReadPciCfgWindow();
            return _config.Read(register);
        }
    }

    public void WriteConfigRegister(int register, int offset, ReadOnlySpan<byte> data)
    {
        if (!PciConfigSpace.AccessFits(offset, data.Length)) return;
        lock (_configLock)
        {
            if (PciBars.IsBarRegister(register))
            {
                _bars.Write(register - PciBars.FirstRegister, offset, data);
                return;
            }
            if (register == PciCfgDataRegister)
            {
                WritePciCfgWindow(offset, data);
                return;
            }
            _config.Write(register, offset, data);
            // Message control is the upper half of the MSI-X capability's first dword; the mask kept only its
            // enable and function-mask bits writable.
            if (register == _msixCapOffset / 4) Msix.SetControl((ushort)(_config.Read(register) >> 16));
        }
    }

    // ---- The BAR (IBusDevice, at BarAddress on the MMIO bus) ----

    public void Read(ulong offset, Span<byte> data)
    {
        switch (offset)
        {
            case < VirtioPciLayout.CommonOffset + VirtioPciLayout.CommonSize:
                ReadCommon(offset - VirtioPciLayout.CommonOffset, data);
                return;
            case >= VirtioPciLayout.IsrOffset and < VirtioPciLayout.IsrOffset + VirtioPciLayout.IsrSize:
                // Reading the ISR acknowledges it (spec 4.1.4.5). With MSI-X the driver never needs it, but it works.
                data.Clear();
                if (data.Length == 1) data[0] = (byte)Interrupt.ReadAndClear();
                return;
            case >= VirtioPciLayout.DeviceOffset and < VirtioPciLayout.DeviceOffset + VirtioPciLayout.DeviceSize:
                if (offset - VirtioPciLayout.DeviceOffset + (ulong)data.Length > VirtioPciLayout.DeviceSize) { data.Clear(); return; }
                lock (_core.Lock) Device.ReadConfig(offset - VirtioPciLayout.DeviceOffset, data);
                return;
            case >= VirtioPciLayout.MsixTableOffset and < VirtioPciLayout.MsixTableOffset + VirtioPciLayout.MsixTableSize:
                Msix.ReadTable(offset - VirtioPciLayout.MsixTableOffset, data);
                return;
            case >= VirtioPciLayout.MsixPbaOffset and < VirtioPciLayout.MsixPbaOffset + VirtioPciLayout.MsixPbaSize:
                Msix.ReadPba(offset - VirtioPciLayout.MsixPbaOffset, data);
                return;
            default:
                data.Clear(); // notify area (write-only) and the gaps read as zero
                return;
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        switch (offset)
        {
            case < VirtioPciLayout.CommonOffset + VirtioPciLayout.CommonSize:
                WriteCommon(offset - VirtioPciLayout.CommonOffset, data);
                return;
            case >= VirtioPciLayout.DeviceOffset and < VirtioPciLayout.DeviceOffset + VirtioPciLayout.DeviceSize:
                if (offset - VirtioPciLayout.DeviceOffset + (ulong)data.Length > VirtioPciLayout.DeviceSize) return;
                lock (_core.Lock) Device.WriteConfig(offset - VirtioPciLayout.DeviceOffset, data);
                return;
            case >= VirtioPciLayout.NotifyOffset and < VirtioPciLayout.NotifyOffset + VirtioPciLayout.NotifySize:
            {
                // Only reached when no ioeventfd is registered for this doorbell. The doorbell's address says which
                // queue; the value is not trusted for that (with VIRTIO_F_NOTIFICATION_DATA unoffered it is the index).
                ulong rel = offset - VirtioPciLayout.NotifyOffset;
                if (rel % VirtioPciLayout.NotifyOffMultiplier == 0) _core.RingDoorbell((uint)(rel / VirtioPciLayout.NotifyOffMultiplier));
                return;
            }
            case >= VirtioPciLayout.MsixTableOffset and < VirtioPciLayout.MsixTableOffset + VirtioPciLayout.MsixTableSize:
                Msix.WriteTable(offset - VirtioPciLayout.MsixTableOffset, data);
                return;
            default:
                return; // ISR and PBA are read-only; gaps ignore writes
        }
    }

    // ---- Interrupt routing (IVirtioVectorRouter) ----

    public void SignalQueue(int queue)
    {
        if ((uint)queue >= (uint)_queueVectors.Length) return;
        ushort v = Volatile.Read(ref _queueVectors[queue]);
        if (v != VirtioPciLayout.NoVector) Msix.Signal(v);
    }

    public void SignalConfig()
    {
        ushort v = Volatile.Read(ref _configVector);
        if (v != VirtioPciLayout.NoVector) Msix.Signal(v);
    }

    /// <summary>A vector the driver asks for: kept when it names a table entry, else NO_VECTOR (the driver reads it back).</summary>
    private ushort CheckedVector(uint v) => v < (uint)Msix.Count ? (ushort)v : VirtioPciLayout.NoVector;

    public void Dispose() => _core.Dispose();

    /// <summary>virtio-pci functions here have no INTx pin: interrupts are MSI-X only.</summary>
    private sealed class NoLegacyInterrupt : IInterrupt
    {
        public static readonly NoLegacyInterrupt Instance = new();
        public void Trigger() { }
    }
}

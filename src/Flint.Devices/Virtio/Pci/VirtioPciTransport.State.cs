using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;
using Flint.Snapshot;

namespace Flint.Devices.Virtio.Pci;

/// <summary>
/// The transport in a snapshot (<see cref="VirtioPciTransportState"/>). Restore goes onto a freshly built function of
/// the same device type at the same BAR: config space (only its guest-writable bits), the BAR sizing handshake, the
/// MSI-X table (routes installed again), vectors, then the core, and a live device is activated again through the same
/// checks a driver's DRIVER_OK goes through, as the MMIO transport's restore does. No interrupt is raised again:
/// MSI-X messages are edges that KVM delivered into the local APIC (saved with the vCPU) or that wait in the PBA
/// (saved here), and the ISR bits mean nothing to a driver using MSI-X.
/// </summary>
public sealed partial class VirtioPciTransport
{
    public VirtioPciTransportState CaptureState()
    {
        lock (_configLock)
            lock (_core.Lock)
            {
                var regs = _config.Registers[..PciConfigSpace.SavedRegisterCount].ToArray();
                var queues = new VirtioPciQueueState[Queues.Length];
                for (int i = 0; i < queues.Length; i++)
                {
                    var q = Queues[i];
                    queues[i] = new VirtioPciQueueState(q.Size, q.Ready, q.DescTable, q.AvailRing, q.UsedRing, q.NextAvail, q.NextUsed,
                        Volatile.Read(ref _queueVectors[i]));
                }
                return new VirtioPciTransportState
                {
                    DeviceType = Device.DeviceType, BarAddress = BarAddress, ConfigRegisters = regs, BarSizingBits = _bars.SizingBits,
                    Status = _core.Status, DeviceFeaturesSel = _core.DeviceFeaturesSel, DriverFeaturesSel = _core.DriverFeaturesSel,
                    DriverFeatures = _core.DriverFeatures, QueueSel = _core.QueueSel, IsrStatus = Interrupt.Status,
                    Activated = Device.IsActivated, ConfigVector = Volatile.Read(ref _configVector), Queues = queues,
                    Msix = Msix.CaptureState(),
                };
            }
    }

    /// <summary>
    /// Restores onto this freshly built function (nothing activated yet). A state of another device type, BAR, queue
    /// count, vector count or config layout throws <see cref="SnapshotFormatException"/> before anything changes. A
    /// device that was live and whose queues no longer validate gets DEVICE_NEEDS_RESET, as a bad DRIVER_OK would.
    /// </summary>
    public void RestoreState(VirtioPciTransportState s, string section)
    {
        if (s.DeviceType != Device.DeviceType)
            throw new SnapshotFormatException($"Section {section} holds a virtio device of type {s.DeviceType}, the VM has type {Device.DeviceType} there.");
        if (s.BarAddress != BarAddress)
            throw new SnapshotFormatException($"Section {section} places the device's BAR at 0x{s.BarAddress:x}, the VM built it at 0x{BarAddress:x}.");
        if (s.Queues.Length != Queues.Length)
            throw new SnapshotFormatException($"Section {section} holds {s.Queues.Length} queues, the device has {Queues.Length}.");
        if (s.Msix.Count != Msix.Count)
            throw new SnapshotFormatException($"Section {section} holds {s.Msix.Count} MSI-X vectors, the device has {Msix.Count}.");
        ushort control = (ushort)(s.ConfigRegisters[_msixCapOffset / 4] >> 16);
        if (((control & MsixCapability.EnableBit) != 0) != s.Msix.Enabled
            || ((control & MsixCapability.FunctionMaskBit) != 0) != s.Msix.FunctionMasked)
            throw new SnapshotFormatException($"Section {section}: the MSI-X message control in config space disagrees with the MSI-X table's state.");
        lock (_configLock)
        {
            int bad = _config.FirstReadOnlyMismatch(s.ConfigRegisters);
            if (bad >= 0)
                throw new SnapshotFormatException($"Section {section}: read-only PCI configuration register {bad} differs from the device this VM built.");
            _config.RestoreWritable(s.ConfigRegisters);
            _bars.SizingBits = s.BarSizingBits;
        }
        Msix.RestoreState(s.Msix, section);
        lock (_core.Lock)
        {
            _core.Status = s.Status;
            _core.DeviceFeaturesSel = s.DeviceFeaturesSel;
            _core.DriverFeaturesSel = s.DriverFeaturesSel;
            _core.DriverFeatures = s.DriverFeatures & Device.AvailableFeatures;
            _core.QueueSel = s.QueueSel;
            Volatile.Write(ref _configVector, s.ConfigVector);
            for (int i = 0; i < Queues.Length; i++)
            {
                var (q, saved) = (Queues[i], s.Queues[i]);
                q.Size = saved.Size;
                q.Ready = saved.Ready;
                q.DescTable = saved.DescTable; q.AvailRing = saved.AvailRing; q.UsedRing = saved.UsedRing;
                q.RestoreCursors(saved.NextAvail, saved.NextUsed);
                Volatile.Write(ref _queueVectors[i], saved.Vector);
            }
            Interrupt.RestoreStatus(s.IsrStatus);
            if (s.Activated && (_core.Status & VirtioStatus.DriverOk) != 0 && (_core.Status & VirtioStatus.DeviceNeedsReset) == 0)
                _core.ActivateOrFlagReset();
        }
    }
}

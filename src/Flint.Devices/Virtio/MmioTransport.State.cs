using Flint.Snapshot;

namespace Flint.Devices.Virtio;

/// <summary>
/// The transport in a snapshot: status, feature negotiation, each queue's layout and cursors, and the unacknowledged
/// interrupt bits. Restore re-runs activation through the same checks a driver's DRIVER_OK goes through (queue sizes,
/// alignment, every ring inside guest memory): a snapshot is input like any other and gets no shortcut.
/// </summary>
public sealed partial class MmioTransport
{
    public void SaveState(StateWriter w)
    {
        lock (_core.Lock)
        {
            w.U32(Device.DeviceType);
            w.U32(_core.Status);
            w.U32(_core.DeviceFeaturesSel);
            w.U32(_core.DriverFeaturesSel);
            w.U64(_core.DriverFeatures);
            w.U32(_core.QueueSel);
            w.U32(Interrupt.Status);
            w.Bool(Device.IsActivated);
            w.U32((uint)Queues.Length);
            foreach (var q in Queues)
            {
                w.U16(q.Size); w.Bool(q.Ready);
                w.U64(q.DescTable); w.U64(q.AvailRing); w.U64(q.UsedRing);
                w.U16(q.NextAvail); w.U16(q.NextUsed);
            }
        }
    }

    /// <summary>
    /// Restores the transport on a freshly built device (nothing activated yet). Returns false when the state does
    /// not fit this device (another type or queue count); throws <see cref="SnapshotFormatException"/> on short data.
    /// A device that was live and whose queues no longer validate gets DEVICE_NEEDS_RESET, as a bad DRIVER_OK would.
    /// </summary>
    public void RestoreState(StateReader r)
    {
        uint type = r.U32();
        if (type != Device.DeviceType)
            throw new SnapshotFormatException($"Section {r.Section} holds a virtio device of type {type}, the VM has type {Device.DeviceType} there.");
        uint status = r.U32(), devSel = r.U32(), drvSel = r.U32();
        ulong driverFeatures = r.U64();
        uint queueSel = r.U32(), irqStatus = r.U32();
        bool activated = r.Bool();
        int n = r.Count(64);
        if (n != Queues.Length)
            throw new SnapshotFormatException($"Section {r.Section} holds {n} queues, the device has {Queues.Length}.");
        var qs = new (ushort Size, bool Ready, ulong Desc, ulong Avail, ulong Used, ushort NextAvail, ushort NextUsed)[n];
        for (int i = 0; i < n; i++) qs[i] = (r.U16(), r.Bool(), r.U64(), r.U64(), r.U64(), r.U16(), r.U16());
        lock (_core.Lock)
        {
            _core.Status = status;
            _core.DeviceFeaturesSel = devSel;
            _core.DriverFeaturesSel = drvSel;
            _core.DriverFeatures = driverFeatures & Device.AvailableFeatures;
            _core.QueueSel = queueSel;
            for (int i = 0; i < n; i++)
            {
                var q = Queues[i];
                q.Size = qs[i].Size;
                q.Ready = qs[i].Ready;
                q.DescTable = qs[i].Desc; q.AvailRing = qs[i].Avail; q.UsedRing = qs[i].Used;
                q.RestoreCursors(qs[i].NextAvail, qs[i].NextUsed);
            }
            Interrupt.RestoreStatus(irqStatus);
            if (activated && (_core.Status & VirtioStatus.DriverOk) != 0 && (_core.Status & VirtioStatus.DeviceNeedsReset) == 0)
                _core.ActivateOrFlagReset();
        }
        // A bit the driver had not acknowledged may have lost its edge with the old process: raise the line again.
        if (Interrupt.Status != 0) Interrupt.Line.Trigger();
    }
}

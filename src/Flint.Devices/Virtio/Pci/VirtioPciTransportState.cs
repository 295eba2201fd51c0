using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;
using Flint.Snapshot;

namespace Flint.Devices.Virtio.Pci;

/// <summary>One queue of a virtio-pci transport in a snapshot: its layout, cursors and MSI-X vector.</summary>
public readonly record struct VirtioPciQueueState(ushort Size, bool Ready, ulong DescTable, ulong AvailRing, ulong UsedRing,
    ushort NextAvail, ushort NextUsed, ushort Vector);

/// <summary>
/// A virtio-pci function in a snapshot (Firecracker's VirtioPciDeviceState): the device type and BAR address it was
/// built with, its config space (command, capability state, MSI-X message control), the BAR sizing handshake, the
/// transport core (status, feature selectors and driver features, queue select, ISR bits, whether the device was
/// live), the config vector, every queue with its vector, and the MSI-X table. <see cref="Read"/> bounds every count
/// and checks every vector against the table before anything is applied; whether it fits the device the loading
/// process built is <see cref="VirtioPciTransport.RestoreState"/>'s check.
/// </summary>
public sealed class VirtioPciTransportState
{
    /// <summary>More queues than any virtio device Flint builds (the MMIO section's bound too).</summary>
    public const int MaxQueues = 64;

    public required uint DeviceType { get; init; }
    public required ulong BarAddress { get; init; }
    public required uint[] ConfigRegisters { get; init; }
    public required byte BarSizingBits { get; init; }
    public required uint Status { get; init; }
    public required uint DeviceFeaturesSel { get; init; }
    public required uint DriverFeaturesSel { get; init; }
    public required ulong DriverFeatures { get; init; }
    public required uint QueueSel { get; init; }
    public required uint IsrStatus { get; init; }
    public required bool Activated { get; init; }
    public required ushort ConfigVector { get; init; }
    public required VirtioPciQueueState[] Queues { get; init; }
    public required MsixTableState Msix { get; init; }

    public void Write(StateWriter w)
    {
        w.U32(DeviceType);
        w.U64(BarAddress);
        PciConfigSpace.WriteRegisters(w, ConfigRegisters);
        w.U8(BarSizingBits);
        w.U32(Status);
        w.U32(DeviceFeaturesSel);
        w.U32(DriverFeaturesSel);
        w.U64(DriverFeatures);
        w.U32(QueueSel);
        w.U32(IsrStatus);
        w.Bool(Activated);
        w.U16(ConfigVector);
        w.U32((uint)Queues.Length);
        foreach (var q in Queues)
        {
            w.U16(q.Size); w.Bool(q.Ready);
            w.U64(q.DescTable); w.U64(q.AvailRing); w.U64(q.UsedRing);
            w.U16(q.NextAvail); w.U16(q.NextUsed);
            w.U16(q.Vector);
        }
        Msix.Write(w);
    }

    public static VirtioPciTransportState Read(StateReader r)
    {
        uint type = r.U32();
        ulong bar = r.U64();
        var regs = PciConfigSpace.ReadRegisters(r);
        byte sizing = r.U8();
        if (sizing >= 1 << PciBars.Count) throw new SnapshotFormatException($"Section {r.Section} holds BAR sizing bits 0x{sizing:x2} past the six BARs.");
        uint status = r.U32(), devSel = r.U32(), drvSel = r.U32();
        ulong features = r.U64();
        uint queueSel = r.U32(), isr = r.U32();
        bool activated = r.Bool();
        ushort configVector = r.U16();
        int n = r.Count(MaxQueues);
        var queues = new VirtioPciQueueState[n];
        for (int i = 0; i < n; i++)
            queues[i] = new VirtioPciQueueState(r.U16(), r.Bool(), r.U64(), r.U64(), r.U64(), r.U16(), r.U16(), r.U16());
        var msix = MsixTableState.Read(r);
        // One vector per queue plus one for config changes: how every virtio-pci function here is built.
        if (msix.Count != n + 1)
            throw new SnapshotFormatException($"Section {r.Section} holds {msix.Count} MSI-X vectors for {n} queues (one per queue and one for config expected).");
        CheckVector(r, configVector, msix.Count, "config");
        for (int i = 0; i < n; i++) CheckVector(r, queues[i].Vector, msix.Count, $"queue {i}");
        return new VirtioPciTransportState
        {
            DeviceType = type, BarAddress = bar, ConfigRegisters = regs, BarSizingBits = sizing, Status = status,
            DeviceFeaturesSel = devSel, DriverFeaturesSel = drvSel, DriverFeatures = features, QueueSel = queueSel,
            IsrStatus = isr, Activated = activated, ConfigVector = configVector, Queues = queues, Msix = msix,
        };
    }

    /// <summary>A vector names a table entry or is NO_VECTOR: what the transport itself lets a driver write.</summary>
    private static void CheckVector(StateReader r, ushort vector, int count, string what)
    {
        if (vector != VirtioPciLayout.NoVector && vector >= count)
            throw new SnapshotFormatException($"Section {r.Section} gives the {what} MSI-X vector {vector}, the table has {count}.");
    }
}

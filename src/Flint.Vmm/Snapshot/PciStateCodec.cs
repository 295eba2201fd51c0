using Flint.Arch.X86;
using Flint.Devices.Pci;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Pci;
using Flint.Snapshot;
using Flint.Vmm.Pci;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// The "pci" section of a microVM started with --enable-pci (Firecracker's PciDevicesState): a section version, the
/// host bridge's config space, then per virtio-pci function its slot on bus 0, its transport
/// (<see cref="VirtioPciTransportState"/>) and its device's runtime state. Its presence is what makes a snapshot a PCI
/// one: the load builds the devices as virtio-pci functions (as Firecracker, the snapshot decides the transport, not
/// the loading process's flag), at the same slots and BARs, and restores them before any vCPU runs.
/// </summary>
public static class PciStateCodec
{
    /// <summary>The layout below; a section of another version is refused (the file's own version covers the rest).</summary>
    public const uint Version = 1;
    /// <summary>Slots 1-31: slot 0 is the host bridge.</summary>
    public const int MaxFunctions = PciRootBus.SlotCount - 1;
    /// <summary>A device's runtime state is a few hundred bytes (the balloon's stats buffer is the largest).</summary>
    public const int MaxRuntimeBytes = 1 << 20;

    public static void Save(PciDevices pci, StateWriter w)
    {
        w.U32(Version);
        HostBridge(pci.Bus).SaveState(w);
        var functions = new List<(int Slot, VirtioPciTransport T)>();
        for (int slot = 1; slot < PciRootBus.SlotCount; slot++)
            if (pci.Bus.Device(slot) is VirtioPciTransport t) functions.Add((slot, t));
        w.U32((uint)functions.Count);
        foreach (var (slot, t) in functions)
        {
            w.U8((byte)slot);
            t.CaptureState().Write(w);
            var runtime = new StateWriter();
            t.Device.SaveRuntime(runtime);
            w.Bytes(runtime.WrittenSpan);
        }
    }

    /// <summary>
    /// Parses and checks the section as hostile input: version, counts, slots (1-31, each once), every BAR inside the
    /// 64-bit PCI window and aligned to its size, vectors inside their tables (<see cref="VirtioPciTransportState.Read"/>).
    /// Throws <see cref="SnapshotFormatException"/>.
    /// </summary>
    public static PciSnapshotState Parse(StateReader r)
    {
        uint version = r.U32();
        if (version != Version) throw new SnapshotFormatException($"Section {r.Section} has version {version}; this build reads version {Version}.");
        var bridge = PciConfigSpace.ReadRegisters(r);
        int n = r.Count(MaxFunctions);
        var functions = new PciFunctionState[n];
        uint seen = 0;
        for (int i = 0; i < n; i++)
        {
            int slot = r.U8();
            if (slot is < 1 or >= PciRootBus.SlotCount || (seen & (1u << slot)) != 0)
                throw new SnapshotFormatException($"Section {r.Section} puts a device in PCI slot {slot} (slots 1-{PciRootBus.SlotCount - 1}, each once).");
            seen |= 1u << slot;
            var t = VirtioPciTransportState.Read(r);
            if (!BarInWindow(t.BarAddress))
                throw new SnapshotFormatException($"Section {r.Section} places the BAR of slot {slot} at 0x{t.BarAddress:x}, outside the PCI 64-bit MMIO window.");
            functions[i] = new PciFunctionState(slot, t, r.Bytes(MaxRuntimeBytes));
        }
        r.ExpectEnd();
        return new PciSnapshotState(bridge, functions);
    }

    /// <summary>The section of <paramref name="file"/>, parsed; null for a virtio-mmio snapshot.</summary>
    public static PciSnapshotState? ParseIfPresent(SnapshotFile file) =>
        file.Has(SnapshotSections.Pci) ? Parse(file.Open(SnapshotSections.Pci)) : null;

    /// <summary>
    /// Applies the state to the segment the load just built from the snapshot's configuration: the same devices in the
    /// same order, so the same slots and BARs; any difference is refused. Installs the MSI routes of every vector the
    /// table leaves deliverable (the irqfds and ioeventfds were registered when the functions were built).
    /// </summary>
    public static void Restore(PciSnapshotState s, PciDevices pci)
    {
        HostBridge(pci.Bus).RestoreState(s.HostBridgeRegisters, SnapshotSections.Pci);
        int built = 0;
        for (int slot = 1; slot < PciRootBus.SlotCount; slot++)
            if (pci.Bus.Device(slot) is VirtioPciTransport) built++;
        if (built != s.Functions.Count)
            throw new SnapshotFormatException($"The snapshot holds {s.Functions.Count} virtio-pci devices, its configuration builds {built}.");
        foreach (var f in s.Functions)
        {
            if (pci.Bus.Device(f.Slot) is not VirtioPciTransport t)
                throw new SnapshotFormatException($"The snapshot has a virtio-pci device in slot {f.Slot}, its configuration builds none there.");
            string section = $"{SnapshotSections.Pci}/{f.Slot}";
            t.RestoreState(f.Transport, section);
            t.Device.RestoreRuntime(new StateReader(section + "/runtime", f.Runtime));
        }
    }

    private static bool BarInWindow(ulong bar) =>
        bar >= Layout.PciMmio64Start && bar <= Layout.PciMmio64Start + Layout.PciMmio64Size - VirtioPciLayout.BarSize
        && bar % VirtioPciLayout.BarSize == 0;

    private static PciHostBridge HostBridge(PciRootBus bus) =>
        bus.Device(0) as PciHostBridge ?? throw new InvalidOperationException("PCI slot 0 holds no host bridge.");
}

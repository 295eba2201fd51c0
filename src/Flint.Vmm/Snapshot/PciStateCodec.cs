using Flint.Arch.X86;
using Flint.Devices.Pci;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Pci;
using Flint.Snapshot;
using Flint.Vmm.Config;
using Flint.Vmm.Pci;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// The "pci" section of a microVM started with --enable-pci (Firecracker's PciDevicesState): a section version, the
/// host bridge's config space, then per virtio-pci function its slot on bus 0, its configuration id and flags (version
/// 2; bit 0: a network device serving MMDS), its transport (<see cref="VirtioPciTransportState"/>, which holds the device type and the BAR address) and its device's
/// runtime state. Its presence is what makes a snapshot a PCI one: the load builds the devices as virtio-pci functions
/// (as Firecracker, the snapshot decides the transport, not the loading process's flag), each at its saved slot and BAR
/// (<see cref="Placement"/>: after a hotplug or unplug the configuration's order no longer says where a device sits),
/// and restores them before any vCPU runs.
/// </summary>
public static class PciStateCodec
{
    /// <summary>The layout below. Version 1 (no ids) is still read: its functions are rebuilt in configuration order
    /// and must land where they were; any other version is refused.</summary>
    public const uint Version = 2;
    /// <summary>Slots 1-31: slot 0 is the host bridge.</summary>
    public const int MaxFunctions = PciRootBus.SlotCount - 1;
    /// <summary>A device's runtime state is a few hundred bytes (the balloon's stats buffer is the largest).</summary>
    public const int MaxRuntimeBytes = 1 << 20;
    /// <summary>Longer than any id the API accepts (Firecracker's ids are at most 64 characters).</summary>
    public const int MaxIdBytes = 256;
    /// <summary>Flag bit: the function is a virtio-net with an MMDS stack. A hot-plugged interface has none even when
    /// mmds-config names its id (as Firecracker's hotplug_make_net), so the configuration alone cannot say.</summary>
    public const byte ServesMmdsFlag = 1;

    public static void Save(PciDevices pci, StateWriter w)
    {
        w.U32(Version);
        HostBridge(pci.Bus).SaveState(w);
        var functions = pci.Functions.Where(f => ReferenceEquals(pci.Bus.Device(f.Slot), f.Transport)).OrderBy(f => f.Slot).ToList();
        w.U32((uint)functions.Count);
        foreach (var f in functions)
        {
            w.U8((byte)f.Slot);
            w.String(f.Key.Id);
            w.U8(f.Transport.Device is Flint.Devices.Virtio.Net.VirtioNet { Mmds: not null } ? ServesMmdsFlag : (byte)0);
            f.Transport.CaptureState().Write(w);
            var runtime = new StateWriter();
            f.Transport.Device.SaveRuntime(runtime);
            w.Bytes(runtime.WrittenSpan);
        }
    }

    /// <summary>
    /// Parses and checks the section as hostile input: version, counts, slots (1-31, each once), every BAR inside the
    /// 64-bit PCI window, aligned to its size and apart from every other, each device (type and id) once, vectors
    /// inside their tables (<see cref="VirtioPciTransportState.Read"/>). Throws <see cref="SnapshotFormatException"/>.
    /// </summary>
    public static PciSnapshotState Parse(StateReader r)
    {
        uint version = r.U32();
        if (version is not (1 or Version)) throw new SnapshotFormatException($"Section {r.Section} has version {version}; this build reads versions 1 and {Version}.");
        var bridge = PciConfigSpace.ReadRegisters(r);
        int n = r.Count(MaxFunctions);
        var functions = new PciFunctionState[n];
        uint seen = 0;
        var bars = new HashSet<ulong>();
        var keys = new HashSet<PciDeviceKey>();
        for (int i = 0; i < n; i++)
        {
            int slot = r.U8();
            if (slot is < 1 or >= PciRootBus.SlotCount || (seen & (1u << slot)) != 0)
                throw new SnapshotFormatException($"Section {r.Section} puts a device in PCI slot {slot} (slots 1-{PciRootBus.SlotCount - 1}, each once).");
            seen |= 1u << slot;
            string? id = version >= 2 ? r.RequiredString(MaxIdBytes) : null;
            byte flags = version >= 2 ? r.U8() : (byte)0;
            var t = VirtioPciTransportState.Read(r);
            if ((flags & ~ServesMmdsFlag) != 0 || ((flags & ServesMmdsFlag) != 0 && t.DeviceType != VirtioDeviceType.Net))
                throw new SnapshotFormatException($"Section {r.Section} gives the device in slot {slot} flags 0x{flags:x2} it cannot have.");
            if (!BarInWindow(t.BarAddress))
                throw new SnapshotFormatException($"Section {r.Section} places the BAR of slot {slot} at 0x{t.BarAddress:x}, outside the PCI 64-bit MMIO window.");
            // Every BAR has the one size and is aligned to it: two overlap exactly when they start at the same address.
            if (!bars.Add(t.BarAddress))
                throw new SnapshotFormatException($"Section {r.Section} places the BAR of slot {slot} at 0x{t.BarAddress:x}, over another function's BAR.");
            if (id != null && !keys.Add(new PciDeviceKey(t.DeviceType, id)))
                throw new SnapshotFormatException($"Section {r.Section} holds {new PciDeviceKey(t.DeviceType, id)} twice.");
            functions[i] = new PciFunctionState(slot, t, r.Bytes(MaxRuntimeBytes)) { Id = id, ServesMmds = (flags & ServesMmdsFlag) != 0 };
        }
        r.ExpectEnd();
        return new PciSnapshotState(bridge, functions);
    }

    /// <summary>The section of <paramref name="file"/>, parsed; null for a virtio-mmio snapshot.</summary>
    public static PciSnapshotState? ParseIfPresent(SnapshotFile file) =>
        file.Has(SnapshotSections.Pci) ? Parse(file.Open(SnapshotSections.Pci)) : null;

    /// <summary>
    /// Where the build puts each function: its saved slot and BAR, by device key. Before anything is built, checks that
    /// the configuration builds exactly the devices the section holds (no function without a device, no device without
    /// a place). A version 1 section has no keys: null, and the build places the functions in configuration order.
    /// Throws <see cref="SnapshotFormatException"/>.
    /// </summary>
    public static PciPlacement? Placement(PciSnapshotState s, VmConfig config)
    {
        if (s.Functions.Any(f => f.Id == null)) return null;
        var placement = new PciPlacement();
        IReadOnlyList<string> mmdsIds;
        try { mmdsIds = ConfigLoader.Present(config.MmdsConfig) is { } mj ? DeviceConfigs.Mmds(mj).Interfaces : []; }
        catch (ConfigException e) { throw new SnapshotFormatException($"Section config holds an invalid mmds-config: {e.Message}"); }
        foreach (var f in s.Functions)
        {
            placement.Add(f.Key!.Value, f.Slot, f.Transport.BarAddress);
            if (!f.ServesMmds) continue;
            // The stack is built from mmds-config (version, address): an interface it does not name cannot have had one.
            if (!mmdsIds.Contains(f.Id!))
                throw new SnapshotFormatException($"Section {SnapshotSections.Pci} has {f.Key} serve MMDS, its mmds-config does not name it.");
            placement.MmdsInterfaces.Add(f.Id!);
        }
        var built = KeysBuiltBy(config);
        foreach (var k in built)
            if (!placement.Keys.Contains(k))
                throw new SnapshotFormatException($"The snapshot's configuration builds {k}, its {SnapshotSections.Pci} section holds no function for it.");
        foreach (var k in placement.Keys)
            if (!built.Contains(k))
                throw new SnapshotFormatException($"Section {SnapshotSections.Pci} holds a function for {k}, its configuration builds no such device.");
        return placement;
    }

    /// <summary>
    /// The virtio devices the builder makes from <paramref name="config"/> on a PCI segment, by key (VmBuilder's attach
    /// steps: drives other than vhost-user ones, which a snapshot never has (refused at create); interfaces; pmem; vsock; entropy; balloon; memory).
    /// </summary>
    public static HashSet<PciDeviceKey> KeysBuiltBy(VmConfig config)
    {
        var keys = new HashSet<PciDeviceKey>();
        foreach (var d in config.Drives)
            if (d.Socket == null) keys.Add(new(VirtioDeviceType.Block, d.DriveId));
        foreach (var n in config.NetworkInterfaces ?? [])
            if (n.TryGetProperty("iface_id", out var id) && id.ValueKind == System.Text.Json.JsonValueKind.String)
                keys.Add(new(VirtioDeviceType.Net, id.GetString()!));
        foreach (var p in config.Pmem) keys.Add(new(VirtioDeviceType.Pmem, p.Id));
        if (ConfigLoader.Present(config.Vsock) != null) keys.Add(new(VirtioDeviceType.Vsock, ""));
        if (ConfigLoader.Present(config.Entropy) != null) keys.Add(new(VirtioDeviceType.Rng, ""));
        if (ConfigLoader.Present(config.Balloon) != null) keys.Add(new(VirtioDeviceType.Balloon, ""));
        if (config.MemoryHotplug != null) keys.Add(new(VirtioDeviceType.Mem, ""));
        return keys;
    }

    /// <summary>
    /// Applies the state to the segment the load just built: every saved function must be where the section says (its
    /// slot, its BAR, the same device), and nothing else may be on the bus. Installs the MSI routes of every vector the
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
            if (f.Key is { } key && pci.Functions.FirstOrDefault(x => ReferenceEquals(x.Transport, t))?.Key != key)
                throw new SnapshotFormatException($"The snapshot has {key} in slot {f.Slot}, the VM was built with another device there.");
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

using Flint.Devices.Virtio.Mem;
using Flint.Memory;
using Flint.Snapshot;
using Flint.Vmm.Config;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// The virtio-mem section (<see cref="HotplugMemoryState"/>): saved beside the device's transport sections; read at
/// load twice, first for the hotplug area's layout (checked against the saved configuration before any memory is
/// mapped), then, once the VM is built, for the device's plugged blocks (which plug their slots again before the
/// transports are restored, so a queue the guest placed in hotplugged memory resolves).
/// </summary>
public static class VirtioMemStateCodec
{
    public const string Section = HotplugMemoryState.SectionName;

    public static void Save(VirtioMem device, GuestMemory memory, StateWriter w)
    {
        var (usable, requested, plugged, words) = device.SaveState();
        new HotplugMemoryState(device.Address, device.RegionSize, device.SlotSize, device.BlockSize, usable, requested, plugged,
            FileOffset: memory.TotalSize, words).Write(w);
    }

    /// <summary>
    /// The hotplug area the memory file holds after boot RAM, or null when the snapshot has none. The section and the
    /// configuration's memory-hotplug must come together and agree: base, region, slot and block sizes, and the
    /// area's offset right after boot RAM (<paramref name="bootRamSize"/>).
    /// </summary>
    public static HotplugLayout? Layout(SnapshotFile file, VmConfig config, ulong bootRamSize)
    {
        var hp = config.MemoryHotplug;
        bool saved = file.Has(Section);
        if (hp == null && !saved) return null;
        if (hp == null) throw new SnapshotFormatException($"Section {Section} is present, the snapshot's configuration has no memory-hotplug.");
        if (!saved) throw new SnapshotFormatException($"The snapshot's configuration has memory-hotplug, the snapshot lacks section {Section}.");
        var s = HotplugMemoryState.Read(file.Open(Section));
        if (s.GuestBase != Flint.Arch.X86.Layout.HotplugMemoryStart || s.RegionSize != (ulong)hp.TotalSizeMib << 20
            || s.SlotSize != (ulong)hp.SlotSizeMib << 20 || s.BlockSize != (ulong)hp.BlockSizeMib << 20)
            throw new SnapshotFormatException($"Section {Section}: region 0x{s.GuestBase:x}+0x{s.RegionSize:x} (slots 0x{s.SlotSize:x}, blocks 0x{s.BlockSize:x}) is not the configured memory-hotplug.");
        if (s.FileOffset != bootRamSize)
            throw new SnapshotFormatException($"Section {Section}: the area lies at memory file offset 0x{s.FileOffset:x}, boot RAM ends at 0x{bootRamSize:x}.");
        return new HotplugLayout(s.GuestBase, s.RegionSize, s.SlotSize);
    }

    /// <summary>The restored device takes its plugged blocks (plugging their slots); before the transports are restored.</summary>
    public static void Restore(SnapshotFile file, Vmm vmm)
    {
        var device = vmm.Devices.Memory;
        if (device == null)
        {
            if (file.Has(Section)) throw new SnapshotFormatException($"Section {Section} is present, the restored VM has no virtio-mem device.");
            return;
        }
        var s = HotplugMemoryState.Read(file.Open(Section));
        if (s.GuestBase != device.Address || s.RegionSize != device.RegionSize || s.SlotSize != device.SlotSize || s.BlockSize != device.BlockSize)
            throw new SnapshotFormatException($"Section {Section} does not describe the restored virtio-mem device.");
        device.RestoreState(s.UsableRegionSize, s.RequestedSize, s.PluggedWords);
    }
}

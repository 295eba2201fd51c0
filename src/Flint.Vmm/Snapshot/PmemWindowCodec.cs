using Flint.Arch.X86;
using Flint.Memory;
using Flint.Snapshot;
using Flint.Vmm.Config;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// The "pmem" section (each pmem device's window start and size, in configuration order) read before the build: a
/// restore maps each backing file back at the window the guest's driver saw, which after hotplugs and unplugs need not
/// be where a fresh boot puts it. Hostile input: windows aligned, inside the area past the 64-bit MMIO gap (after the
/// virtio-mem area), apart from each other, one per configured device.
/// </summary>
public static class PmemWindowCodec
{
    /// <summary>The saved window starts, in configuration order; null when the configuration has no pmem device.
    /// Throws <see cref="SnapshotFormatException"/>.</summary>
    public static IReadOnlyList<ulong>? Parse(SnapshotFile file, VmConfig config)
    {
        int devices = config.Pmem.Count;
        if (!file.Has(SnapshotSections.Pmem))
        {
            if (devices > 0) throw new SnapshotFormatException("The snapshot holds no pmem windows, its configuration builds pmem devices.");
            return null;
        }
        var r = file.Open(SnapshotSections.Pmem);
        int n = r.Count(64);
        if (n != devices) throw new SnapshotFormatException($"The snapshot holds {n} pmem devices, its configuration builds {devices}.");
        ulong hotplugBytes = config.MemoryHotplug is { } hp ? (ulong)hp.TotalSizeMib << 20 : 0;
        ulong low = Layout.PastMmio64Start + Math.Min(hotplugBytes, Layout.PastMmio64Size);
        const ulong High = Layout.PastMmio64Start + Layout.PastMmio64Size;
        var windows = new (ulong Start, ulong Size)[n];
        for (int i = 0; i < n; i++)
        {
            ulong start = r.U64(), size = r.U64();
            string id = config.Pmem[i].Id;
            if (size == 0 || size % PmemMapping.Alignment != 0 || start % PmemMapping.Alignment != 0 || start < low || start > High || size > High - start)
                throw new SnapshotFormatException($"Section {SnapshotSections.Pmem} places pmem \"{id}\" at 0x{start:x}+0x{size:x}, outside the pmem area [0x{low:x}-0x{High:x}) or not 2 MiB aligned.");
            for (int j = 0; j < i; j++)
                if (start < windows[j].Start + windows[j].Size && windows[j].Start < start + size)
                    throw new SnapshotFormatException($"Section {SnapshotSections.Pmem} places pmem \"{id}\" at 0x{start:x}, over pmem \"{config.Pmem[j].Id}\".");
            windows[i] = (start, size);
        }
        r.ExpectEnd();
        return n == 0 ? null : windows.Select(w => w.Start).ToArray();
    }
}

using Flint.Memory;
using Flint.Snapshot;
using Flint.SnapshotTool;
using Flint.Sys;
using Flint.Vmm.Snapshot;

namespace Flint.SnapshotTool.Tests;

/// <summary>
/// flint-snapshot with memory hotplug: info shows the virtio-mem section (area, memory-file offset, slots and blocks
/// plugged); merge puts a Diff of a VM with a hotplug area onto its base (the larger file: boot RAM then the area).
/// </summary>
public sealed class HotplugSnapshotToolTests : IDisposable
{
    private const ulong P = GuestMemory.PageSize, MiB = 1UL << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-hptool-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Info_shows_the_hotplug_area()
    {
        var f = StateInfoTests.Sample(null);
        var w = new StateWriter();
        new HotplugMemoryState(512UL << 30, 512 * MiB, 128 * MiB, 2 * MiB, 256 * MiB, 130 * MiB, 6 * MiB, 128 * MiB, [3UL, 1UL, 0, 0]).Write(w);
        f.Add(SnapshotSections.VirtioMem, w);
        string text = StateInfo.Describe(f);
        Assert.Contains("hotplug memory (virtio-mem): guest 0x8000000000, 0x20000000 bytes (512 MiB), memory file offset 0x8000000\n", text);
        Assert.Contains("  slots of 128 MiB: 2 of 4 plugged (the others are holes in the memory file)\n", text);
        Assert.Contains("  blocks of 2 MiB: 3 of 256 plugged; plugged 6 MiB, requested 130 MiB, usable 256 MiB\n", text);
    }

    [Fact]
    public void Info_refuses_a_hostile_virtio_mem_section()
    {
        var f = StateInfoTests.Sample(null);
        var w = new StateWriter();
        new HotplugMemoryState(512UL << 30, 512 * MiB, 128 * MiB, 2 * MiB, 256 * MiB, 130 * MiB, 8 * MiB, 128 * MiB, [3UL, 1UL, 0, 0]).Write(w);
        f.Add(SnapshotSections.VirtioMem, w);
        string path = Path.Combine(_dir, "bad.snap");
        f.Save(path);
        var e = Assert.Throws<ToolException>(() => StateInfo.Describe(path));
        Assert.Contains("plugged size", e.Message);
    }

    [Fact]
    public void A_diff_with_a_hotplug_area_merges_onto_its_base()
    {
        const ulong boot = 32 * P, slot = 16 * P, area = 4 * slot;
        using var mem = GuestMemory.Create([(0UL, boot)]);
        mem.EnableDirtyTracking();
        var a = mem.AddHotplugArea(512UL << 30, area, slot);
        a.SetSlotAccessible(2, true);
        mem.Fill(0, boot, 0x11);
        mem.Fill((512UL << 30) + 2 * slot, slot, 0x22);
        string baseFile = Path.Combine(_dir, "base.mem"), diffFile = Path.Combine(_dir, "diff.mem");
        mem.DumpToFile(baseFile);
        mem.ResetDirty();
        mem.Fill((512UL << 30) + 2 * slot + 3 * P, P, 0x33);
        mem.DumpDirtyToFile(diffFile, (_, _, _) => { });
        Assert.Equal((long)(boot + area), new FileInfo(diffFile).Length);

        Assert.Equal((long)P, MemoryRebase.Rebase(baseFile, diffFile));
        var merged = File.ReadAllBytes(baseFile);
        Assert.Equal((int)(boot + area), merged.Length);
        Assert.Equal(0x11, merged[boot - 1]);
        Assert.Equal(0x22, merged[boot + 2 * slot]);
        Assert.Equal(0x33, merged[boot + 2 * slot + 3 * P]);
        Assert.Equal(0, merged[boot + slot]); // unplugged slot: a hole
    }
}

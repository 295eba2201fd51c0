using Flint.Snapshot;
using Flint.Vmm.Config;
using Flint.Vmm.Snapshot;

namespace Flint.Vmm.Tests;

/// <summary>
/// The hotplug area's layout a load reads from the virtio-mem section before it maps any memory: the section and the
/// saved configuration's memory-hotplug come together and agree (base, sizes, file offset right after boot RAM), or
/// the load is refused with nothing built.
/// </summary>
public sealed class VirtioMemSnapshotLayoutTests
{
    private const ulong MiB = 1UL << 20, Boot = 128 * MiB;

    private static VmConfig Config(uint totalMib = 512, uint slotMib = 128, uint blockMib = 2) => new()
    {
        MachineConfig = new MachineConfig { VcpuCount = 1, MemSizeMib = 128 },
        MemoryHotplug = new MemoryHotplugConfig { TotalSizeMib = totalMib, SlotSizeMib = slotMib, BlockSizeMib = blockMib },
    };

    private static SnapshotFile File(HotplugMemoryState? s)
    {
        var f = new SnapshotFile();
        if (s != null)
        {
            var w = new StateWriter();
            s.Write(w);
            f.Add(SnapshotSections.VirtioMem, w);
        }
        return f;
    }

    private static HotplugMemoryState State(ulong fileOffset = Boot) =>
        new(512UL << 30, 512 * MiB, 128 * MiB, 2 * MiB, 128 * MiB, 2 * MiB, 2 * MiB, fileOffset, [1UL, 0, 0, 0]);

    [Fact]
    public void A_matching_section_gives_the_area_after_boot_ram()
    {
        Assert.Equal(new Flint.Memory.HotplugLayout(512UL << 30, 512 * MiB, 128 * MiB), VirtioMemStateCodec.Layout(File(State()), Config(), Boot));
        Assert.Null(VirtioMemStateCodec.Layout(File(null), new VmConfig { MachineConfig = new MachineConfig() }, Boot));
    }

    [Fact]
    public void Section_and_configuration_must_come_together_and_agree()
    {
        var noHotplug = new VmConfig { MachineConfig = new MachineConfig() };
        Assert.Contains("no memory-hotplug", Assert.Throws<SnapshotFormatException>(() => VirtioMemStateCodec.Layout(File(State()), noHotplug, Boot)).Message);
        Assert.Contains("lacks section virtio-mem", Assert.Throws<SnapshotFormatException>(() => VirtioMemStateCodec.Layout(File(null), Config(), Boot)).Message);
        Assert.Contains("not the configured", Assert.Throws<SnapshotFormatException>(() => VirtioMemStateCodec.Layout(File(State()), Config(totalMib: 1024), Boot)).Message);
        Assert.Contains("not the configured", Assert.Throws<SnapshotFormatException>(() => VirtioMemStateCodec.Layout(File(State()), Config(slotMib: 256), Boot)).Message);
        Assert.Contains("not the configured", Assert.Throws<SnapshotFormatException>(() => VirtioMemStateCodec.Layout(File(State()), Config(blockMib: 4), Boot)).Message);
        Assert.Contains("memory file offset", Assert.Throws<SnapshotFormatException>(() => VirtioMemStateCodec.Layout(File(State(64 * MiB)), Config(), Boot)).Message);
        // A hostile section is refused by its own checks first.
        Assert.Contains("plugged size", Assert.Throws<SnapshotFormatException>(() =>
            VirtioMemStateCodec.Layout(File(State() with { PluggedSize = 4 * MiB }), Config(), Boot)).Message);
    }
}

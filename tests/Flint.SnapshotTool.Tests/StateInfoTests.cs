using Flint.Snapshot;
using Flint.SnapshotTool;
using Flint.Vmm.Snapshot;

namespace Flint.SnapshotTool.Tests;

/// <summary>flint-snapshot info on state files built here with the Vmm's section layout.</summary>
public sealed class StateInfoTests
{
    internal static SnapshotFile Sample(MemoryFileInfo? mf)
    {
        var f = new SnapshotFile();
        var c = new StateWriter();
        c.String("""{"machine-config":{"vcpu_count":2,"mem_size_mib":128,"smt":false,"track_dirty_pages":true},"drives":[{"drive_id":"rootfs"}],"network-interfaces":[{"iface_id":"eth0"}],"vsock":{"guest_cid":3}}""");
        f.Add(SnapshotSections.Config, c);
        var m = new StateWriter();
        m.U32(2); m.U64(0); m.U64(0x4000000); m.U64(0x100000000); m.U64(0x4000000);
        f.Add(SnapshotSections.Memory, m);
        if (mf != null) { var w = new StateWriter(); mf.Write(w); f.Add(SnapshotSections.MemoryFile, w); }
        foreach (var (slot, type) in new[] { (0, 2u), (1, 1u), (2, 19u) }) { var w = new StateWriter(); w.U32(type); f.Add(SnapshotSections.Virtio(slot), w); }
        f.Add(SnapshotSections.Vcpu(0), new StateWriter());
        f.Add(SnapshotSections.Vcpu(1), new StateWriter());
        return f;
    }

    [Fact]
    public void Describes_a_diff()
    {
        string text = StateInfo.Describe(Sample(new MemoryFileInfo(MemoryFileKind.Diff, 4096, DirtySource.DirtyLog)));
        Assert.Contains("version: v1.0.0\n", text);
        Assert.Contains("architecture: x86_64\n", text);
        Assert.Contains("vcpus: 2\n", text);
        Assert.Contains("memory: 134217728 bytes (128 MiB) in 2 regions\n", text);
        Assert.Contains("  region 1: guest 0x100000000, 0x4000000 bytes, memory file offset 0x4000000\n", text);
        Assert.Contains("memory file: diff, page size 4096, pages dirtied since the previous snapshot", text);
        Assert.Contains("  drive rootfs\n", text);
        Assert.Contains("  network interface eth0\n", text);
        Assert.Contains("  virtio/0: virtio block\n", text);
        Assert.Contains("  virtio/2: virtio vsock\n", text);
    }

    [Fact]
    public void Counts_the_PCI_functions()
    {
        var f = Sample(null);
        var w = new StateWriter();
        w.U32(PciStateCodec.Version);
        new Flint.Devices.Pci.PciHostBridge().SaveState(w);
        w.U32(2);
        f.Add(SnapshotSections.Pci, w);
        Assert.Contains("  pci: 2 virtio-pci function(s) (--enable-pci)\n", StateInfo.Describe(f));
    }

    [Fact]
    public void A_file_without_the_memory_file_section_is_full()
    {
        Assert.Contains("memory file: full, page size 4096\n", StateInfo.Describe(Sample(null)));
    }

    [Fact]
    public void The_tool_reads_the_section_names_the_VMM_writes()
    {
        Assert.Equal(SnapshotSections.Config, StateInfo.ConfigSection);
        Assert.Equal(SnapshotSections.Memory, StateInfo.MemorySection);
        Assert.Equal(SnapshotSections.Mmds, StateInfo.MmdsSection);
        Assert.Equal(SnapshotSections.Pci, StateInfo.PciSection);
        Assert.StartsWith(StateInfo.VcpuPrefix, SnapshotSections.Vcpu(3));
        Assert.StartsWith(StateInfo.VirtioPrefix, SnapshotSections.Virtio(3));
    }

    [Fact]
    public void A_bad_memory_file_section_is_a_format_error()
    {
        var w = new StateWriter();
        w.U8(1); w.U32(3000); w.U8(1);
        Assert.Throws<SnapshotFormatException>(() => MemoryFileInfo.Read(new StateReader("memory_file", w.ToArray())));
    }
}

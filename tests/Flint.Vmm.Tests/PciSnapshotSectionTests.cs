using System.Buffers.Binary;
using Flint.Arch.X86;
using Flint.Devices.Pci;
using Flint.Devices.Virtio.Pci;
using Flint.Memory;
using Flint.Snapshot;
using Flint.Vmm.Config;
using Flint.Vmm.Snapshot;

namespace Flint.Vmm.Tests;

/// <summary>
/// The "pci" section without KVM: its parser as hostile input (version, counts, slots, BARs outside the PCI window,
/// vectors), and the loader: a bad section is refused before anything is built, a good one makes the build a PCI one
/// whatever this process's flag (Firecracker: the snapshot decides the transport).
/// </summary>
public sealed class PciSnapshotSectionTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private static byte[] Section(uint version = PciStateCodec.Version, params (int Slot, ulong Bar)[] functions) =>
        PciSectionSample.Write(version, functions).ToArray();

    private static PciSnapshotState Parse(byte[] b) => PciStateCodec.Parse(new StateReader(SnapshotSections.Pci, b));

    private static string Refused(byte[] b) => Assert.Throws<SnapshotFormatException>(() => Parse(b)).Message;

    [Fact]
    public void A_section_parses_back_to_its_functions()
    {
        var s = Parse(Section(functions: [(1, Layout.PciMmio64Start), (2, Layout.PciMmio64Start + VirtioPciLayout.BarSize)]));
        Assert.Equal([1, 2], s.Functions.Select(f => f.Slot));
        Assert.Equal(Layout.PciMmio64Start + VirtioPciLayout.BarSize, s.Functions[1].Transport.BarAddress);
        Assert.Equal(PciConfigSpace.SavedRegisterCount, s.HostBridgeRegisters.Length);
        Assert.Equal(4, s.Functions[0].Runtime.Length);
    }

    [Fact]
    public void Hostile_sections_are_refused()
    {
        Assert.Contains("version 2", Refused(Section(version: 2)));
        Assert.Contains("slot 0", Refused(Section(functions: [(0, Layout.PciMmio64Start)])));
        Assert.Contains("slot 32", Refused(Section(functions: [(32, Layout.PciMmio64Start)])));
        Assert.Contains("slot 3", Refused(Section(functions: [(3, Layout.PciMmio64Start), (3, Layout.PciMmio64Start + VirtioPciLayout.BarSize)])));
        // BARs on RAM, below the window, past its end, not aligned to their size.
        foreach (ulong bar in new[] { 0x1000_0000UL, Layout.PciMmio64Start - VirtioPciLayout.BarSize,
                     Layout.PciMmio64Start + Layout.PciMmio64Size, Layout.PciMmio64Start + 0x1000 })
            Assert.Contains("outside the PCI 64-bit MMIO window", Refused(Section(functions: [(1, bar)])));
        // A function count past the bus, before anything is read for it.
        var many = Section();
        BinaryPrimitives.WriteUInt32LittleEndian(many.AsSpan(many.Length - 4), 1000);
        Assert.Contains("count of 1000", Refused(many));
        // Trailing bytes and every truncation.
        var good = Section(functions: [(1, Layout.PciMmio64Start)]);
        Assert.Contains("trailing", Refused([.. good, 0]));
        for (int n = 0; n < good.Length; n++) Assert.Throws<SnapshotFormatException>(() => Parse(good[..n]));
    }

    // ---- the loader ----

    private (string Snap, string Mem) Files(byte[]? pciSection)
    {
        var f = new SnapshotFile();
        var w = new StateWriter();
        w.String("{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}}");
        f.Add(SnapshotSections.Config, w);
        f.Add(SnapshotSections.Memory, SnapshotCreator.MemorySection(new VmConfig { MachineConfig = new MachineConfig { VcpuCount = 1, MemSizeMib = 64 } }));
        f.Add(SnapshotSections.Vcpu(0), new StateWriter());
        if (pciSection != null)
        {
            var p = new StateWriter();
            p.Raw(pciSection);
            f.Add(SnapshotSections.Pci, p);
        }
        string snap = Path.Combine(_dir, "vm.snap"), mem = Path.Combine(_dir, "vm.mem");
        File.WriteAllBytes(snap, f.Serialize());
        using (var m = File.Create(mem)) m.SetLength(64L << 20);
        return (snap, mem);
    }

    private static SnapshotLoadParams Params(string snap, string mem) => new(snap, "File", mem, false, false, false, [], null);

    /// <summary>Loads through the real loader with a builder that records its PCI flag and then fails (no KVM here).</summary>
    private static (SnapshotException Error, bool? BuiltWithPci) Load(string snap, string mem)
    {
        bool? pci = null;
        var e = Assert.Throws<SnapshotException>(() => SnapshotLoader.Load(Params(snap, mem),
            (_, memory, withPci) => { pci = withPci; memory.Dispose(); throw new InvalidOperationException("no KVM here"); }, _ => { }, null));
        return (e, pci);
    }

    [Fact]
    public void A_corrupt_pci_section_is_refused_before_anything_is_built()
    {
        var (snap, mem) = Files(Section(functions: [(1, 0x1000_0000UL)]));
        var (e, built) = Load(snap, mem);
        Assert.Null(built);
        Assert.False(e.Fatal);
        Assert.StartsWith("Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state from file: Failed to load snapshot state from file: Section pci places the BAR",
            e.Message);
    }

    [Fact]
    public void The_snapshot_decides_the_transport_of_the_build()
    {
        var (snap, mem) = Files(Section(functions: [(1, Layout.PciMmio64Start)]));
        Assert.True(Load(snap, mem).BuiltWithPci);
        (snap, mem) = Files(null);
        Assert.False(Load(snap, mem).BuiltWithPci);
    }
}

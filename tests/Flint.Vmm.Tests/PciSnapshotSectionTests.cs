using System.Buffers.Binary;
using Flint.Arch.X86;
using Flint.Devices.Pci;
using Flint.Devices.Virtio;
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

    internal static byte[] Section(uint version, params PciSectionSample.Fn[] functions) => Section(version, functions, VirtioDeviceType.Rng);

    /// <param name="deviceType">Written over the rng's type in each transport state (a hand-made net function).</param>
    internal static byte[] Section(uint version, PciSectionSample.Fn[] functions, uint deviceType) =>
        PciSectionSample.Write(version, functions, deviceType).ToArray();

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
        Assert.Contains("version 3", Refused(Section(3, new PciSectionSample.Fn(1, Layout.PciMmio64Start))));
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

    private const string EntropyConfig = "\"entropy\": {}";

    private (string Snap, string Mem) Files(byte[]? pciSection, string devices = EntropyConfig, Action<SnapshotFile>? more = null)
    {
        var f = new SnapshotFile();
        var w = new StateWriter();
        w.String("{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}, " + devices + "}");
        f.Add(SnapshotSections.Config, w);
        f.Add(SnapshotSections.Memory, SnapshotCreator.MemorySection(new VmConfig { MachineConfig = new MachineConfig { VcpuCount = 1, MemSizeMib = 64 } }));
        f.Add(SnapshotSections.Vcpu(0), new StateWriter());
        if (pciSection != null)
        {
            var p = new StateWriter();
            p.Raw(pciSection);
            f.Add(SnapshotSections.Pci, p);
        }
        more?.Invoke(f);
        string snap = Path.Combine(_dir, "vm.snap"), mem = Path.Combine(_dir, "vm.mem");
        File.WriteAllBytes(snap, f.Serialize());
        using (var m = File.Create(mem)) m.SetLength(64L << 20);
        return (snap, mem);
    }

    private static SnapshotLoadParams Params(string snap, string mem) => new(snap, "File", mem, false, false, false, [], null);

    /// <summary>Loads through the real loader with a builder that records its plan and then fails (no KVM here).</summary>
    private static (SnapshotException Error, RestorePlan? Plan) LoadPlan(string snap, string mem)
    {
        RestorePlan? plan = null;
        var e = Assert.Throws<SnapshotException>(() => SnapshotLoader.Load(Params(snap, mem),
            (_, memory, p) => { plan = p; memory.Dispose(); throw new InvalidOperationException("no KVM here"); }, _ => { }, null));
        return (e, plan);
    }

    private static (SnapshotException Error, bool? BuiltWithPci) Load(string snap, string mem)
    {
        var (e, plan) = LoadPlan(snap, mem);
        return (e, plan?.Pci);
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
        var (snap, mem) = Files(Section(PciStateCodec.Version, new PciSectionSample.Fn(1, Layout.PciMmio64Start, "")));
        Assert.True(Load(snap, mem).BuiltWithPci);
        (snap, mem) = Files(null);
        Assert.False(Load(snap, mem).BuiltWithPci);
    }

    // ---- after hotplug and unplug: ids, placement, hostile sections ----

    [Fact]
    public void A_section_keeps_each_functions_id_and_mmds_flag_and_a_version_1_section_still_parses()
    {
        ulong bar = Layout.PciMmio64Start;
        var s = Parse(Section(PciStateCodec.Version, new PciSectionSample.Fn(3, bar + VirtioPciLayout.BarSize, ""), new PciSectionSample.Fn(1, bar, "x")));
        Assert.Equal([3, 1], s.Functions.Select(f => f.Slot));
        Assert.Equal(["", "x"], s.Functions.Select(f => f.Id));
        Assert.Equal(new Flint.Vmm.Pci.PciDeviceKey(Flint.Devices.Virtio.VirtioDeviceType.Rng, "x"), s.Functions[1].Key);
        var v1 = Parse(Section(1, new PciSectionSample.Fn(1, bar)));
        Assert.Null(v1.Functions[0].Id);
        Assert.Null(PciStateCodec.Placement(v1, new VmConfig())); // configuration order, checked slot by slot at restore
    }

    [Fact]
    public void Sections_that_overlap_BARs_repeat_a_slot_or_a_device_or_leave_the_window_are_refused()
    {
        ulong bar = Layout.PciMmio64Start;
        Assert.Contains("over another function's BAR", Refused(Section(PciStateCodec.Version, new PciSectionSample.Fn(1, bar), new PciSectionSample.Fn(3, bar))));
        Assert.Contains("PCI slot 3", Refused(Section(PciStateCodec.Version, new PciSectionSample.Fn(3, bar), new PciSectionSample.Fn(3, bar + VirtioPciLayout.BarSize))));
        Assert.Contains("entropy \"a\" twice", Refused(Section(PciStateCodec.Version, new PciSectionSample.Fn(1, bar, "a"), new PciSectionSample.Fn(2, bar + VirtioPciLayout.BarSize, "a"))));
        Assert.Contains("outside the PCI 64-bit MMIO window",
            Refused(Section(PciStateCodec.Version, new PciSectionSample.Fn(1, Layout.PciMmio64Start + Layout.PciMmio64Size - VirtioPciLayout.BarSize / 2))));
        // Flags: unknown bits, and MMDS on a device that is not a network interface.
        Assert.Contains("flags 0x02", Refused(Section(PciStateCodec.Version, new PciSectionSample.Fn(1, bar, Flags: 2))));
        Assert.Contains("flags 0x01", Refused(Section(PciStateCodec.Version, new PciSectionSample.Fn(1, bar, Flags: PciStateCodec.ServesMmdsFlag))));
        // An id longer than any the API takes, before it is allocated.
        Assert.Contains("more than 256", Refused(Section(PciStateCodec.Version, new PciSectionSample.Fn(1, bar, new string('i', 300)))));
        var good = Section(PciStateCodec.Version, new PciSectionSample.Fn(1, bar, "id"));
        for (int n = 0; n < good.Length; n++) Assert.Throws<SnapshotFormatException>(() => Parse(good[..n]));
    }

    [Fact]
    public void The_placement_refuses_a_section_and_configuration_that_name_different_devices()
    {
        var s = Parse(Section(PciStateCodec.Version, new PciSectionSample.Fn(2, Layout.PciMmio64Start, "")));
        var withEntropy = Config(EntropyConfig);
        var p = PciStateCodec.Placement(s, withEntropy)!;
        Assert.True(p.TryTake(new(Flint.Devices.Virtio.VirtioDeviceType.Rng, ""), out int slot, out ulong at));
        Assert.Equal((2, Layout.PciMmio64Start), (slot, at));
        Assert.Contains("holds a function for entropy, its configuration builds no such device",
            Assert.Throws<SnapshotFormatException>(() => PciStateCodec.Placement(s, Config("\"drives\": []"))).Message);
        Assert.Contains("builds balloon, its pci section holds no function for it",
            Assert.Throws<SnapshotFormatException>(() => PciStateCodec.Placement(s, Config(EntropyConfig + ", \"balloon\": {\"amount_mib\": 0, \"deflate_on_oom\": false}"))).Message);
    }

    private static VmConfig Config(string devices) =>
        System.Text.Json.JsonSerializer.Deserialize("{" + devices + "}", ConfigJsonContext.Default.VmConfig)!;

    [Fact]
    public void A_loader_hands_the_build_each_functions_saved_slot_and_BAR()
    {
        ulong bar = Layout.PciMmio64Start + 5 * VirtioPciLayout.BarSize;
        var (snap, mem) = Files(Section(PciStateCodec.Version, new PciSectionSample.Fn(7, bar, "")));
        var plan = LoadPlan(snap, mem).Plan!;
        Assert.True(plan.Pci);
        Assert.True(plan.PciPlacement!.TryTake(new(Flint.Devices.Virtio.VirtioDeviceType.Rng, ""), out int slot, out ulong at));
        Assert.Equal((7, bar), (slot, at));
        Assert.Null(plan.PmemWindows);
    }

    [Fact]
    public void A_section_naming_a_device_the_configuration_lacks_is_refused_before_anything_is_built()
    {
        var (snap, mem) = Files(Section(PciStateCodec.Version, new PciSectionSample.Fn(1, Layout.PciMmio64Start, "")), devices: "\"drives\": []");
        var (e, plan) = LoadPlan(snap, mem);
        Assert.Null(plan);
        Assert.False(e.Fatal);
        Assert.EndsWith("Section pci holds a function for entropy, its configuration builds no such device.", e.Message);
    }

    private static void PmemSection(SnapshotFile f, params (ulong Start, ulong Size)[] windows)
    {
        var w = new StateWriter();
        w.U32((uint)windows.Length);
        foreach (var (start, size) in windows) { w.U64(start); w.U64(size); }
        f.Add(SnapshotSections.Pmem, w);
    }

    private const string TwoPmems = "\"pmem\": [{\"id\": \"p0\", \"path_on_host\": \"/p0\"}, {\"id\": \"p1\", \"path_on_host\": \"/p1\"}]";

    [Fact]
    public void Pmem_windows_go_back_where_they_were_and_hostile_ones_are_refused_before_the_build()
    {
        const ulong Mib2 = 2 << 20;
        ulong area = Layout.PastMmio64Start;
        // p0 was unplugged and plugged again after p1: p1 first, p0 after it, a gap a fresh boot would not leave.
        var (snap, mem) = Files(null, TwoPmems, f => PmemSection(f, (area + 2 * Mib2, Mib2), (area, Mib2)));
        Assert.Equal([area + 2 * Mib2, area], LoadPlan(snap, mem).Plan!.PmemWindows);

        foreach (var (windows, error) in new (ulong, ulong, ulong, ulong, string)[]
                 {
                     (area, Mib2, area + Mib2 / 2, Mib2, "not 2 MiB aligned"),
                     (area, 2 * Mib2, area + Mib2, Mib2, "over pmem \"p0\""),
                     (area - Mib2, Mib2, area + Mib2, Mib2, "outside the pmem area"),
                     (area, Mib2, area + Layout.PastMmio64Size - Mib2, 2 * Mib2, "outside the pmem area"),
                     (area, 0, area + Mib2, Mib2, "outside the pmem area"),
                 }.Select(t => (new[] { (t.Item1, t.Item2), (t.Item3, t.Item4) }, t.Item5)))
        {
            (snap, mem) = Files(null, TwoPmems, f => PmemSection(f, windows));
            var (e, plan) = LoadPlan(snap, mem);
            Assert.Null(plan);
            Assert.Contains(error, e.Message);
        }
        (snap, mem) = Files(null, TwoPmems, f => PmemSection(f, (area, Mib2)));
        Assert.Contains("holds 1 pmem devices, its configuration builds 2", LoadPlan(snap, mem).Error.Message);
    }
}

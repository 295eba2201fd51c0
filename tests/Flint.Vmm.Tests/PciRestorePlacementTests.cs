using System.Buffers.Binary;
using Flint.Devices;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Devices.Virtio.Pci;
using Flint.Memory;
using Flint.Snapshot;
using Flint.Sys;
using Flint.Vmm.Builder;
using Flint.Vmm.Config;
using Flint.Vmm.Pci;
using Flint.Vmm.Snapshot;

namespace Flint.Vmm.Tests;

/// <summary>
/// A snapshot of a bus that hotplugs and unplugs changed, without KVM (PciDevices over a recording VM): the section
/// saves each function's id, slot and BAR; a segment built with the section's placement puts every function back at
/// its slot and BAR whatever the configuration's order, leaves the holes empty, restores cleanly, and a later hotplug
/// fills the lowest hole. A network interface serves MMDS after the restore only if it did before.
/// </summary>
[Collection(FdCountingCollection.Name)]
public sealed class PciRestorePlacementTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-pcirestore-").FullName;
    private readonly List<Segment> _segments = [];

    public void Dispose()
    {
        foreach (var s in _segments) s.Dispose();
        Directory.Delete(_dir, true);
    }

    /// <summary>One VM's PCI segment over a recording VM, with its own buses, loop and memory.</summary>
    private sealed class Segment : IDisposable
    {
        public RecordingPciVm Vm { get; } = new();
        public GuestMemory Memory { get; } = GuestMemory.Create(Flint.Arch.X86.MemoryLayout.RamRanges(16 << 20));
        public EventLoop Loop { get; } = new();
        public Bus Mmio { get; } = new();
        public Bus Pio { get; } = new();
        public List<IDisposable> Owned { get; } = [];
        public PciDevices Pci { get; }

        public Segment(PciPlacement? placement) => Pci = new PciDevices(Vm, Memory, Mmio, Pio, Loop, Owned, placement);

        public uint Vendor(int slot)
        {
            Span<byte> b = stackalloc byte[4];
            Assert.True(Mmio.Read(PciDevices.Ecam.BaseAddress + ((ulong)slot << 15), b));
            return BinaryPrimitives.ReadUInt32LittleEndian(b);
        }

        public void Dispose()
        {
            for (int i = Owned.Count - 1; i >= 0; i--) Owned[i].Dispose();
            Loop.Dispose();
            Memory.Dispose();
        }
    }

    private Segment NewSegment(PciPlacement? placement = null)
    {
        var s = new Segment(placement);
        _segments.Add(s);
        return s;
    }

    private string Image(string id)
    {
        string p = Path.Combine(_dir, id + ".img");
        if (!File.Exists(p)) File.WriteAllBytes(p, new byte[4096]);
        return p;
    }

    private VirtioBlock Block(string id) => new(Image(id), false, id, new RateLimiter(new RateLimiterConfig(null, null)));

    private DriveConfig Drive(string id) => new() { DriveId = id, PathOnHost = Image(id), IsRootDevice = false };

    private static PciSnapshotState SaveAndParse(PciDevices pci)
    {
        var w = new StateWriter();
        PciStateCodec.Save(pci, w);
        return PciStateCodec.Parse(new StateReader(SnapshotSections.Pci, w.ToArray()));
    }

    [Fact]
    public void Functions_moved_by_hotplug_and_unplug_come_back_at_their_saved_slots_and_BARs()
    {
        var live = NewSegment();
        var a = live.Pci.Plug(Block("a"), "a");
        var b = live.Pci.Plug(Block("b"), "b");
        var c = live.Pci.Plug(Block("c"), "c");
        live.Pci.Unplug(a);
        live.Pci.Unplug(b);
        var d = live.Pci.Plug(Block("d"), "d"); // the lowest free slot and BAR: a's
        Assert.Equal((1, a.Bar), (d.Slot, d.Bar));
        Assert.Equal(3, c.Slot);

        var state = SaveAndParse(live.Pci);
        Assert.Equal([(1, "d", d.Bar), (3, "c", c.Bar)], state.Functions.Select(f => (f.Slot, f.Id, f.Transport.BarAddress)));
        // The configuration lists c (from the boot) before d (plugged later): a fresh build would give c slot 1.
        var config = new VmConfig { Drives = [Drive("c"), Drive("d")] };
        var restored = NewSegment(PciStateCodec.Placement(state, config));
        foreach (var drive in config.Drives) restored.Pci.Plug(Block(drive.DriveId), drive.DriveId);

        var byId = restored.Pci.Functions.ToDictionary(f => f.Key.Id);
        Assert.Equal((3, c.Bar), (byId["c"].Slot, byId["c"].Bar));
        Assert.Equal((1, d.Bar), (byId["d"].Slot, byId["d"].Bar));
        Assert.Equal(0xffff_ffffu, restored.Vendor(2)); // the unplugged b's slot stays empty
        Assert.Equal(0x1042_1af4u, restored.Vendor(3));
        Assert.False(restored.Mmio.TryResolve(b.Bar, out _, out _)); // and nothing answers at its BAR
        Assert.True(restored.Mmio.TryResolve(c.Bar, out var atC, out _));
        Assert.Same(byId["c"].Transport, atC);
        Assert.Contains(byId["c"].Transport.NotifyAddress(0), restored.Vm.Doorbells.Select(x => x.Addr));

        PciStateCodec.Restore(state, restored.Pci);

        // A hotplug after the restore fills the lowest hole, slot and BAR, as it would have in the old process.
        var e = restored.Pci.Plug(Block("e"), "e");
        Assert.Equal((2, b.Bar), (e.Slot, e.Bar));
        var f = restored.Pci.Plug(Block("f"), "f");
        Assert.Equal((4, c.Bar + VirtioPciLayout.BarSize), (f.Slot, f.Bar));
    }

    [Fact]
    public void A_bus_rebuilt_in_configuration_order_is_refused_by_the_restore()
    {
        var live = NewSegment();
        var a = live.Pci.Plug(Block("a"), "a");
        live.Pci.Plug(Block("b"), "b");
        live.Pci.Unplug(a);
        var state = SaveAndParse(live.Pci);
        var wrong = NewSegment(); // no placement: b lands in slot 1
        wrong.Pci.Plug(Block("b"), "b");
        var error = Assert.Throws<SnapshotFormatException>(() => PciStateCodec.Restore(state, wrong.Pci));
        Assert.Contains("slot 2", error.Message);
    }

    [Fact]
    public void A_placement_that_clashes_with_the_bus_fails_the_plug_and_takes_nothing()
    {
        var placement = new PciPlacement();
        placement.Add(new(VirtioDeviceType.Block, "x"), 1, Flint.Arch.X86.Layout.PciMmio64Start);
        placement.Add(new(VirtioDeviceType.Block, "y"), 1, Flint.Arch.X86.Layout.PciMmio64Start + VirtioPciLayout.BarSize);
        var s = NewSegment(placement);
        s.Pci.Plug(Block("x"), "x");
        int owned = s.Owned.Count, doorbells = s.Vm.Doorbells.Count;
        using var y = Block("y");
        Assert.Contains("slot 1, which is taken", Assert.Throws<InvalidOperationException>(() => s.Pci.Plug(y, "y")).Message);
        Assert.Equal((owned, doorbells, 1), (s.Owned.Count, s.Vm.Doorbells.Count, s.Pci.BarsInUse));
    }

    private static VmConfig Config(string json) => System.Text.Json.JsonSerializer.Deserialize(json, ConfigJsonContext.Default.VmConfig)!;

    /// <summary>A hand-made section with one virtio-net function per (id, flags), its device type patched in.</summary>
    private static PciSnapshotState NetSection(params (string Id, byte Flags)[] nets)
    {
        var fns = nets.Select((n, i) => new PciSectionSample.Fn(i + 1, Flint.Arch.X86.Layout.PciMmio64Start + (ulong)i * VirtioPciLayout.BarSize, n.Id, n.Flags)).ToArray();
        var bytes = PciSnapshotSectionTests.Section(PciStateCodec.Version, fns, deviceType: VirtioDeviceType.Net);
        return PciStateCodec.Parse(new StateReader(SnapshotSections.Pci, bytes));
    }

    private const string TwoNetsWithMmds = """
        {"network-interfaces": [{"iface_id": "eth0", "host_dev_name": "t0"}, {"iface_id": "eth1", "host_dev_name": "t1"}],
         "mmds-config": {"network_interfaces": ["eth0", "eth1"], "version": "V2"}}
        """;

    [Fact]
    public void Only_the_interfaces_that_served_mmds_get_the_stack_back()
    {
        // eth1 was unplugged and plugged again after the start: mmds-config still names it, but it has no stack (as in
        // Firecracker, a hot-plugged interface never gets one), and the restore must not give it one.
        var placement = PciStateCodec.Placement(NetSection(("eth0", PciStateCodec.ServesMmdsFlag), ("eth1", 0)), Config(TwoNetsWithMmds))!;
        Assert.Equal(new[] { "eth0" }, placement.MmdsInterfaces.ToArray());
        // An interface mmds-config does not name cannot have served MMDS.
        var noMmds = Config("""{"network-interfaces": [{"iface_id": "eth0", "host_dev_name": "t0"}]}""");
        Assert.Contains("has net \"eth0\" serve MMDS, its mmds-config does not name it",
            Assert.Throws<SnapshotFormatException>(() => PciStateCodec.Placement(NetSection(("eth0", PciStateCodec.ServesMmdsFlag)), noMmds)).Message);
    }

    [SkippableFact]
    public void The_restore_builds_the_mmds_stack_only_on_the_interfaces_that_had_it()
    {
        int n = Environment.ProcessId % 10000;
        string tap0 = $"tapR{n}a", tap1 = $"tapR{n}b";
        var config = Config(TwoNetsWithMmds.Replace("\"t0\"", $"\"{tap0}\"").Replace("\"t1\"", $"\"{tap1}\""));
        var placement = PciStateCodec.Placement(NetSection(("eth0", PciStateCodec.ServesMmdsFlag), ("eth1", 0)), config)!;
        var s = NewSegment(placement);
        var devices = new VirtioDeviceSet(s.Vm, s.Memory, s.Mmio, s.Loop, new Flint.Arch.X86.KernelCmdline(""), s.Owned) { Pci = s.Pci };
        try { VmBuilder.AttachNetDevices(config, new VmOptions { Restore = new RestorePlan(true, placement, null) }, devices); }
        catch (SysException e)
        {
            Skip.If(true, $"cannot open a tap here: {e.Message}");
        }
        try
        {
            Assert.Equal([("eth0", true), ("eth1", false)], devices.Nets.Select(x => (x.Id, x.Mmds != null)));
            Assert.Equal([1, 2], devices.Nets.Select(x => s.Pci.Find(x.Device)!.Slot));
        }
        finally
        {
            foreach (var x in devices.Nets) { x.Rx.Dispose(); x.Tx.Dispose(); }
        }
    }
}

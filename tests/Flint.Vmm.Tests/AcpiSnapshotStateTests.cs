using Flint.Arch.X86;
using Flint.Devices;
using Flint.Devices.Acpi;
using Flint.Memory;
using Flint.Snapshot;
using Flint.Vmm.Builder;
using Flint.Vmm.Snapshot;

namespace Flint.Vmm.Tests;

/// <summary>
/// The snapshot side of VMGenID/VMClock without KVM: the "acpi" section goes through a serialized state file, and the
/// restore (what SnapshotLoader.ApplyState runs) writes a new ID and bumped VMClock counters into the restored memory
/// and raises both interrupts once.
/// </summary>
public sealed class AcpiSnapshotStateTests : IDisposable
{
    private sealed class Counter : IInterrupt { public int Count; public void Trigger() => Count++; }

    private readonly GuestMemory _mem = GuestMemory.Create(MemoryLayout.RamRanges(16 << 20));
    public void Dispose() => _mem.Dispose();

    private static AcpiDeviceSet Devices(Counter genIrq, Counter clockIrq, uint genGsi = 7) =>
        new(new VmGenId(Layout.VmGenIdAddress, genGsi, genIrq), new VmClock(Layout.VmClockAddress, 8, clockIrq));

    private byte[] Id() { var b = new byte[16]; _mem.Read(Layout.VmGenIdAddress, b); return b; }

    [Fact]
    public void Restore_writes_a_new_generation_and_notifies_each_device_once()
    {
        var booted = Devices(new Counter(), new Counter());
        booted.VmGenId.Activate(_mem);
        booted.VmClock.Activate(_mem);
        byte[] before = Id();
        var file = new SnapshotFile();
        var w = new StateWriter();
        AcpiStateCodec.Save(booted, w);
        file.Add(SnapshotSections.Acpi, w);
        var loaded = SnapshotFile.Parse(file.Serialize());

        Counter gen = new(), clock = new();
        var restored = Devices(gen, clock);
        AcpiStateCodec.Restore(loaded, restored, _mem);
        Assert.Equal((1, 1), (gen.Count, clock.Count));
        Assert.NotEqual(before, Id());
        Assert.Equal(restored.VmGenId.GenerationId.ToArray(), Id());
        Assert.Equal(1UL, _mem.Read<ulong>(Layout.VmClockAddress + VmClockAbi.VmGenerationCounterOffset));
        Assert.Equal(1UL, _mem.Read<ulong>(Layout.VmClockAddress + VmClockAbi.DisruptionMarkerOffset));
        Assert.Equal(2u, _mem.Read<uint>(Layout.VmClockAddress + VmClockAbi.SeqCountOffset));
    }

    [Fact]
    public void A_snapshot_without_the_section_announces_nothing()
    {
        Counter gen = new(), clock = new();
        AcpiStateCodec.Restore(new SnapshotFile(), Devices(gen, clock), _mem);
        Assert.Equal((0, 0), (gen.Count, clock.Count));
        Assert.Equal(new byte[16], Id());
    }

    [Fact]
    public void A_section_for_other_GSIs_is_a_format_error_and_changes_nothing()
    {
        var file = new SnapshotFile();
        var w = new StateWriter();
        AcpiStateCodec.Save(Devices(new Counter(), new Counter(), genGsi: 9), w);
        file.Add(SnapshotSections.Acpi, w);
        Counter gen = new(), clock = new();
        Assert.Throws<SnapshotFormatException>(() => AcpiStateCodec.Restore(file, Devices(gen, clock), _mem));
        Assert.Equal((0, 0), (gen.Count, clock.Count));
        Assert.Equal(new byte[16], Id());
    }
}

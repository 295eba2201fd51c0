using System.Buffers.Binary;
using Flint.Devices.Acpi;
using Flint.Devices.Tests.Virtio;
using Flint.Memory;
using Flint.Snapshot;

namespace Flint.Devices.Tests.Acpi;

public sealed class AcpiDeviceTests : IDisposable
{
    private const ulong GenIdAddr = 0xdfff0, ClockAddr = 0xde000;
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x200000UL)]);
    public void Dispose() => _mem.Dispose();

    private byte[] Guest(ulong addr, int len) { var b = new byte[len]; _mem.Read(addr, b); return b; }

    [Fact]
    public void VmGenId_boot_writes_a_random_id_and_does_not_notify()
    {
        var irq = new CountingInterrupt();
        var a = new VmGenId(GenIdAddr, 7, irq);
        var b = new VmGenId(GenIdAddr, 7, new CountingInterrupt());
        a.Activate(_mem);
        Assert.Equal(a.GenerationId.ToArray(), Guest(GenIdAddr, 16));
        Assert.NotEqual(a.GenerationId.ToArray(), b.GenerationId.ToArray());
        Assert.NotEqual(new byte[16], a.GenerationId.ToArray());
        Assert.Equal(0, irq.Count);
    }

    /// <summary>The restore path without KVM: state saved, a new device built as the restored VM's builder does, restored.</summary>
    [Fact]
    public void VmGenId_restore_writes_a_new_id_then_notifies_once()
    {
        var old = new VmGenId(GenIdAddr, 7, new CountingInterrupt());
        old.Activate(_mem);
        var w = new StateWriter();
        old.SaveState(w);

        var irq = new CountingInterrupt();
        var restored = new VmGenId(GenIdAddr, 7, irq);
        byte[] saved = restored.CheckState(new StateReader("acpi", w.ToArray()));
        Assert.Equal(old.GenerationId.ToArray(), saved);
        restored.OnRestored(_mem);
        Assert.Equal(1, irq.Count);
        Assert.NotEqual(saved, Guest(GenIdAddr, 16));
        Assert.Equal(restored.GenerationId.ToArray(), Guest(GenIdAddr, 16));
    }

    [Fact]
    public void VmGenId_state_for_another_address_or_gsi_is_refused()
    {
        var w = new StateWriter();
        new VmGenId(GenIdAddr, 8, new CountingInterrupt()).SaveState(w);
        var dev = new VmGenId(GenIdAddr, 7, new CountingInterrupt());
        Assert.Throws<SnapshotFormatException>(() => dev.CheckState(new StateReader("acpi", w.ToArray())));
        Assert.Throws<SnapshotFormatException>(() => dev.CheckState(new StateReader("acpi", w.ToArray()[..10])));
    }

    [Fact]
    public void VmClock_boot_structure_is_Firecrackers()
    {
        var c = new VmClock(ClockAddr, 8, new CountingInterrupt());
        c.Activate(_mem);
        var g = Guest(ClockAddr, VmClockAbi.Size);
        Assert.Equal(1263289174u, BinaryPrimitives.ReadUInt32LittleEndian(g));          // VMCLOCK_MAGIC
        Assert.Equal(0x1000u, BinaryPrimitives.ReadUInt32LittleEndian(g.AsSpan(4)));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(g.AsSpan(8)));
        Assert.Equal(0xff, g[10]);                                                      // counter id invalid
        Assert.Equal(0x300UL, BinaryPrimitives.ReadUInt64LittleEndian(g.AsSpan(24)));  // VM_GEN_COUNTER_PRESENT | NOTIFICATION_PRESENT
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(g.AsSpan(104)));
    }

    [Fact]
    public void VmClock_restore_bumps_marker_and_generation_under_an_even_seqcount_and_notifies()
    {
        var old = new VmClock(ClockAddr, 8, new CountingInterrupt());
        old.Activate(_mem);
        old.OnRestored(_mem);                       // a VM that was restored once already
        var w = new StateWriter();
        old.SaveState(w);

        var irq = new CountingInterrupt();
        var c = new VmClock(ClockAddr, 8, irq);
        c.RestoreState(new StateReader("acpi", w.ToArray()));
        Assert.Equal(1UL, c.VmGenerationCounter);
        c.OnRestored(_mem);
        Assert.Equal(1, irq.Count);
        var g = Guest(ClockAddr, VmClockAbi.Size);
        Assert.Equal(4u, BinaryPrimitives.ReadUInt32LittleEndian(g.AsSpan(12)));      // 0 -> 1 -> 2, 2 -> 3 -> 4: even
        Assert.Equal(2UL, BinaryPrimitives.ReadUInt64LittleEndian(g.AsSpan(16)));     // disruption_marker
        Assert.Equal(2UL, BinaryPrimitives.ReadUInt64LittleEndian(g.AsSpan(104)));    // vm_generation_counter
    }

    [Fact]
    public void VmClock_state_with_a_foreign_structure_is_refused()
    {
        var w = new StateWriter();
        w.U32(8); w.U64(ClockAddr); w.Raw(new byte[VmClockAbi.Size]);                  // magic 0
        var c = new VmClock(ClockAddr, 8, new CountingInterrupt());
        Assert.Throws<SnapshotFormatException>(() => c.RestoreState(new StateReader("acpi", w.ToArray())));
        Assert.Equal(1263289174u, BinaryPrimitives.ReadUInt32LittleEndian(c.Abi));       // unchanged
    }
}

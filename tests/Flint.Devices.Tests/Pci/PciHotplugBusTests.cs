using System.Buffers.Binary;
using Flint.Devices.Pci;

namespace Flint.Devices.Tests.Pci;

/// <summary>
/// The bus side of PCI hotplug without KVM: a slot's config space appears with a device and reads as empty (vendor
/// 0xFFFF) once it is removed, through ECAM and the 0xCF8 ports alike; freed slots and BAR windows are reused,
/// lowest first, and never overlap; a full bus says so in Firecracker's words; MMIO ranges come off the bus.
/// </summary>
public sealed class PciHotplugBusTests
{
    private sealed class FakeFunction(ushort vendor, ushort device) : IPciDevice
    {
        public uint ReadConfigRegister(int register) => register == 0 ? ((uint)device << 16) | vendor : 0;
        public void WriteConfigRegister(int register, int offset, ReadOnlySpan<byte> data) { }
    }

    private sealed class NullBusDevice : IBusDevice
    {
        public void Read(ulong offset, Span<byte> data) => data.Fill(0x11);
        public void Write(ulong offset, ReadOnlySpan<byte> data) { }
    }

    private readonly PciRootBus _bus = new();

    private uint EcamVendor(int slot)
    {
        Span<byte> b = stackalloc byte[4];
        new PciConfigMmio(_bus).Read((ulong)slot << 15, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private uint PortVendor(int slot)
    {
        var io = new PciConfigIo(_bus);
        Span<byte> a = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(a, 0x8000_0000u | ((uint)slot << 11));
        io.Write(0, a);
        Span<byte> b = stackalloc byte[4];
        io.Read(4, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    [Fact]
    public void Config_space_appears_with_the_device_and_reads_empty_once_removed()
    {
        var f = new FakeFunction(0x1af4, 0x1042);
        int slot = _bus.Add(f);
        Assert.Equal(1, slot);
        Assert.Equal(0x1042_1af4u, EcamVendor(slot));
        Assert.Equal(0x1042_1af4u, PortVendor(slot));

        Assert.Same(f, _bus.Remove(slot));
        Assert.Equal(0xffff_ffffu, EcamVendor(slot)); // vendor 0xFFFF: no device, as the guest's rescan sees it
        Assert.Equal(0xffff_ffffu, PortVendor(slot));
        Assert.Null(_bus.Remove(slot)); // a second removal finds nothing
    }

    [Fact]
    public void The_host_bridge_cannot_be_removed_nor_slots_outside_the_bus()
    {
        Assert.Null(_bus.Remove(0));
        Assert.Equal(0x0d57_8086u, EcamVendor(0));
        Assert.Null(_bus.Remove(-1));
        Assert.Null(_bus.Remove(PciRootBus.SlotCount));
    }

    [Fact]
    public void A_freed_slot_is_the_next_one_given_out()
    {
        int a = _bus.Add(new FakeFunction(1, 1)), b = _bus.Add(new FakeFunction(2, 2)), c = _bus.Add(new FakeFunction(3, 3));
        Assert.Equal([1, 2, 3], new[] { a, b, c });
        _bus.Remove(b);
        Assert.Equal(2, _bus.Add(new FakeFunction(4, 4)));
        Assert.Equal(0x0004_0004u, EcamVendor(2));
        Assert.Equal(0x0003_0003u, EcamVendor(3));
    }

    [Fact]
    public void A_full_bus_is_refused_in_firecrackers_words()
    {
        for (int i = 1; i < PciRootBus.SlotCount; i++) _bus.Add(new FakeFunction(1, (ushort)i));
        Assert.Equal(0, _bus.FreeSlots);
        var e = Assert.Throws<PciSlotsExhaustedException>(() => _bus.Add(new FakeFunction(9, 9)));
        Assert.Equal("Could not find an available device slot on the PCI bus.", e.Message);
        _bus.Remove(17);
        Assert.Equal(1, _bus.FreeSlots);
        Assert.Equal(17, _bus.Add(new FakeFunction(9, 9)));
    }

    [Fact]
    public void Bar_allocator_reuses_freed_windows_lowest_first()
    {
        const ulong Base = 256UL << 30, Bar = 512 << 10;
        var bars = new PciBarAllocator(Base, 4 * Bar, Bar);
        Assert.True(bars.TryAllocate(out var a));
        Assert.True(bars.TryAllocate(out var b));
        Assert.True(bars.TryAllocate(out var c));
        Assert.Equal([Base, Base + Bar, Base + 2 * Bar], new[] { a, b, c });
        Assert.True(bars.Free(b));
        Assert.False(bars.Free(b));          // twice: ignored
        Assert.False(bars.Free(Base + 123)); // never handed out: ignored
        Assert.True(bars.TryAllocate(out var again));
        Assert.Equal(b, again);
        Assert.True(bars.TryAllocate(out var d));
        Assert.Equal(Base + 3 * Bar, d);
        Assert.False(bars.TryAllocate(out _)); // the window is full
        Assert.Equal(4, bars.InUse);
    }

    [Fact]
    public void Hundreds_of_plug_unplug_cycles_stay_in_one_window_and_never_overlap()
    {
        const ulong Base = 256UL << 30, Bar = 512 << 10;
        var bars = new PciBarAllocator(Base, 64 * Bar, Bar);
        var rng = new Random(17);
        var live = new List<ulong>();
        for (int i = 0; i < 2000; i++)
        {
            if (live.Count > 0 && (rng.Next(2) == 0 || live.Count == 64))
            {
                int k = rng.Next(live.Count);
                Assert.True(bars.Free(live[k]));
                live.RemoveAt(k);
            }
            else
            {
                Assert.True(bars.TryAllocate(out var a));
                Assert.Equal(0UL, (a - Base) % Bar);
                Assert.InRange(a, Base, Base + 63 * Bar);
                Assert.DoesNotContain(a, live);
                // The lowest free window: nothing below it is free.
                for (ulong w = Base; w < a; w += Bar) Assert.Contains(w, live);
                live.Add(a);
            }
            Assert.Equal(live.Count, bars.InUse);
        }
        foreach (var a in live) bars.Free(a);
        Assert.True(bars.TryAllocate(out var first));
        Assert.Equal(Base, first);
    }

    [Fact]
    public void An_mmio_range_comes_off_the_bus_and_its_address_is_empty_again()
    {
        var mmio = new Bus();
        var keep = new NullBusDevice();
        var gone = new NullBusDevice();
        mmio.Insert(keep, 0x1000, 0x1000);
        mmio.Insert(gone, 0x2000, 0x1000);
        Assert.False(mmio.Remove(0x2000, keep)); // another device's range: untouched
        Assert.True(mmio.Remove(0x2000, gone));
        Assert.False(mmio.Remove(0x2000, gone));
        Assert.False(mmio.TryResolve(0x2000, out _, out _));
        Assert.True(mmio.TryResolve(0x1fff, out var d, out _));
        Assert.Same(keep, d);
        mmio.Insert(new NullBusDevice(), 0x2000, 0x1000); // the freed range can be used again
        Assert.Equal(2, mmio.Count);
    }

    [Fact]
    public void A_restore_puts_a_function_in_its_saved_slot_and_the_bus_keeps_its_holes()
    {
        _bus.AddAt(3, new FakeFunction(0x1af4, 0x1042));
        Assert.Equal(0x1042_1af4u, EcamVendor(3));
        Assert.Equal(0xffff_ffffu, EcamVendor(1)); // the hole an unplug left stays empty
        Assert.Throws<InvalidOperationException>(() => _bus.AddAt(3, new FakeFunction(1, 1)));
        Assert.Throws<InvalidOperationException>(() => _bus.AddAt(0, new FakeFunction(1, 1))); // the host bridge's
        Assert.Throws<InvalidOperationException>(() => _bus.AddAt(PciRootBus.SlotCount, new FakeFunction(1, 1)));
        Assert.Equal(1, _bus.Add(new FakeFunction(1, 2))); // a later hotplug takes the lowest free slot
        Assert.Equal(2, _bus.Add(new FakeFunction(1, 3)));
        Assert.Equal(4, _bus.Add(new FakeFunction(1, 4)));
    }

    [Fact]
    public void A_reserved_BAR_is_never_handed_out_again_and_the_ones_below_it_stay_free()
    {
        const ulong Base = 0x40_0000_0000, Size = 0x8_0000;
        var bars = new PciBarAllocator(Base, 8 * Size, Size);
        Assert.True(bars.TryReserve(Base + 3 * Size));
        Assert.False(bars.TryReserve(Base + 3 * Size)); // taken
        Assert.False(bars.TryReserve(Base + Size / 2)); // not a BAR of this window
        Assert.False(bars.TryReserve(Base - Size));
        Assert.False(bars.TryReserve(Base + 8 * Size));
        Assert.True(bars.TryReserve(Base + Size)); // below the highest one: from the free list
        var got = new List<ulong>();
        while (bars.TryAllocate(out ulong a)) got.Add(a);
        Assert.Equal([Base, Base + 2 * Size, Base + 4 * Size, Base + 5 * Size, Base + 6 * Size, Base + 7 * Size], got);
        Assert.Equal(8, bars.InUse);
        Assert.True(bars.Free(Base + 3 * Size));
        Assert.True(bars.TryAllocate(out ulong again));
        Assert.Equal(Base + 3 * Size, again);
    }
}

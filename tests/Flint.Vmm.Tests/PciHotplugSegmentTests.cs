using System.Buffers.Binary;
using Flint.Devices;
using Flint.Devices.Pci;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Block;
using Flint.Devices.Virtio.Pmem;
using Flint.Kvm;
using Flint.Memory;
using Flint.Sys;
using Flint.Vmm.Builder;
using Flint.Vmm.Pci;

namespace Flint.Vmm.Tests;

/// <summary>Every KVM binding the PCI segment makes, as a set of what is live now: an unplug must leave none behind.</summary>
internal sealed class RecordingPciVm : IPciVm
{
    public HashSet<(int Fd, ulong Addr)> Doorbells { get; } = [];
    public HashSet<(int Fd, uint Gsi)> Irqfds { get; } = [];
    public Dictionary<uint, (ulong Gpa, ulong Size)> Slots { get; } = [];
    public int RoutingEntries { get; private set; }
    public int RoutingCalls { get; private set; }

    public void RegisterIrqfd(EventFd fd, uint gsi) => Assert.True(Irqfds.Add((fd.Fd, gsi)), "irqfd bound twice");
    public void UnregisterIrqfd(EventFd fd, uint gsi) => Assert.True(Irqfds.Remove((fd.Fd, gsi)), "irqfd unbound but never bound");
    public void RegisterIoeventfd(EventFd fd, ulong addr, uint len, ulong? datamatch, bool pio = false)
    {
        // KVM refuses a second ioeventfd on the same address (EEXIST): so does this fake.
        if (Doorbells.Any(d => d.Addr == addr)) throw new KvmException("KVM_IOEVENTFD", 17);
        Doorbells.Add((fd.Fd, addr));
    }
    public void UnregisterIoeventfd(EventFd fd, ulong addr, uint len, ulong? datamatch, bool pio = false) =>
        Assert.True(Doorbells.Remove((fd.Fd, addr)), "doorbell deassigned but never assigned");
    public void SetGsiRouting(ReadOnlySpan<KvmIrqRoutingEntry> entries)
    {
        RoutingEntries = entries.Length;
        RoutingCalls++;
    }
    public void SetUserMemoryRegion(uint slot, ulong guestPhysAddr, ulong size, nint hostAddr, bool logDirty = false, bool readOnly = false)
    {
        if (size == 0) Assert.True(Slots.Remove(slot), $"KVM slot {slot} deleted but never set");
        else Slots[slot] = (guestPhysAddr, size);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FdCountingCollection
{
    /// <summary>Tests that count this process's fds run alone.</summary>
    public const string Name = "fd-counting";
}

/// <summary>
/// The PCI segment's plug and unplug without KVM (Flint.Vmm.Pci.PciDevices over a recording VM): a plugged function's
/// config space, BAR, doorbells, vectors and event-loop fds appear; an unplug takes every one of them back (config
/// space reads 0xFFFF, BAR off the MMIO bus and free, doorbells deassigned, irqfds unbound, GSIs and routes given back,
/// fds closed, pmem's KVM slot deleted), and 100 cycles leak no fd, slot, BAR or GSI.
/// </summary>
[Collection(FdCountingCollection.Name)]
public sealed class PciHotplugSegmentTests() : PciSegmentFixture("flint-pcihp-")
{
    private string File(string name, int bytes)
    {
        string p = Path.Combine(_dir, name);
        System.IO.File.WriteAllBytes(p, new byte[bytes]);
        return p;
    }

    private uint ConfigDword(int slot, int register)
    {
        Span<byte> b = stackalloc byte[4];
        Assert.True(_mmio.Read(PciDevices.Ecam.BaseAddress + ((ulong)slot << 15) + (ulong)register * 4, b));
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private VirtioBlock Block(string path) => new(path, false, "hot", new RateLimiter(new RateLimiterConfig(null, null)));

    [Fact]
    public void A_plugged_block_function_is_on_the_bus_and_an_unplug_takes_everything_back()
    {
        int loopBefore = _loop.Count, mmioBefore = _mmio.Count;
        var f = _pci.Plug(Block(File("d.img", 4096)));

        Assert.Equal(1, f.Slot);
        Assert.Equal(0x1042_1af4u, ConfigDword(f.Slot, 0)); // virtio-blk, modern
        Assert.Equal(0x40_0000_0000UL, f.Bar);
        Assert.True(_mmio.TryResolve(f.Bar, out var dev, out _));
        Assert.Same(f.Transport, dev);
        Assert.Equal([(f.Transport.QueueEvents[0].Fd, f.Transport.NotifyAddress(0))], _vm.Doorbells);
        Assert.Equal(2, _vm.Irqfds.Count); // one vector per queue and one for config
        Assert.Equal(2, _pci.GsisInUse);
        Assert.True(_loop.Count > loopBefore);
        var events = f.Transport.QueueEvents.ToArray();

        _pci.Unplug(f);

        Assert.Equal(0xffff_ffffu, ConfigDword(f.Slot, 0)); // the guest's rescan finds an empty slot
        Assert.False(_mmio.TryResolve(f.Bar, out _, out _));
        Assert.Equal(mmioBefore, _mmio.Count);
        Assert.Empty(_vm.Doorbells);
        Assert.Empty(_vm.Irqfds);
        Assert.Equal(0, _pci.GsisInUse);
        Assert.Equal(0, _pci.BarsInUse);
        Assert.Equal(loopBefore, _loop.Count);
        Assert.All(events, e => Assert.Equal(-1, e.Fd)); // closed
        Assert.Empty(_owned);
        Assert.Empty(_pci.Functions);
        Assert.Empty(_pci.Transports);
        _pci.Unplug(f); // twice: nothing more happens
    }

    [Fact]
    public void Freed_slots_BARs_and_GSIs_are_the_next_ones_used()
    {
        var a = _pci.Plug(Block(File("a.img", 4096)));
        var b = _pci.Plug(Block(File("b.img", 4096)));
        var c = _pci.Plug(Block(File("c.img", 4096)));
        var gsisOfB = b.Vectors.Gsis.ToArray();
        _pci.Unplug(b);
        var d = _pci.Plug(Block(File("d.img", 4096)));
        Assert.Equal(b.Slot, d.Slot);
        Assert.Equal(b.Bar, d.Bar);
        Assert.Equal(gsisOfB, d.Vectors.Gsis.ToArray());
        Assert.Equal(0x1042_1af4u, ConfigDword(c.Slot, 0));
        Assert.NotEqual(a.Bar, c.Bar);
    }

    [Fact]
    public void A_full_bus_refuses_the_next_plug_and_takes_nothing()
    {
        string path = File("x.img", 4096);
        for (int i = 1; i < PciRootBus.SlotCount; i++) _pci.Plug(Block(path));
        int owned = _owned.Count, doorbells = _vm.Doorbells.Count, loop = _loop.Count;
        using var extra = Block(path);
        Assert.Throws<PciSlotsExhaustedException>(() => _pci.Plug(extra));
        Assert.Equal(owned, _owned.Count);
        Assert.Equal(doorbells, _vm.Doorbells.Count);
        Assert.Equal(loop, _loop.Count);
        Assert.Equal(PciRootBus.SlotCount - 1, _pci.BarsInUse);
    }

    [Fact]
    public void A_pmem_function_gives_back_its_KVM_slot_and_window_at_unplug()
    {
        var devices = new VirtioDeviceSet(_vm, _memory, _mmio, _loop, new Flint.Arch.X86.KernelCmdline(""), _owned) { Pci = _pci };
        var m = PmemMapping.Open(File("p.img", 2 << 20), readOnly: true);
        _owned.Add(m);
        const uint Slot = 5;
        ulong start = Flint.Arch.X86.Layout.PastMmio64Start;
        _vm.SetUserMemoryRegion(Slot, start, m.WindowLength, m.Host, readOnly: true);
        var ro = new PmemReadOnlyWindow("p", m);
        _mmio.Insert(ro, start, m.WindowLength);
        var dev = new VirtioPmem("p", m, start, m.WindowLength, new RateLimiter(new RateLimiterConfig(null, null)));
        var f = _pci.Plug(dev);
        Hotplug.PciHotplug.TrackPmem(f, _vm, _mmio, devices, dev, Slot, m, ro);
        Assert.Equal(Slot, devices.PmemKvmSlots[dev]);

        _pci.Unplug(f);

        Assert.Empty(_vm.Slots);
        Assert.False(_mmio.TryResolve(start, out _, out _));
        Assert.Empty(devices.PmemKvmSlots);
        Assert.DoesNotContain(m, _owned); // unmapped with the function, not left for the VM's teardown
        Assert.Empty(_owned);
    }

    /// <summary>This process's open fds, once finalizers of earlier tests' objects have run.</summary>
    private static int OpenFds()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return Directory.GetFiles("/proc/self/fd").Length;
    }

    [Fact]
    public void A_hundred_plug_unplug_cycles_leak_no_fd_slot_BAR_or_GSI()
    {
        string path = File("cycle.img", 1 << 20);
        var keep = _pci.Plug(Block(File("keep.img", 4096))); // a neighbour that must survive the churn
        int fdsBefore = OpenFds();
        int loopBefore = _loop.Count, routing = _vm.RoutingEntries;
        for (int i = 0; i < 100; i++)
        {
            var f = _pci.Plug(Block(path));
            Assert.Equal(2, f.Slot);
            Assert.Equal(keep.Bar + Devices.Virtio.Pci.VirtioPciLayout.BarSize, f.Bar);
            _pci.Unplug(f);
        }
        // A leak here is at least one fd per cycle (100 or more); the margin absorbs fds other tests' leftovers (a
        // finalizer, a pooled connection) open or close meanwhile: the whole test process is counted.
        int fdsAfter = OpenFds();
        Assert.True(fdsAfter <= fdsBefore + 8, $"fds: {fdsBefore} before 100 plug/unplug cycles, {fdsAfter} after");
        Assert.Equal(loopBefore, _loop.Count);
        Assert.Equal(1, _pci.BarsInUse);
        Assert.Equal(2, _pci.GsisInUse);
        Assert.Equal(2, _vm.Irqfds.Count);
        Assert.Single(_vm.Doorbells);
        Assert.Equal(routing, _vm.RoutingEntries);
        Assert.Equal(0x1042_1af4u, ConfigDword(keep.Slot, 0));
    }
}

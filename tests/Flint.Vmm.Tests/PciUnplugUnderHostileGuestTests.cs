using System.Buffers.Binary;
using Flint.Devices;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Block;
using Flint.Devices.Virtio.Pci;
using Flint.Kvm;
using Flint.Memory;
using Flint.Vmm.Pci;

namespace Flint.Vmm.Tests;

/// <summary>
/// DELETE of a function while a hostile guest hammers it, without KVM: two vCPU threads (real VcpuRunners over a
/// backend whose every exit is an MMIO access) ring the function's doorbells at every width, write its common
/// configuration, MSI-X table and BAR registers, and read its config space, without pause, while the unplug runs
/// as the API's does (vCPUs parked through their VcpuGroup, then PciDevices.Unplug, then resumed). Nothing may crash
/// or stop a vCPU, no access may reach the function once it is gone (its eventfds are closed), its slot reads empty,
/// and later doorbells to its old BAR go nowhere while the neighbour function keeps answering.
/// </summary>
[Collection(FdCountingCollection.Name)]
public sealed class PciUnplugUnderHostileGuestTests() : PciSegmentFixture("flint-pcihostile-")
{
    /// <summary>A guest that does nothing but MMIO exits against one function (KVM_RUN's kick semantics as FakeVcpu's).</summary>
    private sealed class HostileGuestVcpu(uint id, Bus mmio, ulong bar, int slot) : IVcpuBackend
    {
        private readonly byte[] _data = new byte[8];
        private int _kicked;
        private long _exits, _reachedAfterUnplug;
        private int _step;

        public uint Id { get; } = id;
        public volatile bool Unplugged;
        public long Exits => Interlocked.Read(ref _exits);
        /// <summary>Accesses made after the unplug whose address still resolved to a device (must stay 0).</summary>
        public long ReachedAfterUnplug => Interlocked.Read(ref _reachedAfterUnplug);

        public void AttachThread() { }
        public void DetachThread() { }
        public void OnPaused() { }
        public string DescribeState() => "hostile guest";
        public void ClearKick() => Volatile.Write(ref _kicked, 0);
        public void Kick() => Volatile.Write(ref _kicked, 1);

        public bool Run(out VcpuExit exit)
        {
            if (Volatile.Read(ref _kicked) != 0) { exit = default; return false; }
            var rnd = (uint)(_step++ * 2654435761u);
            ulong ecam = PciDevices.Ecam.BaseAddress + ((ulong)slot << 15);
            (ulong addr, int len, bool write) = (_step % 8) switch
            {
                0 => (bar + VirtioPciLayout.NotifyOffset, 2, true),                            // the doorbell, as Linux rings it
                1 => (bar + VirtioPciLayout.NotifyOffset + 4 * (rnd % 3), (int)(1u << (int)(rnd % 4)), true), // other queues, widths
                2 => (bar + VirtioPciLayout.CommonOffset + 0x14, 1, true),                      // device_status
                3 => (bar + VirtioPciLayout.CommonOffset + 0x16, 2, true),                      // queue_select
                4 => (bar + VirtioPciLayout.MsixTableOffset + 16 * (rnd % 3), 4, true),         // MSI-X table entries
                5 => (ecam + 0x10, 4, true),                                                    // BAR 0: sizing or moving it
                6 => (ecam + 0x04, 2, true),                                                    // command
                _ => (ecam, 4, false),                                                          // vendor/device
            };
            BinaryPrimitives.WriteUInt64LittleEndian(_data, write ? ((ulong)rnd << 32) | rnd : 0);
            if (Unplugged && addr >= bar && addr < bar + VirtioPciLayout.BarSize && mmio.TryResolve(addr, out _, out _))
                Interlocked.Increment(ref _reachedAfterUnplug);
            Interlocked.Increment(ref _exits);
            exit = VcpuExit.Mmio(addr, write, _data.AsSpan(0, len));
            return true;
        }
    }

    private VirtioBlock Block(string id)
    {
        string p = Path.Combine(_dir, id + ".img");
        File.WriteAllBytes(p, new byte[4096]);
        return new VirtioBlock(p, false, id, new RateLimiter(new RateLimiterConfig(null, null)));
    }

    private uint Vendor(int slot)
    {
        Span<byte> b = stackalloc byte[4];
        Assert.True(_mmio.Read(PciDevices.Ecam.BaseAddress + ((ulong)slot << 15), b));
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private static void WaitForExits(HostileGuestVcpu[] guests, long each)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (guests.Any(g => g.Exits < each) && DateTime.UtcNow < until) Thread.Sleep(5);
        Assert.All(guests, g => Assert.True(g.Exits >= each, $"vCPU {g.Id} made only {g.Exits} exits"));
    }

    [Fact]
    public void Delete_while_the_guest_rings_and_writes_the_function_leaves_an_empty_slot_and_a_dead_BAR()
    {
        var keep = _pci.Plug(Block("keep"), "keep");
        var gone = _pci.Plug(Block("gone"), "gone");
        var events = gone.Transport.QueueEvents.ToArray();
        ulong notify = gone.Transport.NotifyAddress(0);
        using var exit = new VmExit();
        var metrics = new VcpuMetrics();
        var guests = new[] { new HostileGuestVcpu(0, _mmio, gone.Bar, gone.Slot), new HostileGuestVcpu(1, _mmio, gone.Bar, gone.Slot) };
        var runners = guests.Select(g => new VcpuRunner(g, new VcpuExitHandler(g.Id, _pio, _mmio, exit, metrics, g.DescribeState), exit, metrics)).ToList();
        var group = new VcpuGroup(runners);
        foreach (var r in runners) r.Start();
        try
        {
            WaitForExits(guests, 20_000);

            // DELETE /drives/gone, as PciHotplug.Unplug does it: vCPUs parked around the unplug.
            group.Pause();
            try { _pci.Unplug(gone); }
            finally { group.Resume(); }
            foreach (var g in guests) g.Unplugged = true;
            long after = guests.Max(g => g.Exits);
            WaitForExits(guests, after + 20_000);

            Assert.False(exit.IsRequested, "a vCPU stopped the VM");
            Assert.All(runners, r => Assert.Equal(VcpuState.Running, r.State));
            Assert.All(guests, g => Assert.Equal(0, g.ReachedAfterUnplug));
            Assert.Equal(0xffff_ffffu, Vendor(gone.Slot));
            Assert.False(_mmio.Write(notify, [0, 0]), "a doorbell to the old BAR reached a device");
            Assert.False(_mmio.TryResolve(gone.Bar, out _, out _));
            Assert.All(events, e => Assert.Equal(-1, e.Fd)); // closed, and nothing wrote to them after
            Assert.Equal([(keep.Transport.QueueEvents[0].Fd, keep.Transport.NotifyAddress(0))], _vm.Doorbells);
            Assert.Equal(0x1042_1af4u, Vendor(keep.Slot));
            Assert.True(_mmio.Write(keep.Transport.NotifyAddress(0), [0, 0]));
            Assert.Equal(1, _pci.BarsInUse);
        }
        finally
        {
            foreach (var r in runners) r.Stop();
            foreach (var r in runners) Assert.True(r.Join(TimeSpan.FromSeconds(10)));
        }
    }
}

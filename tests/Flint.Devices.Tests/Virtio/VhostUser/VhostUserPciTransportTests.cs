using Flint.Devices.Pci;
using Flint.Devices.Tests.Pci;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Pci;
using Flint.Devices.Virtio.VhostUser;
using Flint.Memory;
using L = Flint.Devices.Virtio.Pci.VirtioPciLayout;

namespace Flint.Devices.Tests.Virtio.VhostUser;

/// <summary>
/// A vhost-user block drive as a virtio-pci function, against a real backend (qemu-storage-daemon), without KVM: the
/// test is the guest's driver (ECAM, BAR, MSI-X, the queue in memfd RAM) and the event loop (it runs the device's
/// call-fd handler when the backend signals). The backend's completion must reach the queue's MSI-X vector through the
/// transport, so a masked vector holds it in the PBA and unmasking delivers it: what the vector's irqfd handed to the
/// backend directly (Firecracker's wiring) would lose, since KVM drops a signal on a GSI without a route.
/// </summary>
public sealed class VhostUserPciTransportTests : IDisposable
{
    private const ulong BarBase = 0x40_0000_0000;
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);
    private readonly QemuStorageDaemon? _qsd;
    private readonly GuestMemory _mem = GuestMemory.CreateShared([(0UL, 0x100000UL)]);
    private readonly FakeMsiVectors _host = new(2);
    private readonly VhostUserBlock? _dev;
    private readonly VirtioPciTransport? _t;
    private readonly VirtioPciFunctionDriver? _drv;

    public VhostUserPciTransportTests()
    {
        if (!QemuStorageDaemon.Available) return;
        _qsd = new QemuStorageDaemon();
        _dev = new VhostUserBlock(VhostUserFrontend.Connect(_qsd.SocketPath, TimeSpan.FromSeconds(5)), "vu0", writeback: false);
        _dev.RelayInterruptsThroughVmm();
        _t = new VirtioPciTransport(_dev, _mem, BarBase, _host);
        _dev.UseDoorbells(_t.QueueEvents);
        var bus = new PciRootBus();
        _drv = new VirtioPciFunctionDriver(bus, bus.Add(_t), _t, _mem);
    }

    public void Dispose()
    {
        _t?.Dispose();
        _dev?.Dispose();
        _qsd?.Dispose();
        _mem.Dispose();
    }

    /// <summary>Reads sector <paramref name="sector"/>: kick (as KVM's ioeventfd would), wait for the used entry.</summary>
    private (byte Status, byte First) Read(GuestDriver drv, ulong sector)
    {
        ulong hdr = drv.Alloc(16), buf = drv.Alloc(512), st = drv.Alloc(1, 0xff);
        _mem.Write(hdr, 0u); // VIRTIO_BLK_T_IN
        _mem.Write(hdr + 8, sector);
        ushort used = drv.UsedIdx;
        drv.Push((hdr, 16, false), (buf, 512, true), (st, 1, true));
        _t!.QueueEvents[0].Write(1);
        Assert.True(SpinWait.SpinUntil(() => drv.UsedIdx != used, Limit), "the backend did not complete the read in 10 s");
        return (_mem.Read<byte>(st), _mem.Read<byte>(buf));
    }

    /// <summary>The event loop's part: runs the call fd's handler until <paramref name="done"/> holds (at most 10 s).</summary>
    private bool RelayUntil(Func<bool> done)
    {
        var call = Assert.Single(_dev!.EventSources);
        return SpinWait.SpinUntil(() =>
        {
            call.OnReady(1);
            return done();
        }, Limit);
    }

    /// <summary>
    /// After DRIVER_OK: libvhost-user backends signal the call fd once when it is set ("in case of I/O hang after
    /// reconnecting"); that interrupt is delivered here, so the tests count from what follows.
    /// </summary>
    private int Settle()
    {
        Thread.Sleep(100);
        Assert.Single(_dev!.EventSources).OnReady(1);
        return _host.Triggers[0];
    }

    [Fact]
    public void The_backends_completion_reaches_the_queues_MSI_X_vector_through_the_VMM()
    {
        if (_drv == null) return;
        Assert.True(_dev!.RelaysInterrupts);
        var drv = _drv.Init(acceptMask: VirtioFeatures.Version1); // no EVENT_IDX: every completion interrupts
        int before = Settle();
        Assert.Equal((0, (byte)5), Read(drv, 4)); // the backend's image: sector s holds s + 1
        Assert.True(RelayUntil(() => _host.Triggers[0] == before + 1), "the queue's vector did not fire");
        Assert.Equal(0, _host.Triggers[1]); // not the config vector
        Assert.Equal(1UL, _drv.Bar(L.IsrOffset, 1)); // ISR: used buffer, as for Flint's own devices
    }

    [Fact]
    public void A_completion_on_a_masked_vector_is_held_in_the_PBA_and_delivered_on_unmask()
    {
        if (_drv == null) return;
        var drv = _drv.Init(acceptMask: VirtioFeatures.Version1);
        int before = Settle();
        _drv.BarW(L.MsixTableOffset + 12, 1, 4); // mask vector 0, as Linux does while it moves an interrupt
        Assert.Equal((0, (byte)8), Read(drv, 7));
        Assert.True(RelayUntil(() => _drv.Bar(L.MsixPbaOffset, 8) == 1), "the completion was not held pending");
        Assert.Equal(before, _host.Triggers[0]);
        _drv.BarW(L.MsixTableOffset + 12, 0, 4);
        Assert.Equal(before + 1, _host.Triggers[0]);
        Assert.Equal(0UL, _drv.Bar(L.MsixPbaOffset, 8));
    }

    [Fact]
    public void A_config_refresh_raises_the_config_vector_and_a_new_generation()
    {
        if (_drv == null) return;
        _drv.Init(acceptMask: VirtioFeatures.Version1);
        Settle();
        ulong generation = _drv.Bar(0x15, 1); // common config: config_generation
        _dev!.RefreshConfig(); // PATCH /drives/{id} with only the id
        Assert.Equal(1, _host.Triggers[1]); // the config vector (msix_config = 1), not the queue's
        Assert.Equal((generation + 1) & 0xff, _drv.Bar(0x15, 1));
        Assert.Equal(2UL, _drv.Bar(L.IsrOffset, 1) & 2); // ISR: config change
    }

    [Fact]
    public void A_signal_before_the_driver_starts_the_device_raises_nothing()
    {
        if (_drv == null) return;
        var call = Assert.Single(_dev!.EventSources);
        // The backend (or anyone holding the fd) signals before DRIVER_OK: no interrupt state exists yet.
        WriteCounter(call.Fd);
        call.OnReady(1);
        Assert.Equal([0, 0], _host.Triggers);
        Assert.Equal(0UL, _drv.Bar(L.IsrOffset, 1));
    }

    /// <summary>Adds 1 to the eventfd's counter (a handle that does not own the fd: the device closes it).</summary>
    private static void WriteCounter(int fd)
    {
        using var f = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: false), FileAccess.Write, 1);
        f.Write(BitConverter.GetBytes(1UL));
    }
}

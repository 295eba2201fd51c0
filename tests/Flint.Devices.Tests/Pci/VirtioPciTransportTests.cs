using System.Buffers.Binary;
using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;
using Flint.Devices.Tests.Virtio;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Devices.Virtio.Pci;
using Flint.Memory;
using L = Flint.Devices.Virtio.Pci.VirtioPciLayout;
using D = Flint.Devices.Tests.Pci.VirtioPciFunctionDriver;
using S = Flint.Devices.Virtio.VirtioStatus;

namespace Flint.Devices.Tests.Pci;

/// <summary>
/// A virtio-blk device driven over virtio-pci the way a guest kernel does it: find it through ECAM, size and read
/// its BAR, walk the capabilities, program MSI-X, negotiate, set up the queue with the shared
/// <see cref="GuestDriver"/>, then read a sector and see the queue's vector fire.
/// </summary>
public sealed class VirtioPciTransportTests : IDisposable
{
    private const ulong BarBase = 0x40_0000_0000; // Firecracker's first 64-bit MMIO address (256 GiB)
    private readonly string _file = Path.GetTempFileName();
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
    private readonly VirtioBlock _blk;
    private readonly FakeMsiVectors _host = new(2);
    private readonly VirtioPciTransport _t;
    private readonly PciRootBus _bus = new();
    private readonly VirtioPciFunctionDriver _drv;

    public VirtioPciTransportTests()
    {
        var content = new byte[32 * 512];
        for (int i = 0; i < content.Length; i++) content[i] = (byte)(i / 512 + 1);
        File.WriteAllBytes(_file, content);
        _blk = new VirtioBlock(_file);
        _t = new VirtioPciTransport(_blk, _mem, BarBase, _host);
        _drv = new VirtioPciFunctionDriver(_bus, _bus.Add(_t), _t, _mem);
    }

    public void Dispose()
    {
        _t.Dispose();
        _blk.Dispose();
        _mem.Dispose();
        File.Delete(_file);
    }

    // The guest side (config cycles, BAR accesses, MSI-X, initialisation) is the shared driver's.
    private ulong Cfg(int reg) => _drv.Cfg(reg);
    private uint Cfg32(int reg) => _drv.Cfg32(reg);
    private byte Cfg8(int reg) => _drv.Cfg8(reg);
    private void CfgW32(int reg, uint v) => _drv.CfgW32(reg, v);
    private void CfgW16(int reg, ushort v) => _drv.CfgW16(reg, v);
    private ulong Bar(ulong off, int len) => _drv.Bar(off, len);
    private void BarW(ulong off, ulong v, int len) => _drv.BarW(off, v, len);
    private List<(int Offset, byte Id, byte Type)> WalkCapabilities() => _drv.WalkCapabilities();

    private const ulong DevFeatSel = D.DevFeatSel, DevFeat = D.DevFeat, DrvFeatSel = D.DrvFeatSel, DrvFeat = D.DrvFeat, MsixCfg = D.MsixCfg,
        NumQ = D.NumQ, Status = D.Status, QSel = D.QSel, QSize = D.QSize, QVec = D.QVec, QEnable = D.QEnable, QNotifyOff = D.QNotifyOff,
        QDesc = D.QDesc, QDriver = D.QDriver, QDevice = D.QDevice;

    [Fact]
    public void Identity_is_modern_virtio_block()
    {
        Assert.Equal(0x1042_1af4u, Cfg32(0));         // 0x1040 + 2 (block)
        Assert.Equal(0x0180_0001u, Cfg32(8));         // class 01, subclass 80, revision 1
        Assert.Equal(0x1042_1af4u, Cfg32(0x2c));      // subsystem
    }

    [Fact]
    public void BAR_sizing_and_the_address_the_VMM_chose()
    {
        Assert.Equal(0x0000_0004u, Cfg32(0x10)); // low dword of 256 GiB is 0; 64-bit memory BAR
        Assert.Equal(0x40u, Cfg32(0x14));
        CfgW32(0x10, 0xffff_ffff);
        Assert.Equal(0xfff8_0004u, Cfg32(0x10)); // 512 KiB
        CfgW32(0x14, 0xffff_ffff);
        Assert.Equal(0xffff_ffffu, Cfg32(0x14));
        CfgW32(0x10, 0x0000_0004); // the driver writes the address back
        CfgW32(0x14, 0x40);
        Assert.Equal(0x0000_0004u, Cfg32(0x10));
        Assert.Equal(0x40u, Cfg32(0x14));
        Assert.Equal(0L, _t.RejectedBarWrites);
        for (int r = 0x18; r <= 0x24; r += 4)
        {
            CfgW32(r, 0xffff_ffff);
            Assert.Equal(0u, Cfg32(r)); // unused BARs size as 0
        }
    }

    [Fact]
    public void Hostile_BAR_writes_cannot_move_the_BAR()
    {
        CfgW32(0x10, 0xfee0_0000); // onto the LAPIC
        CfgW32(0x14, 0);           // below 4 GiB, onto RAM
        Span<byte> two = stackalloc byte[2];
        _drv.Ecam.Write(Cfg(0x12), two); // 16-bit write into the BAR
        _drv.Ecam.Write(Cfg(0x11), two[..1]);
        Assert.Equal(0x0000_0004u, Cfg32(0x10));
        Assert.Equal(0x40u, Cfg32(0x14));
        Assert.Equal(4L, _t.RejectedBarWrites);
        // And a sizing write followed by a bogus write does not leave the size mask readable as an address.
        CfgW32(0x10, 0xffff_ffff);
        CfgW32(0x10, 0x1234_0000);
        Assert.Equal(0x0000_0004u, Cfg32(0x10));
    }

    [Fact]
    public void Capability_walk_finds_every_virtio_structure_and_MSI_X()
    {
        var caps = WalkCapabilities();
        Assert.Equal([L.CapCommon, L.CapIsr, L.CapDevice, L.CapNotify, L.CapPciCfg, (byte)0], caps.Select(c => c.Type));
        Assert.Equal(0x11, caps[^1].Id);
        foreach (var (off, id, type) in caps.Where(c => c.Id == 0x09))
        {
            Assert.Equal(0, Cfg8(off + 4)); // BAR 0
            uint offset = Cfg32(off + 8), length = Cfg32(off + 12);
            Assert.True(offset + (ulong)length <= L.BarSize);
            if (type == L.CapNotify) Assert.Equal(4u, Cfg32(off + 16));
        }
        int msix = caps[^1].Offset;
        uint ctl = Cfg32(msix) >> 16;
        Assert.Equal(1u, ctl & 0x7ff); // table size - 1: two vectors (queue + config)
        Assert.Equal((uint)L.MsixTableOffset, Cfg32(msix + 4));
        Assert.Equal((uint)L.MsixPbaOffset, Cfg32(msix + 8));
        // Capability bytes are read-only.
        CfgW32(caps[0].Offset + 8, 0x7000);
        Assert.Equal(0u, Cfg32(caps[0].Offset + 8));
        CfgW16(msix + 2, 0x07ff); // table size field is read-only
        Assert.Equal(1u, (Cfg32(msix) >> 16) & 0x7ff);
    }

    private int MsixCap => _drv.MsixCap;
    private void ProgramMsix() => _drv.ProgramMsix();
    private GuestDriver Init() => _drv.Init();

    [Fact]
    public void Block_read_over_PCI_raises_the_queues_MSI_X_vector()
    {
        var drv = Init();
        // Device config (capacity) through the device-config structure.
        Assert.Equal(32UL, Bar(L.DeviceOffset, 8));

        ulong hdr = drv.Alloc(16), buf = drv.Alloc(512), st = drv.Alloc(1, 0xff);
        _mem.Write(hdr, 0u);
        _mem.Write(hdr + 8, 4UL);
        drv.Push((hdr, 16, false), (buf, 512, true), (st, 1, true));
        BarW(L.NotifyOffset + 0 * L.NotifyOffMultiplier, 0, 2); // no ioeventfd here: rings the doorbell
        Assert.Equal(1UL, _t.QueueEvents[0].Read());
        _t.QueueEvents[0].Write(1);
        _t.ProcessQueueEvent(0);

        Assert.Equal(1, drv.UsedIdx);
        Assert.Equal(513u, drv.Used(0).Len);
        Assert.Equal(5, _mem.Read<byte>(buf));
        Assert.Equal(1, _host.Triggers[0]);  // the queue's vector
        Assert.Equal(0, _host.Triggers[1]);  // not the config vector
        Assert.Equal(new MsiMessage(0xfee0_0000, 0, 0x40), _host.Messages[0]);
        Assert.Equal(1UL, Bar(L.IsrOffset, 1)); // ISR: used buffer; reading clears it
        Assert.Equal(0UL, Bar(L.IsrOffset, 1));
    }

    [Fact]
    public void Masked_queue_vector_is_held_in_the_PBA_until_unmasked()
    {
        var drv = Init();
        BarW(L.MsixTableOffset + 12, 1, 4); // mask vector 0
        ulong hdr = drv.Alloc(16), buf = drv.Alloc(512), st = drv.Alloc(1, 0xff);
        _mem.Write(hdr, 0u);
        drv.Push((hdr, 16, false), (buf, 512, true), (st, 1, true));
        _t.QueueEvents[0].Write(1);
        _t.ProcessQueueEvent(0);
        Assert.Equal(0, _host.Triggers[0]);
        Assert.Equal(1UL, Bar(L.MsixPbaOffset, 8));
        BarW(L.MsixTableOffset + 12, 0, 4);
        Assert.Equal(1, _host.Triggers[0]);
        Assert.Equal(0UL, Bar(L.MsixPbaOffset, 8));
    }

    [Fact]
    public void Vectors_past_the_table_read_back_as_no_vector()
    {
        ProgramMsix();
        BarW(Status, S.Acknowledge, 1);
        BarW(Status, S.Acknowledge | S.Driver, 1);
        BarW(DrvFeatSel, 1, 4); BarW(DrvFeat, 1, 4); // VERSION_1
        BarW(Status, S.Acknowledge | S.Driver | S.FeaturesOk, 1);
        BarW(MsixCfg, 2, 2);
        Assert.Equal((ulong)L.NoVector, Bar(MsixCfg, 2));
        BarW(QVec, 0x7fff, 2);
        Assert.Equal((ulong)L.NoVector, Bar(QVec, 2));
        BarW(QSel, 9, 2); // no such queue
        Assert.Equal(0UL, Bar(QSize, 2));
        Assert.Equal((ulong)L.NoVector, Bar(QVec, 2));
        BarW(QVec, 0, 2);
        BarW(QEnable, 1, 2);
        Assert.Equal(0UL, Bar(QEnable, 2));
    }

    [Fact]
    public void Live_queue_layout_and_vector_are_frozen_after_DRIVER_OK()
    {
        var drv = Init();
        BarW(QDesc, 0x8_0000, 8);
        BarW(QSize, 4, 2);
        BarW(QVec, 1, 2);
        Assert.Equal(drv.Desc, Bar(QDesc, 8));
        Assert.Equal(16UL, Bar(QSize, 2));
        Assert.Equal(0UL, Bar(QVec, 2));
    }

    [Theory]
    [InlineData(Status, 2)]       // status is one byte
    [InlineData(Status, 4)]
    [InlineData(QSel, 4)]
    [InlineData(QSel + 1, 1)]     // inside a field
    [InlineData(DevFeat, 2)]
    [InlineData(QDesc + 2, 4)]
    [InlineData(0x38UL, 2)]       // past the structure
    public void Common_config_accesses_of_the_wrong_width_are_ignored(ulong offset, int length)
    {
        BarW(offset, S.Acknowledge, length);
        Assert.Equal(0UL, Bar(Status, 1));
        Assert.Equal(0UL, Bar(offset, length));
    }

    [Fact]
    public void Reset_clears_status_queues_and_vectors_but_not_the_PCI_function()
    {
        Init();
        BarW(Status, 0, 1);
        Assert.Equal(0UL, Bar(Status, 1));
        Assert.False(_t.IsActivated);
        Assert.Equal((ulong)L.NoVector, Bar(MsixCfg, 2));
        Assert.Equal((ulong)L.NoVector, Bar(QVec, 2));
        Assert.Equal(0UL, Bar(QEnable, 2));
        Assert.True(_t.Msix.Enabled); // MSI-X enable is PCI function state, owned by the PCI core, not virtio
    }

    [Fact]
    public void Status_steps_cannot_be_skipped()
    {
        BarW(Status, S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk, 1);
        Assert.Equal(0UL, Bar(Status, 1));
        Assert.False(_t.IsActivated);
    }

    [Fact]
    public void Notify_for_an_absent_queue_or_off_doorbell_is_ignored()
    {
        BarW(L.NotifyOffset + 4, 1, 2); // queue 1: the block device has one queue
        BarW(L.NotifyOffset + 2, 0, 2); // not on a doorbell
        BarW(L.NotifyOffset + L.NotifySize - 4, 0, 4);
        Assert.Equal(0UL, _t.QueueEvents[0].Read());
    }

    [Fact]
    public void PCI_cfg_window_reaches_the_BAR_only_for_valid_targets()
    {
        var cap = WalkCapabilities().Single(c => c.Type == L.CapPciCfg).Offset;
        // Read device features (common cfg +4) through the window.
        CfgW32(cap + 8, (uint)DevFeat);
        CfgW32(cap + 12, 4);
        Assert.Equal((uint)_blk.AvailableFeatures, Cfg32(cap + 16));
        // A write of status through the window.
        CfgW32(cap + 8, (uint)Status);
        CfgW32(cap + 12, 1);
        Span<byte> one = [(byte)S.Acknowledge];
        _drv.Ecam.Write(Cfg(cap + 16), one);
        Assert.Equal((ulong)S.Acknowledge, Bar(Status, 1));
        // Hostile windows: a length of 3, a misaligned offset, past the BAR, another BAR.
        foreach (var (bar, off, len) in new (uint, uint, uint)[] { (0, 4, 3), (0, 6, 4), (0, (uint)L.BarSize, 4), (0, 0xffff_fffc, 4), (2, 4, 4) })
        {
            CfgW32(cap + 4, bar); // writes cap bytes 4..7: bar is the first, the rest read-only
            CfgW32(cap + 8, off);
            CfgW32(cap + 12, len);
            Assert.Equal(0u, Cfg32(cap + 16));
            CfgW32(cap + 16, 0);
        }
        Assert.Equal((ulong)S.Acknowledge, Bar(Status, 1));
    }

    /// <summary>The hot path over PCI (doorbell write, queue work, MSI-X delivery, ISR read) allocates nothing per request.</summary>
    [Fact]
    public void Request_path_over_PCI_does_not_allocate()
    {
        var drv = Init();
        long allocated = 0;
        for (int i = 0; i < 40; i++)
        {
            ulong hdr = drv.Alloc(16), buf = drv.Alloc(512), st = drv.Alloc(1, 0xff);
            _mem.Write(hdr, 0u);
            _mem.Write(hdr + 8, (ulong)(i % 8));
            drv.Push((hdr, 16, false), (buf, 512, true), (st, 1, true));
            long before = GC.GetAllocatedBytesForCurrentThread();
            BarW(L.NotifyOffset, 0, 2);
            _t.ProcessQueueEvent(0);
            Bar(L.IsrOffset, 1);
            if (i >= 10) allocated += GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.Equal(40, drv.UsedIdx);
        Assert.True(_host.Triggers[0] >= 1); // EVENT_IDX negotiated: the driver's used_event (0) suppresses the rest
        Assert.Equal(0, allocated);
    }
}

using System.Buffers.Binary;
using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;
using Flint.Devices.Tests.Virtio;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Pci;
using Flint.Snapshot;
using L = Flint.Devices.Virtio.Pci.VirtioPciLayout;
using S = Flint.Devices.Virtio.VirtioStatus;

namespace Flint.Devices.Tests.Pci;

/// <summary>
/// A virtio-blk function over virtio-pci saved mid-life and restored onto a fresh function over the same guest memory
/// (what a snapshot load of an --enable-pci microVM does): every field comes back, the queue goes on from its cursors
/// with its MSI-X vector routed again, masked vectors keep their pending bits, and a damaged or foreign state is refused
/// before anything changes.
/// </summary>
public sealed class VirtioPciTransportStateTests : BlockTransportStateFixture
{
    private const ulong BarBase = 0x40_0000_0000;
    private const ulong DrvFeatSel = 0x08, DrvFeat = 0x0c, MsixCfg = 0x10, Status = 0x14, QSel = 0x16, QSize = 0x18,
        QVec = 0x1a, QEnable = 0x1c, QDesc = 0x20, QDriver = 0x28, QDevice = 0x30;
    private (VirtioPciTransport T, FakeMsiVectors Host) NewFunction()
    {
        var host = new FakeMsiVectors(2);
        return (NewBlockTransport(blk => new VirtioPciTransport(blk, Mem, BarBase, host)), host);
    }

    private static ulong Bar(VirtioPciTransport t, ulong off, int len) { Span<byte> b = stackalloc byte[8]; b.Clear(); t.Read(off, b[..len]); return BinaryPrimitives.ReadUInt64LittleEndian(b); }
    private static void BarW(VirtioPciTransport t, ulong off, ulong v, int len) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); t.Write(off, b[..len]); }
    private static void CfgW(VirtioPciTransport t, int byteOffset, uint v, int len)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        t.WriteConfigRegister(byteOffset / 4, byteOffset % 4, b[..len]);
    }

    private static int MsixCap(VirtioPciTransport t)
    {
        int at = (int)(t.ReadConfigRegister(0x34 / 4) & 0xff);
        while (at != 0)
        {
            uint head = t.ReadConfigRegister(at / 4) >> (8 * (at % 4));
            if ((byte)head == MsixCapability.Id) return at;
            at = (int)((t.ReadConfigRegister(at / 4) >> (8 * (at % 4) + 8)) & 0xff);
        }
        throw new InvalidOperationException("no MSI-X capability");
    }

    /// <summary>The driver's bring-up, as VirtioPciTransportTests does it: MSI-X on, vectors 0 (queue) and 1 (config).</summary>
    private GuestDriver Init(VirtioPciTransport t)
    {
        for (int v = 0; v < 2; v++)
        {
            ulong e = L.MsixTableOffset + (ulong)v * 16;
            BarW(t, e, 0xfee0_0000, 4);
            BarW(t, e + 4, 0, 4);
            BarW(t, e + 8, 0x40u + (uint)v, 4);
            BarW(t, e + 12, 0, 4);
        }
        CfgW(t, MsixCap(t) + 2, MsixCapability.EnableBit, 2);
        CfgW(t, 4, 0x6, 2); // command: memory space + bus master
        BarW(t, Status, S.Acknowledge, 1);
        BarW(t, Status, S.Acknowledge | S.Driver, 1);
        BarW(t, DrvFeatSel, 1, 4); BarW(t, DrvFeat, VirtioFeatures.Version1 >> 32, 4);
        BarW(t, DrvFeatSel, 0, 4); BarW(t, DrvFeat, 0, 4);
        BarW(t, Status, S.Acknowledge | S.Driver | S.FeaturesOk, 1);
        BarW(t, MsixCfg, 1, 2);
        var drv = new GuestDriver(Mem, 16);
        BarW(t, QSel, 0, 2);
        BarW(t, QSize, drv.Size, 2);
        BarW(t, QDesc, drv.Desc, 8);
        BarW(t, QDriver, drv.Avail, 8);
        BarW(t, QDevice, drv.UsedRing, 8);
        BarW(t, QVec, 0, 2);
        BarW(t, QEnable, 1, 2);
        BarW(t, Status, S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk, 1);
        Assert.True(t.IsActivated);
        return drv;
    }

    private void ReadSector(VirtioPciTransport t, GuestDriver drv, ulong sector, out ulong buf, out ulong st)
    {
        PushSectorRead(drv, sector, out buf, out st);
        t.QueueEvents[0].Write(1);
        t.ProcessQueueEvent(0);
    }

    private static byte[] Serialize(VirtioPciTransportState s)
    {
        var w = new StateWriter();
        s.Write(w);
        return w.ToArray();
    }

    private static VirtioPciTransportState Parse(byte[] bytes)
    {
        var r = new StateReader("pci/1", bytes);
        var s = VirtioPciTransportState.Read(r);
        r.ExpectEnd();
        return s;
    }

    [Fact]
    public void Every_field_survives_save_parse_and_restore()
    {
        var (a, _) = NewFunction();
        var drv = Init(a);
        ReadSector(a, drv, 3, out _, out _);
        // State a guest can leave behind: interrupt line byte, a PCI cfg window target, a BAR sizing read pending,
        // the config vector masked with a config change pending, another queue selected, the ISR bit unread.
        CfgW(a, 0x3c, 0x0b, 1);
        int window = (int)(a.ReadConfigRegister(0x34 / 4) & 0xff);
        CfgW(a, 0x10, 0xffff_ffff, 4);
        BarW(a, L.MsixTableOffset + 16 + 12, 1, 4);
        a.Interrupt.SignalConfigChange();
        BarW(a, QSel, 7, 2);
        var saved = a.CaptureState();
        var bytes = Serialize(saved);

        var parsed = Parse(bytes);
        Assert.Equal(bytes, Serialize(parsed)); // the parser reads back exactly what was written
        Assert.Equal((uint)VirtioDeviceType.Block, parsed.DeviceType);
        Assert.Equal(BarBase, parsed.BarAddress);
        Assert.Equal(0b1, parsed.BarSizingBits);
        Assert.Equal(S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk, parsed.Status);
        Assert.Equal(VirtioFeatures.Version1, parsed.DriverFeatures);
        Assert.Equal(0u, parsed.DriverFeaturesSel);
        Assert.Equal(7u, parsed.QueueSel);
        Assert.Equal(VirtioInterrupt.UsedBuffer | VirtioInterrupt.ConfigChange, parsed.IsrStatus);
        Assert.True(parsed.Activated);
        Assert.Equal(1, parsed.ConfigVector);
        Assert.Equal(new VirtioPciQueueState(16, true, drv.Desc, drv.Avail, drv.UsedRing, 1, 1, 0), parsed.Queues.Single());
        Assert.True(parsed.Msix.Enabled);
        Assert.False(parsed.Msix.FunctionMasked);
        Assert.Equal([0xfee0_0000u, 0, 0x40, 0, 0xfee0_0000u, 0, 0x41, 1], parsed.Msix.Entries);
        Assert.Equal([0b10UL], parsed.Msix.Pba);
        Assert.Equal(0x6u, parsed.ConfigRegisters[1] & 0xffff);
        Assert.Equal(0x0bu, parsed.ConfigRegisters[15] & 0xff);
        Assert.NotEqual(0, window);

        var (b, host) = NewFunction();
        b.RestoreState(parsed, "pci/1");
        Assert.Equal(bytes, Serialize(b.CaptureState())); // the restored function captures to the same bytes
        Assert.Equal(0xfff8_0004u, b.ReadConfigRegister(4)); // the sizing read the guest had not made yet
        Assert.Equal(0x0000_0004u, b.ReadConfigRegister(4));
        Assert.True(host.Enabled[0]);                        // vector 0's route installed again
        Assert.Equal(new MsiMessage(0xfee0_0000, 0, 0x40), host.Messages[0]);
        Assert.False(host.Enabled[1]);                       // vector 1 is masked: no route
        Assert.Equal(0, host.Triggers[1]);
    }

    [Fact]
    public void Restored_block_device_continues_its_queue_over_pci()
    {
        var (a, hostA) = NewFunction();
        var drv = Init(a);
        ReadSector(a, drv, 4, out var buf1, out _);
        Assert.Equal(1, drv.UsedIdx);
        Assert.Equal(5, Mem.Read<byte>(buf1));
        Assert.Equal(1, hostA.Triggers[0]);
        var bytes = Serialize(a.CaptureState());

        var (b, hostB) = NewFunction();
        b.RestoreState(Parse(bytes), "pci/1");
        Assert.True(b.IsActivated);
        Assert.Equal((ulong)(S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk), Bar(b, Status, 1));
        Assert.Equal(0, hostB.Triggers[0]); // nothing raised again: the old MSI went to the (saved) local APIC

        ReadSector(b, drv, 9, out var buf2, out var st2);
        Assert.Equal(2, drv.UsedIdx);        // used slot 1: the cursors came back
        Assert.Equal(0, Mem.Read<byte>(st2));
        Assert.Equal(10, Mem.Read<byte>(buf2));
        Assert.Equal(1, hostB.Triggers[0]);  // on the queue's vector, through the re-installed route
        Assert.Equal(0UL, Bar(b, QVec, 2));
        Assert.Equal(1UL, Bar(b, MsixCfg, 2));
    }

    [Fact]
    public void Masked_vector_keeps_its_pending_bit_across_restore_and_fires_on_unmask()
    {
        var (a, _) = NewFunction();
        var drv = Init(a);
        BarW(a, L.MsixTableOffset + 12, 1, 4); // mask vector 0
        ReadSector(a, drv, 1, out _, out _);
        Assert.True(a.Msix.IsPending(0));
        // And the whole function masked on top.
        CfgW(a, MsixCap(a) + 2, MsixCapability.EnableBit | MsixCapability.FunctionMaskBit, 2);
        var bytes = Serialize(a.CaptureState());

        var (b, host) = NewFunction();
        b.RestoreState(Parse(bytes), "pci/1");
        Assert.True(b.Msix.IsPending(0));
        Assert.True(b.Msix.IsMasked(0));
        Assert.True(b.Msix.FunctionMasked);
        Assert.Equal(1UL, Bar(b, L.MsixPbaOffset, 8));
        Assert.Equal(0, host.Triggers[0]);
        BarW(b, L.MsixTableOffset + 12, 0, 4);   // entry unmasked; the function mask still holds it
        Assert.Equal(0, host.Triggers[0]);
        CfgW(b, MsixCap(b) + 2, MsixCapability.EnableBit, 2);
        Assert.Equal(1, host.Triggers[0]);       // delivered once, when the last mask went
        Assert.False(b.Msix.IsPending(0));
    }

    [Fact]
    public void Pending_bit_of_an_unmasked_vector_is_delivered_at_restore()
    {
        var (a, _) = NewFunction();
        Init(a);
        var s = a.CaptureState();
        var bytes = Serialize(s);
        // A pending bit for vector 0 with nothing masking it (the table's own rule never leaves one; a file might).
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(bytes.Length - 8), 1);
        var (b, host) = NewFunction();
        b.RestoreState(Parse(bytes), "pci/1");
        Assert.Equal(1, host.Triggers[0]);
        Assert.False(b.Msix.IsPending(0));
    }

    // Offsets in a serialized state: type 4, BAR 8, register count 4 + 64 registers, sizing bits 1, status, two
    // selectors 4 each, driver features 8, queue select 4, ISR 4, activated 1, then the config vector.
    private const int RegistersAt = 16, SizingAt = RegistersAt + 256, ConfigVectorAt = SizingAt + 1 + 4 * 3 + 8 + 4 + 4 + 1;

    [Fact]
    public void Truncated_or_boundless_states_are_format_errors()
    {
        var (a, _) = NewFunction();
        Init(a);
        var bytes = Serialize(a.CaptureState());
        for (int n = 0; n < bytes.Length; n++)
            Assert.Throws<SnapshotFormatException>(() => VirtioPciTransportState.Read(new StateReader("pci/1", bytes[..n])));

        static void Refused(byte[] b, string what) =>
            Assert.Contains(what, Assert.Throws<SnapshotFormatException>(() => VirtioPciTransportState.Read(new StateReader("pci/1", b))).Message);
        var badVector = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(badVector.AsSpan(ConfigVectorAt), 2); // the table has 2 vectors
        Refused(badVector, "config MSI-X vector 2");
        var badQueueVector = (byte[])bytes.Clone();
        int queueVectorAt = ConfigVectorAt + 2 + 4 + 2 + 1 + 24 + 4;
        BinaryPrimitives.WriteUInt16LittleEndian(badQueueVector.AsSpan(queueVectorAt), 0x7fff);
        Refused(badQueueVector, "queue 0 MSI-X vector");
        var queues = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(queues.AsSpan(ConfigVectorAt + 2), 100_000);
        Refused(queues, "count of 100000");
        var sizing = (byte[])bytes.Clone();
        sizing[SizingAt] = 0x40;
        Refused(sizing, "sizing bits");
        var pba = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(pba.AsSpan(pba.Length - 8), 1UL << 5);
        Refused(pba, "past its 2 vectors");
        var regs = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(regs.AsSpan(RegistersAt - 4), 1024);
        Refused(regs, "count of 1024");
    }

    [Fact]
    public void State_of_another_function_is_refused_before_anything_changes()
    {
        var (a, _) = NewFunction();
        Init(a);
        var bytes = Serialize(a.CaptureState());
        void RefusedOnRestore(byte[] b, string what)
        {
            var (t, host) = NewFunction();
            Assert.Contains(what, Assert.Throws<SnapshotFormatException>(() => t.RestoreState(Parse(b), "pci/1")).Message);
            Assert.False(t.IsActivated);
            Assert.Equal(0u, t.DeviceStatus);
            Assert.Equal(0, host.RouteCalls);
            Assert.Equal(0u, t.ReadConfigRegister(1) & 0xffff);
        }
        var type = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(type, VirtioDeviceType.Net);
        RefusedOnRestore(type, "type 1");
        var bar = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(bar.AsSpan(4), BarBase + L.BarSize);
        RefusedOnRestore(bar, "BAR at 0x4000080000");
        var identity = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(identity.AsSpan(RegistersAt), 0x1041_1af4); // another device id
        RefusedOnRestore(identity, "read-only PCI configuration register 0");
        var msixCtl = (byte[])bytes.Clone();
        int msixReg = MsixCap(a) / 4;
        uint reg = BinaryPrimitives.ReadUInt32LittleEndian(msixCtl.AsSpan(RegistersAt + 4 * msixReg));
        BinaryPrimitives.WriteUInt32LittleEndian(msixCtl.AsSpan(RegistersAt + 4 * msixReg), reg & ~((uint)MsixCapability.EnableBit << 16));
        RefusedOnRestore(msixCtl, "disagrees");
    }

    [Fact]
    public void Host_bridge_keeps_its_writable_bits_and_refuses_another_identity()
    {
        var bus = new PciRootBus();
        var bridge = (PciHostBridge)bus.Device(0)!;
        Span<byte> two = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(two, 0x0006);
        bridge.WriteConfigRegister(1, 0, two);
        var w = new StateWriter();
        bridge.SaveState(w);
        var regs = PciConfigSpace.ReadRegisters(new StateReader("pci", w.ToArray()));
        var fresh = new PciHostBridge();
        fresh.RestoreState(regs, "pci");
        Assert.Equal(0x6u, fresh.ReadConfigRegister(1) & 0xffff);
        regs[2] ^= 0xff00_0000; // class code
        Assert.Contains("register 2", Assert.Throws<SnapshotFormatException>(() => new PciHostBridge().RestoreState(regs, "pci")).Message);
    }
}

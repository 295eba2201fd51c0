using System.Buffers.Binary;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Memory;
using R = Flint.Devices.Virtio.MmioRegisters;
using S = Flint.Devices.Virtio.VirtioStatus;

namespace Flint.Devices.Tests.Virtio;

/// <summary>Drives a block device through the virtio-mmio register file exactly as a guest kernel would.</summary>
public sealed class MmioTransportTests : IDisposable
{
    private readonly string _file = Path.GetTempFileName();
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
    private readonly VirtioBlock _blk;
    private readonly CountingInterrupt _line = new();
    private readonly MmioTransport _t;

    public MmioTransportTests()
    {
        var content = new byte[32 * 512];
        for (int i = 0; i < content.Length; i++) content[i] = (byte)(i / 512 + 1);
        File.WriteAllBytes(_file, content);
        _blk = new VirtioBlock(_file);
        _t = new MmioTransport(_blk, _mem, _line);
    }

    public void Dispose()
    {
        _t.Dispose();
        _blk.Dispose();
        _mem.Dispose();
        File.Delete(_file);
    }

    private uint Rd(ulong off)
    {
        Span<byte> b = stackalloc byte[4];
        _t.Read(off, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private void Wr(ulong off, uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        _t.Write(off, b);
    }

    private ulong ReadDeviceFeatures()
    {
        Wr(R.DeviceFeaturesSel, 0);
        ulong lo = Rd(R.DeviceFeatures);
        Wr(R.DeviceFeaturesSel, 1);
        return lo | ((ulong)Rd(R.DeviceFeatures) << 32);
    }

    private void WriteDriverFeatures(ulong f)
    {
        Wr(R.DriverFeaturesSel, 0);
        Wr(R.DriverFeatures, (uint)f);
        Wr(R.DriverFeaturesSel, 1);
        Wr(R.DriverFeatures, (uint)(f >> 32));
    }

    private void SetupQueue(GuestDriver drv)
    {
        Wr(R.QueueSel, 0);
        Assert.Equal(0u, Rd(R.QueueReady));
        Assert.Equal(256u, Rd(R.QueueNumMax));
        Wr(R.QueueNum, drv.Size);
        Wr(R.QueueDescLow, (uint)GuestDriver.DescBase);
        Wr(R.QueueDescHigh, 0);
        Wr(R.QueueDriverLow, (uint)GuestDriver.AvailBase);
        Wr(R.QueueDriverHigh, 0);
        Wr(R.QueueDeviceLow, (uint)GuestDriver.UsedBase);
        Wr(R.QueueDeviceHigh, 0);
        Wr(R.QueueReady, 1);
        Assert.Equal(1u, Rd(R.QueueReady));
    }

    /// <summary>Spec 3.1.1 driver initialisation, step by step.</summary>
    private GuestDriver Init(ushort queueSize = 16)
    {
        Assert.Equal(0x74726976u, Rd(R.MagicValue));
        Assert.Equal(2u, Rd(R.Version));
        Assert.Equal(2u, Rd(R.DeviceId));
        Wr(R.Status, 0);
        Wr(R.Status, S.Acknowledge);
        Wr(R.Status, S.Acknowledge | S.Driver);
        ulong features = ReadDeviceFeatures();
        Assert.NotEqual(0UL, features & VirtioFeatures.Version1);
        WriteDriverFeatures(features);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk);
        Assert.NotEqual(0u, Rd(R.Status) & S.FeaturesOk);
        var drv = new GuestDriver(_mem, queueSize);
        SetupQueue(drv);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk);
        return drv;
    }

    [Fact]
    public void Full_init_then_block_read_through_eventfd()
    {
        var drv = Init();
        Assert.True(_t.IsActivated);
        Assert.Equal(S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk, Rd(R.Status));
        Assert.Equal(_blk.AvailableFeatures, _t.DriverFeatures);

        // Capacity through config space, as the guest reads it: two 32-bit halves and a byte.
        Assert.Equal(32u, Rd(R.Config));
        Assert.Equal(0u, Rd(R.Config + 4));
        Span<byte> one = stackalloc byte[1];
        _t.Read(R.Config, one);
        Assert.Equal(32, one[0]);

        ulong hdr = drv.Alloc(16), buf = drv.Alloc(512), st = drv.Alloc(1, 0xff);
        _mem.Write(hdr, 0u);
        _mem.Write(hdr + 8, 4UL);
        drv.Push((hdr, 16, false), (buf, 512, true), (st, 1, true));

        // No ioeventfd in a test: the QueueNotify write lands here and must ring the queue's eventfd,
        // not process on this (vCPU) thread.
        Wr(R.QueueNotify, 0);
        Assert.Equal(0, drv.UsedIdx);
        Assert.Equal(1UL, _t.QueueEvents[0].Read());
        _t.QueueEvents[0].Write(1);
        _t.ProcessQueueEvent(0);
        Assert.Equal(0UL, _t.QueueEvents[0].Read()); // the doorbell was consumed

        Assert.Equal(1, drv.UsedIdx);
        Assert.Equal(513u, drv.Used(0).Len);
        Assert.Equal(0, _mem.Read<byte>(st));
        Assert.Equal(5, _mem.Read<byte>(buf));
        Assert.Equal(1, _line.Count);
        Assert.Equal(1u, Rd(R.InterruptStatus));
        Wr(R.InterruptAck, 1);
        Assert.Equal(0u, Rd(R.InterruptStatus));
    }

    [Fact]
    public void The_identity_registers()
    {
        Assert.Equal(MmioTransport.Vendor, Rd(R.VendorId));
        Assert.Equal(0x50UL, MmioTransport.NotifyAddress);
        Assert.Equal(0u, Rd(R.Status));
        Wr(R.DeviceFeaturesSel, 7);
        Assert.Equal(0u, Rd(R.DeviceFeatures));
        Wr(R.QueueSel, 5);
        Assert.Equal(0u, Rd(R.QueueNumMax)); // no such queue: driver sees "not available"
        Assert.Equal(0u, Rd(0x0e0));          // unknown register reads zero
        Assert.Equal(0u, Rd(R.Config + 0x700)); // past the device config: zero
    }

    [Fact]
    public void Non_word_register_access_is_ignored()
    {
        Span<byte> two = stackalloc byte[2];
        two.Fill(0xff);
        _t.Read(R.MagicValue, two);
        Assert.Equal(0, two[0] | two[1]);
        Span<byte> b = [1];
        _t.Write(R.Status, b);
        Assert.Equal(0u, Rd(R.Status));
        Span<byte> four = stackalloc byte[4];
        _t.Read(R.MagicValue + 1, four); // misaligned
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(four));
    }

    [Fact]
    public void FEATURES_OK_refused_for_unoffered_feature()
    {
        Wr(R.Status, S.Acknowledge);
        Wr(R.Status, S.Acknowledge | S.Driver);
        WriteDriverFeatures(VirtioFeatures.Version1 | (1UL << 28)); // INDIRECT_DESC: not offered
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk);
        Assert.Equal(0u, Rd(R.Status) & S.FeaturesOk);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk);
        Assert.False(_t.IsActivated);
    }

    [Fact]
    public void FEATURES_OK_refused_without_VERSION_1()
    {
        Wr(R.Status, S.Acknowledge);
        Wr(R.Status, S.Acknowledge | S.Driver);
        WriteDriverFeatures(1UL << 9);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk);
        Assert.Equal(0u, Rd(R.Status) & S.FeaturesOk);
    }

    [Fact]
    public void Status_steps_cannot_be_skipped_or_cleared()
    {
        Wr(R.Status, S.Driver); // DRIVER without ACKNOWLEDGE
        Assert.Equal(0u, Rd(R.Status));
        Wr(R.Status, S.Acknowledge);
        Wr(R.Status, S.Acknowledge | S.Driver | S.DriverOk); // DRIVER_OK without FEATURES_OK
        Assert.Equal(S.Acknowledge, Rd(R.Status));
        Wr(R.Status, S.Acknowledge | S.Driver);
        Wr(R.Status, S.Acknowledge); // clearing a bit is not how a driver resets
        Assert.Equal(S.Acknowledge | S.Driver, Rd(R.Status));
        Wr(R.Status, S.Acknowledge | S.Driver | S.Failed);
        Assert.NotEqual(0u, Rd(R.Status) & S.Failed);
    }

    [Fact]
    public void Features_cannot_change_after_FEATURES_OK()
    {
        Init();
        Wr(R.DriverFeaturesSel, 0);
        Wr(R.DriverFeatures, 0);
        Assert.Equal(_blk.AvailableFeatures, _t.DriverFeatures);
    }

    [Fact]
    public void Queue_registers_frozen_after_DRIVER_OK()
    {
        Init();
        Wr(R.QueueSel, 0);
        Wr(R.QueueDescLow, 0x8000);
        Wr(R.QueueNum, 8);
        Wr(R.QueueReady, 0);
        Assert.Equal((uint)GuestDriver.DescBase, Rd(R.QueueDescLow));
        Assert.Equal(16u, Rd(R.QueueNum));
        Assert.Equal(1u, Rd(R.QueueReady));
    }

    [Fact]
    public void Queue_registers_ignored_before_FEATURES_OK_and_while_ready()
    {
        Wr(R.QueueSel, 0);
        Wr(R.QueueDescLow, 0x8000);
        Assert.Equal(0u, Rd(R.QueueDescLow));
        Wr(R.Status, S.Acknowledge);
        Wr(R.Status, S.Acknowledge | S.Driver);
        WriteDriverFeatures(VirtioFeatures.Version1);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk);
        Wr(R.QueueReady, 1);
        Wr(R.QueueDescLow, 0x8000); // ready: layout frozen
        Assert.Equal(0u, Rd(R.QueueDescLow));
        Wr(R.QueueReady, 0);
        Wr(R.QueueDescLow, 0x8000);
        Assert.Equal(0x8000u, Rd(R.QueueDescLow));
    }

    [Fact]
    public void Bad_queue_layout_sets_needs_reset()
    {
        Wr(R.Status, S.Acknowledge);
        Wr(R.Status, S.Acknowledge | S.Driver);
        WriteDriverFeatures(VirtioFeatures.Version1);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk);
        Wr(R.QueueSel, 0);
        Wr(R.QueueNum, 16);
        Wr(R.QueueDescLow, 0x1004); // misaligned
        Wr(R.QueueDriverLow, 0x2000);
        Wr(R.QueueDeviceLow, 0x3000);
        Wr(R.QueueReady, 1);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk);
        Assert.False(_t.IsActivated);
        Assert.NotEqual(0u, Rd(R.Status) & S.DeviceNeedsReset);
        Assert.Equal(VirtioInterrupt.ConfigChange, Rd(R.InterruptStatus));
        Assert.Equal(1, _blk.Metrics.ActivateFails);
        _t.QueueEvents[0].Write(1);
        _t.ProcessQueueEvent(0); // not active: nothing happens, nothing throws

        // Reset and a proper setup recover it.
        Init();
        Assert.True(_t.IsActivated);
        Assert.Equal(0u, Rd(R.Status) & S.DeviceNeedsReset);
    }

    [Fact]
    public void Queue_not_written_ready_fails_activation()
    {
        Wr(R.Status, S.Acknowledge);
        Wr(R.Status, S.Acknowledge | S.Driver);
        WriteDriverFeatures(VirtioFeatures.Version1);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk);
        Wr(R.Status, S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk);
        Assert.False(_t.IsActivated);
        Assert.NotEqual(0u, Rd(R.Status) & S.DeviceNeedsReset);
    }

    [Fact]
    public void Reset_returns_to_initial_state()
    {
        var drv = Init();
        ulong st = drv.Alloc(1, 0xff), hdr = drv.Alloc(16);
        _mem.Write(hdr, 4u);
        drv.Push((hdr, 16, false), (st, 1, true));
        _t.ProcessQueueEvent(0);
        Assert.Equal(1u, Rd(R.InterruptStatus));
        Wr(R.Status, 0);
        Assert.False(_t.IsActivated);
        Assert.Equal(0u, Rd(R.Status));
        Assert.Equal(0u, Rd(R.InterruptStatus));
        Wr(R.QueueSel, 0);
        Assert.Equal(0u, Rd(R.QueueReady));
        Assert.Equal(0u, Rd(R.QueueDescLow));
        Assert.Equal(0UL, _t.DriverFeatures);

        // Full re-init works and starts from ring index 0 again.
        drv = Init();
        st = drv.Alloc(1, 0xff);
        drv.Push((hdr, 16, false), (st, 1, true));
        _t.ProcessQueueEvent(0);
        Assert.Equal(1, drv.UsedIdx);
        Assert.Equal(0, _mem.Read<byte>(st));
    }

    [Fact]
    public void Notify_for_unknown_queue_is_ignored()
    {
        Init();
        Wr(R.QueueNotify, 7);
        _t.ProcessQueueEvent(7);
        _t.ProcessQueueEvent(-1);
        Assert.Equal(0UL, _t.QueueEvents[0].Read());
    }

    [Fact]
    public void Config_generation_follows_drive_updates()
    {
        Init();
        uint gen = Rd(R.ConfigGeneration);
        string other = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(other, new byte[64 * 512]);
            _blk.UpdateBackingFile(other);
            Assert.Equal(gen + 1, Rd(R.ConfigGeneration));
            Assert.Equal(64u, Rd(R.Config));
            Assert.Equal(VirtioInterrupt.ConfigChange, Rd(R.InterruptStatus));
        }
        finally
        {
            File.Delete(other);
        }
    }

    [Fact]
    public void Config_writes_go_to_device()
    {
        Span<byte> b = [1, 2];
        _t.Write(R.Config + 3, b);
        Assert.Equal(1, _blk.Metrics.CfgFails);
        Assert.Equal(32u, Rd(R.Config));
    }
}

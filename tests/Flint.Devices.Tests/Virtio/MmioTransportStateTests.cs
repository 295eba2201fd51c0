using System.Buffers.Binary;
using Flint.Devices.Virtio;
using Flint.Snapshot;
using R = Flint.Devices.Virtio.MmioRegisters;
using S = Flint.Devices.Virtio.VirtioStatus;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// A transport saved mid-life and restored on a fresh device over the same guest memory (what a snapshot load does):
/// the restored queue goes on from the saved cursors, and state that would not pass DRIVER_OK's checks is refused the
/// same way (DEVICE_NEEDS_RESET), never trusted.
/// </summary>
public sealed class MmioTransportStateTests : BlockTransportStateFixture
{
    private (MmioTransport T, CountingInterrupt Line) NewTransport()
    {
        var line = new CountingInterrupt();
        return (NewBlockTransport(blk => new MmioTransport(blk, Mem, line)), line);
    }

    private static void Wr(MmioTransport t, ulong off, uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        t.Write(off, b);
    }

    private static uint Rd(MmioTransport t, ulong off)
    {
        Span<byte> b = stackalloc byte[4];
        t.Read(off, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private GuestDriver Init(MmioTransport t)
    {
        Wr(t, R.Status, S.Acknowledge);
        Wr(t, R.Status, S.Acknowledge | S.Driver);
        Wr(t, R.DriverFeaturesSel, 0); Wr(t, R.DriverFeatures, 0);
        Wr(t, R.DriverFeaturesSel, 1); Wr(t, R.DriverFeatures, (uint)(VirtioFeatures.Version1 >> 32));
        Wr(t, R.Status, S.Acknowledge | S.Driver | S.FeaturesOk);
        var drv = new GuestDriver(Mem, 16);
        Wr(t, R.QueueSel, 0);
        Wr(t, R.QueueNum, drv.Size);
        Wr(t, R.QueueDescLow, (uint)GuestDriver.DescBase);
        Wr(t, R.QueueDriverLow, (uint)GuestDriver.AvailBase);
        Wr(t, R.QueueDeviceLow, (uint)GuestDriver.UsedBase);
        Wr(t, R.QueueReady, 1);
        Wr(t, R.Status, S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk);
        Assert.True(t.IsActivated);
        return drv;
    }

    private void Read(MmioTransport t, GuestDriver drv, ulong sector, out ulong buf, out ulong st)
    {
        PushSectorRead(drv, sector, out buf, out st);
        t.QueueEvents[0].Write(1);
        t.ProcessQueueEvent(0);
    }

    [Fact]
    public void Restored_transport_continues_the_queue_from_the_saved_cursors()
    {
        var (a, _) = NewTransport();
        var drv = Init(a);
        Read(a, drv, 4, out var buf1, out _);
        Assert.Equal(1, drv.UsedIdx);
        Assert.Equal(5, Mem.Read<byte>(buf1));
        var w = new StateWriter();
        a.SaveState(w);

        var (b, line) = NewTransport();
        b.RestoreState(new StateReader("virtio/0", w.ToArray()));
        Assert.True(b.IsActivated);
        Assert.Equal(S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk, Rd(b, R.Status));
        Assert.Equal(1u, Rd(b, R.InterruptStatus));   // not acknowledged before the save: still pending
        Assert.Equal(1, line.Count);                   // and the line raised again for it

        Read(b, drv, 9, out var buf2, out var st2);
        Assert.Equal(2, drv.UsedIdx);                  // the second request went to used slot 1: cursors restored
        Assert.Equal(0, Mem.Read<byte>(st2));
        Assert.Equal(10, Mem.Read<byte>(buf2));
    }

    [Fact]
    public void Restored_queue_outside_guest_memory_gets_needs_reset_not_an_active_device()
    {
        var (a, _) = NewTransport();
        Init(a);
        var w = new StateWriter();
        a.SaveState(w);
        var bytes = w.ToArray();
        // The first queue's descriptor table address (after type, status, 2 selectors, features, queue sel, irq, bool,
        // count, size, ready): point it far outside the 1 MiB of guest memory.
        int descAt = 4 + 4 + 4 + 4 + 8 + 4 + 4 + 1 + 4 + 2 + 1;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(descAt), 0x7000_0000_0000UL);

        var (b, _) = NewTransport();
        b.RestoreState(new StateReader("virtio/0", bytes));
        Assert.False(b.IsActivated);
        Assert.NotEqual(0u, Rd(b, R.Status) & S.DeviceNeedsReset);
    }

    [Fact]
    public void State_of_another_device_type_or_truncated_is_a_format_error()
    {
        var (a, _) = NewTransport();
        Init(a);
        var w = new StateWriter();
        a.SaveState(w);
        var bytes = w.ToArray();
        var (b, _) = NewTransport();
        var wrongType = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(wrongType, 4);
        Assert.Contains("type 4", Assert.Throws<SnapshotFormatException>(() => b.RestoreState(new StateReader("virtio/0", wrongType))).Message);
        for (int n = 0; n < bytes.Length; n++)
            Assert.Throws<SnapshotFormatException>(() => b.RestoreState(new StateReader("virtio/0", bytes[..n])));
        Assert.False(b.IsActivated);
    }
}

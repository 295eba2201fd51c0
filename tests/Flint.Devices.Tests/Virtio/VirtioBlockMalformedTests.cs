using Flint.Devices.Virtio;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// Every way a chain can be wrong: the request fails (IOERR, or used len 0 with no status write when there is
/// no trustworthy status byte), nothing throws, and the next good request still works.
/// </summary>
public sealed class VirtioBlockMalformedTests : IDisposable
{
    private readonly BlockHarness _h = new();

    public void Dispose() => _h.Dispose();

    private (uint Id, uint Len) ProcessOne()
    {
        ushort before = _h.Driver.UsedIdx;
        _h.Process();
        Assert.Equal((ushort)(before + 1), _h.Driver.UsedIdx);
        return _h.Driver.Used(before);
    }

    [Fact]
    public void Data_descriptor_outside_memory()
    {
        ulong st = _h.StatusByte();
        _h.Driver.Push((_h.Header(RequestIn, 0), 16, false), (BlockHarness.MemSize - 256, 512, true), (st, 1, true));
        Assert.Equal(0u, ProcessOne().Len);
        Assert.Equal(0xff, _h.Status(st));
        Assert.Equal(1, _h.Device.Metrics.InvalidReqsCount);
        _h.AssertReadable();
    }

    [Fact]
    public void Header_outside_memory()
    {
        ulong st = _h.StatusByte();
        _h.Driver.Push((0x4000_0000UL, 16, false), (st, 1, true));
        Assert.Equal(0u, ProcessOne().Len);
        Assert.Equal(0xff, _h.Status(st));
        _h.AssertReadable();
    }

    [Fact]
    public void A_looping_chain()
    {
        ulong h = _h.Header(RequestIn, 0), d = _h.Driver.Alloc(512);
        _h.Driver.SetDesc(0, h, 16, Descriptor.FlagNext, 1);
        _h.Driver.SetDesc(1, d, 512, (ushort)(Descriptor.FlagNext | Descriptor.FlagWrite), 0);
        _h.Driver.Publish(0);
        var (id, len) = ProcessOne();
        Assert.Equal(0u, id);
        Assert.Equal(0u, len);
        Assert.Equal(1, _h.Device.Metrics.InvalidReqsCount);
        _h.AssertReadable();
    }

    [Fact]
    public void Chain_longer_than_queue()
    {
        // 16 descriptors fill the queue; the last one links on to descriptor 0 again: 17 is too long.
        ulong d = _h.Driver.Alloc(512);
        _h.Driver.SetDesc(0, _h.Header(RequestIn, 0), 16, Descriptor.FlagNext, 1);
        for (ushort i = 1; i < 16; i++)
            _h.Driver.SetDesc(i, d, 512, (ushort)(Descriptor.FlagNext | Descriptor.FlagWrite), (ushort)((i + 1) % 16));
        _h.Driver.Publish(0);
        Assert.Equal(0u, ProcessOne().Len);
        _h.AssertReadable();
    }

    [Fact]
    public void Head_index_out_of_range()
    {
        _h.Driver.Publish(200); // queue size is 16
        var (id, len) = ProcessOne();
        Assert.Equal(200u, id);
        Assert.Equal(0u, len);
        _h.AssertReadable();
    }

    [Fact]
    public void Next_index_out_of_range()
    {
        ulong st = _h.StatusByte();
        _h.Driver.SetDesc(0, _h.Header(RequestFlush, 0), 16, Descriptor.FlagNext, 16);
        _h.Driver.SetDesc(1, st, 1, Descriptor.FlagWrite, 0);
        _h.Driver.Publish(0);
        Assert.Equal(0u, ProcessOne().Len);
        Assert.Equal(0xff, _h.Status(st));
        _h.AssertReadable();
    }

    [Fact]
    public void An_indirect_descriptor()
    {
        ulong table = _h.Driver.Alloc(48);
        _h.Driver.SetDesc(0, table, 48, Descriptor.FlagIndirect, 0);
        _h.Driver.Publish(0);
        Assert.Equal(0u, ProcessOne().Len);
        _h.AssertReadable();
    }

    [Fact]
    public void Header_too_short()
    {
        ulong st = _h.StatusByte();
        _h.Driver.Push((_h.Header(RequestFlush, 0), 8, false), (st, 1, true));
        Assert.Equal(1u, ProcessOne().Len);
        Assert.Equal(StatusIoErr, _h.Status(st));
        _h.AssertReadable();
    }

    [Fact]
    public void Header_device_writable()
    {
        ulong st = _h.StatusByte();
        _h.Driver.Push((_h.Header(RequestFlush, 0), 16, true), (st, 1, true));
        Assert.Equal(1u, ProcessOne().Len);
        Assert.Equal(StatusIoErr, _h.Status(st));
        _h.AssertReadable();
    }

    [Fact]
    public void Read_into_device_readable_buffer()
    {
        ulong d = _h.Driver.Alloc(512, 0x77);
        var (s, len) = _h.Run(RequestIn, 0, (d, 512, false));
        Assert.Equal(StatusIoErr, s);
        Assert.Equal(1u, len);
        Assert.Equal(0x77, _h.Memory.Read<byte>(d)); // untouched
        _h.AssertReadable();
    }

    [Fact]
    public void Write_from_device_writable_buffer()
    {
        ulong d = _h.Driver.Alloc(512, 0x77);
        Assert.Equal(StatusIoErr, _h.Run(RequestOut, 0, (d, 512, true)).Status);
        Assert.Equal(1, File.ReadAllBytes(_h.FilePath)[0]);
        _h.AssertReadable();
    }

    [Fact]
    public void Mixed_directions_in_data()
    {
        // A readable buffer after a writable one breaks spec 2.6.4.2: the chain is not a request at all, so it is
        // completed with length 0 and nothing (not even a status) is written, as Firecracker does.
        ulong a = _h.Driver.Alloc(512), b = _h.Driver.Alloc(512);
        var r = _h.Run(RequestIn, 0, (a, 512, true), (b, 512, false));
        Assert.Equal(0u, r.Len);
        Assert.Equal(1, _h.Device.Metrics.InvalidReqsCount);
        _h.AssertReadable();
    }

    [Fact]
    public void GET_ID_into_readable_buffer()
    {
        ulong id = _h.Driver.Alloc(20, 0x11);
        Assert.Equal(StatusIoErr, _h.Run(RequestGetId, 0, (id, 20, false)).Status);
        Assert.Equal(0x11, _h.Memory.Read<byte>(id));
    }

    [Fact]
    public void A_bad_type()
    {
        Assert.Equal(StatusUnsupported, _h.Run(0xdead_beef, 0).Status);
        _h.AssertReadable();
    }

    [Fact]
    public void Status_descriptor_not_writable()
    {
        ulong st = _h.StatusByte();
        _h.Driver.Push((_h.Header(RequestFlush, 0), 16, false), (st, 1, false));
        Assert.Equal(0u, ProcessOne().Len);
        Assert.Equal(0xff, _h.Status(st));
        _h.AssertReadable();
    }

    [Fact]
    public void A_missing_status()
    {
        _h.Driver.Push((_h.Header(RequestFlush, 0), 16, false));
        Assert.Equal(0u, ProcessOne().Len);
        Assert.Equal(0, _h.Device.Metrics.FlushCount);
        _h.AssertReadable();
    }

    [Fact]
    public void Zero_length_status()
    {
        ulong st = _h.StatusByte();
        _h.Driver.Push((_h.Header(RequestFlush, 0), 16, false), (st, 0, true));
        Assert.Equal(0u, ProcessOne().Len);
        Assert.Equal(0xff, _h.Status(st));
        _h.AssertReadable();
    }

    [Fact]
    public void Status_is_last_byte_of_longer_status_descriptor()
    {
        ulong st = _h.Driver.Alloc(4, 0xff);
        _h.Driver.Push((_h.Header(RequestFlush, 0), 16, false), (st, 4, true));
        Assert.Equal(1u, ProcessOne().Len);
        Assert.Equal(StatusOk, _h.Memory.Read<byte>(st + 3));
        Assert.Equal(0xff, _h.Memory.Read<byte>(st));
    }

    [Fact]
    public void Avail_idx_jump_stops_the_queue_until_reset()
    {
        _h.Driver.SetAvailIdx(100); // 100 pending on a 16-entry queue
        _h.Process();
        Assert.Equal(0, _h.Driver.UsedIdx);
        Assert.True(_h.Queue.IsFailed);
        Assert.Equal(0, _h.Line.Count);

        // A reset and a fresh setup bring the device back.
        _h.Device.Reset();
        _h.Queue.Reset();
        var drv = new GuestDriver(_h.Memory, 16);
        drv.Configure(_h.Queue);
        Assert.True(_h.Device.Activate(_h.Memory, [_h.Queue], _h.Interrupt, _h.Device.AvailableFeatures & ~VirtioFeatures.RingEventIdx)); // these drivers do not do EVENT_IDX
        ulong hdr = _h.Header(RequestFlush, 0), st = _h.StatusByte();
        drv.Push((hdr, 16, false), (st, 1, true));
        _h.Process();
        Assert.Equal(1, drv.UsedIdx);
        Assert.Equal(StatusOk, _h.Status(st));
    }

    [Fact]
    public void Good_and_bad_requests_in_one_batch()
    {
        ulong r = _h.Driver.Alloc(512), st1 = _h.StatusByte(), st2 = _h.StatusByte();
        _h.Driver.Push((_h.Header(RequestIn, 1), 16, false), (r, 512, true), (st1, 1, true));
        _h.Driver.Publish(99);
        _h.Driver.Push((_h.Header(RequestFlush, 0), 16, false), (st2, 1, true));
        _h.Process();
        Assert.Equal(3, _h.Driver.UsedIdx);
        Assert.Equal(513u, _h.Driver.Used(0).Len);
        Assert.Equal((99u, 0u), _h.Driver.Used(1));
        Assert.Equal(1u, _h.Driver.Used(2).Len);
        Assert.Equal(StatusOk, _h.Status(st1));
        Assert.Equal(StatusOk, _h.Status(st2));
        Assert.Equal(1, _h.Line.Count);
    }
}

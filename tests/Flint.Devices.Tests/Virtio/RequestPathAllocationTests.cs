using Flint.Devices.Tests.Mmds;
using Flint.Devices.Tests.Net;
using Flint.Devices.Tests.Virtio.Net;
using Flint.Devices.Virtio.Net;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Tests.Virtio;

/// <summary>Reading a request once (ChainBuffers, reader/writer, BlockRequest) allocates nothing per request.</summary>
public sealed class RequestPathAllocationTests
{
    [Theory]
    [InlineData(Flint.Devices.Virtio.Block.BlockIoEngine.Sync)]
    [InlineData(Flint.Devices.Virtio.Block.BlockIoEngine.Async)] // submit, reap and complete through io_uring
    public void Block_reads_writes_and_GET_ID_do_not_allocate(Flint.Devices.Virtio.Block.BlockIoEngine engine)
    {
        using var h = new BlockHarness(queueSize: 16, engine: engine);
        long allocated = 0;
        for (int i = 0; i < 60; i++)
        {
            ulong hdr = h.Header(i % 3 == 0 ? RequestIn : i % 3 == 1 ? RequestOut : RequestGetId, (ulong)(i % 8));
            ulong data = h.Driver.Alloc(512), st = h.StatusByte();
            h.Driver.Push((hdr, 16, false), (data, 256, i % 3 != 1), (data + 256, 256, i % 3 != 1), (st, 1, true));
            long before = GC.GetAllocatedBytesForCurrentThread();
            h.Process();
            if (i >= 10) allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(StatusOk, h.Status(st));
        }
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Net_transmit_does_not_allocate()
    {
        using var h = new NetHarness();
        var frame = Frames.ArpRequest(NetHarness.GuestMac, NetnsTap.GuestIpValue, NetnsTap.HostIpValue);
        long allocated = 0;
        for (int i = 0; i < 60; i++)
        {
            ulong hdr = h.Alloc(12), f = h.Alloc((uint)frame.Length);
            h.Memory.Fill(hdr, 12, 0);
            h.Memory.Write(f, frame.AsSpan());
            h.Tx.Push((hdr, 12, false), (f, (uint)frame.Length, false));
            long before = GC.GetAllocatedBytesForCurrentThread();
            h.Device.ProcessQueue(NetConstants.TxQueue);
            if (i >= 10) allocated += GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.Equal(60, h.Device.Metrics.TxCount);
        Assert.Equal(0, allocated);
    }
}

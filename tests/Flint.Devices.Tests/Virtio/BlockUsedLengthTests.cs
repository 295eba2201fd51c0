using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Memory;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Tests.Virtio;

/// <summary>The used length of a read (data + status byte) is a u32: a read larger than that must not wrap it.</summary>
public sealed class BlockUsedLengthTests : IDisposable
{
    private readonly string _path = System.IO.Path.GetTempFileName();
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 32UL << 20)]);

    public void Dispose()
    {
        _mem.Dispose();
        File.Delete(_path);
    }

    [Fact]
    public void Read_of_more_than_4_gi_b_is_refused_not_wrapped()
    {
        // A sparse 5 GiB disk; 254 data descriptors of ~16 MiB, all over the same guest buffer: 4 GiB + 125 KiB.
        using (var f = File.OpenWrite(_path)) f.SetLength(5L << 30);
        const uint segment = 33027 * 512;
        const int segments = 254;
        Assert.True((ulong)segment * segments > uint.MaxValue);
        var driver = new GuestDriver(_mem, VirtioBlock.QueueSize);
        var queue = new VirtQueue(VirtioBlock.QueueSize);
        using var dev = new VirtioBlock(_path);
        driver.Configure(queue);
        Assert.True(dev.Activate(_mem, [queue], new VirtioInterrupt(new CountingInterrupt()),
            dev.AvailableFeatures & ~VirtioFeatures.RingEventIdx));

        ulong h = driver.Alloc(16);
        _mem.Write(h, RequestIn);
        ulong st = driver.Alloc(1, 0xff);
        ulong data = driver.Alloc(segment);
        var bufs = new List<(ulong, uint, bool)> { (h, 16, false) };
        for (int i = 0; i < segments; i++) bufs.Add((data, segment, true));
        bufs.Add((st, 1, true));
        driver.Push(bufs.ToArray());

        dev.ProcessQueue(0);

        Assert.Equal(1, driver.UsedIdx);
        Assert.Equal(StatusIoErr, _mem.Read<byte>(st));
        Assert.Equal(1u, driver.Used(0).Len); // the status byte only
        Assert.Equal(0, dev.Metrics.ReadBytes);
    }
}

using Flint.Devices.Virtio.Block;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// What a transport-state test (a virtio-blk device saved mid-life and restored on a fresh transport, over virtio-mmio
/// or virtio-pci) stands on: 1 MiB of guest memory, a 32-sector backing file whose sector i holds bytes i + 1 (so a
/// read shows which sector it reached), and the devices and transports it made, disposed after the test.
/// </summary>
public abstract class BlockTransportStateFixture : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    protected BlockTransportStateFixture()
    {
        var content = new byte[32 * 512];
        for (int i = 0; i < content.Length; i++) content[i] = (byte)(i / 512 + 1);
        File.WriteAllBytes(BackingFile, content);
    }

    protected string BackingFile { get; } = Path.GetTempFileName();

    protected GuestMemory Mem { get; } = GuestMemory.Create([(0UL, 0x100000UL)]);

    /// <summary>A virtio-blk device over <see cref="BackingFile"/>, and its transport made by <paramref name="transport"/>;
    /// both are disposed with the test (the transport first).</summary>
    protected T NewBlockTransport<T>(Func<VirtioBlock, T> transport) where T : IDisposable
    {
        var blk = new VirtioBlock(BackingFile);
        var t = transport(blk);
        _owned.Add(t);
        _owned.Add(blk);
        return t;
    }

    /// <summary>Queues a read of one sector on <paramref name="drv"/>'s queue (header, 512-byte buffer, status byte);
    /// the caller kicks its transport.</summary>
    protected void PushSectorRead(GuestDriver drv, ulong sector, out ulong buf, out ulong st)
    {
        ulong hdr = drv.Alloc(16);
        buf = drv.Alloc(512);
        st = drv.Alloc(1, 0xff);
        Mem.Write(hdr, 0u);
        Mem.Write(hdr + 8, sector);
        drv.Push((hdr, 16, false), (buf, 512, true), (st, 1, true));
    }

    public void Dispose()
    {
        foreach (var o in _owned) o.Dispose();
        Mem.Dispose();
        File.Delete(BackingFile);
        GC.SuppressFinalize(this);
    }
}

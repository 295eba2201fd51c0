using System.Buffers.Binary;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Fuzz.Targets;

/// <summary>virtio-blk (writeback, so FLUSH is offered) over a 64-sector temp file; one request queue.</summary>
public sealed class BlockTarget : DeviceTarget
{
    public const int Sectors = 64;

    public override string Name => "virtio-block";
    public override string Description => "VirtioBlock (writeback, 64-sector temp file, serial) request queue over guest memory built from the input";

    protected override VirtioDevice CreateDevice()
    {
        string path = Path.Combine(Path.GetTempPath(), $"flint-fuzz-block-{Environment.ProcessId}.img");
        File.WriteAllBytes(path, new byte[Sectors * SectorSize]);
        var dev = new VirtioBlock(path, readOnly: false, serial: "fuzz-serial", writeback: true);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { dev.Dispose(); File.Delete(path); };
        return dev;
    }

    private static byte[] Header(uint type, ulong sector)
    {
        var h = new byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(h, type);
        BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(8), sector);
        return h;
    }

    public override IEnumerable<(string, byte[])> Seeds()
    {
        ulong all = ~0UL;
        var b = new ImageBuilder();
        b.Chain(0, (b.Buffer(Header(RequestIn, 3)), 16, false), (b.Buffer([], 1024), 1024, true), (b.Buffer([0xff]), 1, true));
        b.Chain(0, (b.Buffer(Header(RequestOut, 5)), 16, false), (b.Buffer(new byte[512]), 512, false), (b.Buffer([0xff]), 1, true));
        yield return ("read-write", b.Build(all));

        b = new ImageBuilder();
        b.Chain(0, (b.Buffer(Header(RequestFlush, 0)), 16, false), (b.Buffer([0xff]), 1, true));
        b.Chain(0, (b.Buffer(Header(RequestGetId, 0)), 16, false), (b.Buffer([], IdBytes), IdBytes, true), (b.Buffer([0xff]), 1, true));
        b.Chain(0, (b.Buffer(Header(99, 0)), 16, false), (b.Buffer([0xff]), 1, true));
        yield return ("flush-getid-unsupported", b.Build(all, control: 1));

        b = new ImageBuilder();
        b.Chain(0, (b.Buffer(Header(RequestIn, Sectors - 1)), 16, false), (b.Buffer([], 1024), 1024, true), (b.Buffer([0xff]), 1, true));
        // a read whose data buffer straddles the end of the image region into the next mapping
        b.Chain(0, (b.Buffer(Header(RequestIn, 0)), 16, false), (QueueLayout.ImageSize - 256, 512, true), (b.Buffer([0xff]), 1, true));
        yield return ("past-end-straddle", b.Build(all & ~VirtioFeatures.RingEventIdx));
    }
}

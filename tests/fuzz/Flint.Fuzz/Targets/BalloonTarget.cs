using System.Buffers.Binary;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Balloon;

namespace Flint.Fuzz.Targets;

/// <summary>virtio-balloon with deflate-on-OOM and the statistics queue: inflate, deflate and stats queues.</summary>
public sealed class BalloonTarget : DeviceTarget
{
    public override string Name => "virtio-balloon";
    public override string Description => "VirtioBalloon (1 MiB target, deflate_on_oom, stats every 1 s) inflate/deflate/stats queues over guest memory built from the input";

    protected override VirtioDevice CreateDevice() => new VirtioBalloon(1, deflateOnOom: true, statsPollingIntervalS: 1);

    private static byte[] Pfns(params uint[] pfns)
    {
        var b = new byte[4 * pfns.Length];
        for (int i = 0; i < pfns.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4 * i), pfns[i]);
        return b;
    }

    private static byte[] Stats(params (ushort Tag, ulong Value)[] s)
    {
        var b = new byte[BalloonConstants.StatEntrySize * s.Length];
        for (int i = 0; i < s.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(10 * i), s[i].Tag);
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(10 * i + 2), s[i].Value);
        }
        return b;
    }

    public override IEnumerable<(string, byte[])> Seeds()
    {
        var b = new ImageBuilder();
        var inflate = Pfns(8, 9, 15, 16, 0x100000);
        b.Chain(BalloonConstants.InflateQueue, (b.Buffer(inflate), (uint)inflate.Length, false));
        var deflate = Pfns(9, 15);
        b.Chain(BalloonConstants.DeflateQueue, (b.Buffer(deflate), (uint)deflate.Length, false));
        var stats = Stats((BalloonConstants.StatFreeMemory, 1 << 20), (BalloonConstants.StatTotalMemory, 1 << 24), (77, 5));
        b.Chain(BalloonConstants.StatsQueue, (b.Buffer(stats), (uint)stats.Length, false));
        yield return ("inflate-deflate-stats", b.Build(~0UL, control: 1));
        b = new ImageBuilder();
        var odd = Pfns(3);
        b.Chain(BalloonConstants.InflateQueue, (b.Buffer(odd), 3, false), (b.Buffer(odd), 4, true));
        b.Chain(BalloonConstants.StatsQueue, (b.Buffer(stats), 7, false));
        yield return ("short-and-writable", b.Build(~0UL, control: 4));
    }
}

using System.Buffers.Binary;
using Flint.Devices.Mmds;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Net;

namespace Flint.Fuzz.Targets;

/// <summary>
/// virtio-net over a real tap (created by this process; run.sh puts the target in its own network namespace) with an
/// MMDS stack attached, so guest frames for 169.254.169.254 go through MMDS and its replies come back on the rx
/// queue. After each round the tap's readiness and the MMDS timer handlers run as the event loop would call them.
/// </summary>
public sealed class NetTarget : DeviceTarget
{
    private VirtioNet? _net;
    private string? _unavailable;

    public override string Name => "virtio-net";
    public override string Description => "VirtioNet (tap in a private netns, MMDS V1 attached) rx/tx queues over guest memory built from the input, then the tap and MMDS-timer handlers";

    public override bool IsAvailable(out string? reason)
    {
        if (_net == null && _unavailable == null)
        {
            try { _net = new VirtioNet($"flfz{Environment.ProcessId % 100000000}", FrameBuilder.GuestMac, mmds: new MmdsNetworkStack(MmdsSeedData.Store())); }
            catch (Exception e) { _unavailable = "cannot open a tap: " + e.Message; }
        }
        reason = _unavailable;
        return _unavailable == null;
    }

    protected override VirtioDevice CreateDevice() =>
        IsAvailable(out string? reason) ? _net! : throw new InvalidOperationException(reason);

    protected override void AfterRound(VirtioDevice device)
    {
        var net = (VirtioNet)device;
        net.OnTapEvent(Flint.Sys.Libc.EPOLLIN);
        net.OnMmdsTimer();
    }

    private static byte[] WithVnetHeader(byte[] frame, byte flags = 0, ushort csumStart = 0, ushort csumOffset = 0)
    {
        var b = new byte[NetConstants.VnetHeaderSize + frame.Length];
        b[0] = flags;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(6), csumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), csumOffset);
        frame.CopyTo(b, NetConstants.VnetHeaderSize);
        return b;
    }

    public override IEnumerable<(string, byte[])> Seeds()
    {
        const int Rx = NetConstants.RxQueue, Tx = NetConstants.TxQueue;
        var conv = FrameBuilder.Conversation("GET /latest/meta-data/ HTTP/1.1\r\n\r\n");

        var b = new ImageBuilder();
        for (int i = 0; i < 3; i++) b.Chain(Rx, (b.Buffer([], 1600), 1600, true));
        foreach (var f in conv.Take(2))
        {
            var p = WithVnetHeader(f);
            b.Chain(Tx, (b.Buffer(p), (uint)p.Length, false));
        }
        yield return ("mmds-arp-syn", b.Build(~0UL & ~(1UL << NetConstants.FeatureMrgRxbuf), control: 1));

        b = new ImageBuilder();
        for (int i = 0; i < 4; i++) b.Chain(Rx, (b.Buffer([], 256), 256, true));
        var syn = WithVnetHeader(conv[1], flags: NetConstants.HeaderFlagNeedsCsum, csumStart: 34, csumOffset: 16);
        b.Chain(Tx, (b.Buffer(syn.AsSpan(0, 20)), 20, false), (b.Buffer(syn.AsSpan(20)), (uint)syn.Length - 20, false));
        yield return ("mergeable-split-tx", b.Build(~0UL, control: 2));

        b = new ImageBuilder();
        var other = WithVnetHeader(FrameBuilder.Eth([0x02, 0, 0, 0, 0, 9], 0x86dd, new byte[60]));
        b.Chain(Tx, (b.Buffer(other), (uint)other.Length, false));
        b.Chain(Tx, (b.Buffer([1, 2, 3]), 3, false));
        yield return ("to-tap-and-runt", b.Build(VirtioFeatures.Version1));
    }
}

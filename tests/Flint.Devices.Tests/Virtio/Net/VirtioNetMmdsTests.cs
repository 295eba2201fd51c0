using System.Buffers.Binary;
using Flint.Devices.Mmds;
using Flint.Devices.Tests.Mmds;
using Flint.Devices.Virtio.Net;

namespace Flint.Devices.Tests.Virtio.Net;

[Collection("netns")]
public sealed class VirtioNetMmdsTests
{
    private static (NetHarness H, MmdsNetworkStack S) Make(MmdsVersion v = MmdsVersion.V2, ulong? features = null)
    {
        var store = new MmdsStore();
        store.Put("""{"latest":{"meta-data":{"ami-id":"ami-42"}}}""");
        var s = new MmdsNetworkStack(store, v);
        return (new NetHarness(mmds: s, features: features), s);
    }

    [Fact]
    public void ARP_and_HTTP_through_the_device()
    {
        var (h, s) = Make();
        using var _ = h;
        h.PostRx(64);
        h.Send(Frames.ArpRequest(NetHarness.GuestMac, Frames.GuestIp, Frames.MmdsIp));
        var arp = Assert.Single(h.TakeRx());
        Assert.Equal(MmdsNetworkStack.DefaultMac.ToArray(), arp[22..28]);
        Assert.Equal(0, h.Device.Metrics.TxCount); // never reached the tap

        var c = new GuestTcp(f =>
        {
            h.Send(f);
            if (h.RxQ.PendingCount < 16) h.PostRx(32);
            return h.TakeRx();
        });
        c.Connect();
        var (st, _, token) = c.Request("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n");
        Assert.Equal(200, st);
        Assert.Equal(401, c.Request("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n").Status);
        var (g, _, body) = c.Request($"GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: {token}\r\n\r\n");
        Assert.Equal((200, "ami-42"), (g, body));
        Assert.Equal(0, h.Device.Metrics.TxCount);
        Assert.True(s.Metrics.TxFrames > 4);
    }

    [Fact]
    public void MMDS_retransmits_from_its_timerfd()
    {
        var (h, s) = Make(MmdsVersion.V1);
        using var _ = h;
        h.PostRx(16);
        h.Send(Frames.Tcp(40000, 1000, 0, Frames.Syn, mss: true));
        var synAck = Frames.ParseTcp(Assert.Single(h.TakeRx()));
        Assert.Equal(Frames.Syn | Frames.Ack, synAck!.Flags);
        var timer = Assert.Single(h.Device.EventSources, e => e.Fd != h.Ns.Tap.Fd);

        // The guest never acknowledges: the timer fd turns readable after the timeout and its handler sends it again.
        using var epoll = new Flint.Sys.Epoll();
        epoll.Add(timer.Fd, 0);
        Assert.True(epoll.Wait(new Flint.Sys.EpollEvent[1], 2000) > 0, "retransmission timer never fired");
        timer.OnReady(1);
        var again = Frames.ParseTcp(Assert.Single(h.TakeRx())); // one wake-up: timerfd and stack share the clock
        Assert.Equal((synAck.Flags, synAck.Seq), (again!.Flags, again.Seq));
        Assert.NotEqual(0, s.NextRetransmitMs); // armed again, backed off
    }

    [Fact]
    public void MMDS_frames_wait_for_rx_buffers_and_go_first()
    {
        var (h, _) = Make(MmdsVersion.V1);
        using var __ = h;
        h.Send(Frames.ArpRequest(NetHarness.GuestMac, Frames.GuestIp, Frames.MmdsIp));
        h.Send(Frames.ArpRequest(NetHarness.GuestMac, Frames.GuestIp, 0xac100001)); // to the tap: the kernel answers
        Thread.Sleep(100);
        h.Device.OnTapEvent(1);
        Assert.Empty(h.TakeRx());
        h.PostRx(4);
        h.Device.ProcessQueue(NetConstants.RxQueue);
        var frames = h.TakeRx();
        Assert.True(frames.Count >= 2);
        Assert.Equal(MmdsNetworkStack.DefaultMac.ToArray(), frames[0][6..12]); // MMDS first
    }

    [Fact]
    public void MMDS_frames_count_against_the_rx_rate_limiter()
    {
        var store = new MmdsStore();
        var lim = new FakeLimiter { Budget = 1 };
        using var h = new NetHarness(mmds: new MmdsNetworkStack(store, MmdsVersion.V1), rx: lim);
        h.PostRx(4);
        // As for tap frames, a frame is charged once delivered: the one that overdraws the budget still goes, and
        // the next waits for the limiter's event.
        for (int i = 0; i < 3; i++) h.Send(Frames.ArpRequest(NetHarness.GuestMac, Frames.GuestIp, Frames.MmdsIp));
        Assert.Equal(2, h.TakeRx().Count);
        Assert.True(lim.IsBlocked);
        Assert.True(h.Device.Metrics.RxRateLimiterThrottled >= 1);
        lim.Budget = 10;
        h.Device.OnRateLimiterEvent(rx: true);
        Assert.Single(h.TakeRx());
    }

    [Fact]
    public void Partial_checksum_from_guest_is_accepted()
    {
        var (h, _) = Make(MmdsVersion.V1);
        using var __ = h;
        h.PostRx(4);
        var syn = Frames.Tcp(40000, 1, 0, Frames.Syn, mss: true);
        BinaryPrimitives.WriteUInt16BigEndian(syn.AsSpan(14 + 20 + 16), 0x1234); // what a guest leaves with NEEDS_CSUM
        h.Send(syn, hdrFlags: NetConstants.HeaderFlagNeedsCsum);
        var r = Frames.ParseTcp(Assert.Single(h.TakeRx()));
        Assert.Equal(Frames.Syn | Frames.Ack, r!.Flags);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)] // MRG_RXBUF: frames gathered over several chains, which may be malformed anywhere
    [InlineData(true, true)]  // and EVENT_IDX: notification state kept across all of it
    public void Random_chains_and_frames_never_throw(bool mergeable, bool eventIdx)
    {
        var (h, s) = Make(features: Flint.Devices.Virtio.VirtioFeatures.Version1 | (1UL << NetConstants.FeatureMac)
            | (mergeable ? 1UL << NetConstants.FeatureMrgRxbuf : 0) | (eventIdx ? Flint.Devices.Virtio.VirtioFeatures.RingEventIdx : 0));
        using var _ = h;
        var rnd = new Random(42);
        var templates = new[] { Frames.Tcp(40000, 1, 0, Frames.Syn), Frames.ArpRequest(NetHarness.GuestMac, Frames.GuestIp, Frames.MmdsIp),
            Frames.Tcp(40000, 2, 5, Frames.Ack, "GET / HTTP/1.1\r\n\r\n"u8) };
        ulong scratch = h.Alloc(4096);
        for (int i = 0; i < 3000; i++)
        {
            switch (rnd.Next(4))
            {
                case 0:
                {
                    var f = (byte[])templates[rnd.Next(templates.Length)].Clone();
                    for (int k = rnd.Next(0, 3); k > 0; k--) f[rnd.Next(f.Length)] = (byte)rnd.Next(256);
                    if (rnd.Next(3) == 0) f = f[..rnd.Next(f.Length)];
                    if (f.Length == 0) f = [1];
                    h.Send(f, (byte)rnd.Next(2));
                    break;
                }
                case 1:
                {
                    // Arbitrary descriptors, some pointing anywhere.
                    var bufs = new (ulong, uint, bool)[rnd.Next(1, 4)];
                    for (int k = 0; k < bufs.Length; k++)
                        bufs[k] = (rnd.Next(4) == 0 ? (ulong)rnd.NextInt64() : scratch + (ulong)rnd.Next(4096), (uint)rnd.Next(0, 5000), rnd.Next(2) == 0);
                    (rnd.Next(2) == 0 ? h.Tx : h.Rx).Push(bufs);
                    h.Device.ProcessQueue(rnd.Next(2));
                    break;
                }
                case 2:
                    h.PostRx(rnd.Next(1, 4), (uint)rnd.Next(1, 3000));
                    h.Device.ProcessQueue(NetConstants.RxQueue);
                    break;
                default:
                    h.Device.OnTapEvent(1);
                    break;
            }
            h.Rx.TakeUsed();
            h.Tx.TakeUsed();
        }
        Assert.True(h.Device.Metrics.EventFails == 0);
        Assert.True(s.Metrics.RxCount > 0);
    }
}

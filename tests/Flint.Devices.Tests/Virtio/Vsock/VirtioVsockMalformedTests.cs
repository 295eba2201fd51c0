using System.Text;
using Flint.Devices.Virtio;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

/// <summary>Guest packets that break the rules: each is dropped or answered with RST; nothing throws, nothing stalls.</summary>
public sealed class VirtioVsockMalformedTests : IDisposable
{
    private readonly VsockHarness _h = new();

    public void Dispose() => _h.Dispose();

    private VsockGuest G => _h.Guest;

    /// <summary>The device still serves a real connection after whatever the test threw at it.</summary>
    private void AssertStillWorks(uint port)
    {
        var (host, hp) = _h.OpenHostInitiated(port);
        using var _ = host;
        host.Send("alive"u8.ToArray());
        Assert.Equal("alive", Encoding.ASCII.GetString(_h.GuestReadData(port, 5)));
        G.Send(port, hp, OpRw, "ok"u8.ToArray());
        Assert.Equal("ok", Encoding.ASCII.GetString(VsockHarness.ReadExactly(host, 2)));
        _h.AssertHealthy();
    }

    [Fact]
    public void Short_header_is_dropped()
    {
        var h = VsockGuest.Header(3, HostCid, 1, 2, 0, OpRequest);
        G.SendRaw(h[..20]);
        G.SendRaw(h, headerDescLen: 43);
        G.SendRaw([]);
        G.WaitTxDone();
        Assert.Null(G.RecvNone(100));
        Assert.Equal(3, _h.Device.Metrics.InvalidPackets);
        AssertStillWorks(100);
    }

    [Fact]
    public void Header_split_across_descriptors_is_accepted()
    {
        var h = VsockGuest.Header(3, HostCid, 7100, 5100, 0, OpRequest);
        G.PushChain(1, (h[..20], 20, false), (h[20..], 24, false));
        G.Kick(1);
        var p = G.Recv();
        Assert.Equal(OpRst, p.Op); // nothing listens on 5100: a real answer, so the header was parsed
        Assert.Equal((5100u, 7100u), (p.SrcPort, p.DstPort));
    }

    [Fact]
    public void Len_larger_than_chain_gets_RST_and_kills_the_connection()
    {
        var (host, hp) = _h.OpenHostInitiated(101);
        using var _ = host;
        var h = VsockGuest.Header(3, HostCid, 101, hp, 1000, OpRw);
        G.SendRaw(h, new byte[10]);
        var p = G.RecvWhere(x => x.Op == OpRst);
        Assert.Equal((hp, 101u), (p.SrcPort, p.DstPort));
        Assert.True(VsockHarness.WaitClosed(host));
        // Same for a packet with no connection behind it.
        G.SendRaw(VsockGuest.Header(3, HostCid, 5, 6, 100, OpRw), new byte[10]);
        Assert.Equal(OpRst, G.Recv().Op);
        AssertStillWorks(102);
    }

    [Fact]
    public void Unknown_op_type_and_CIDs_are_refused()
    {
        G.SendRaw(VsockGuest.Header(3, HostCid, 11, 12, 0, 99));
        Assert.Equal((OpRst, 12u, 11u), Tuple(G.Recv()));
        G.SendRaw(VsockGuest.Header(3, HostCid, 11, 13, 0, OpInvalid));
        Assert.Equal((OpRst, 13u, 11u), Tuple(G.Recv()));
        G.SendRaw(VsockGuest.Header(3, HostCid, 11, 14, 0, OpRequest, type: 2)); // SEQPACKET: not offered
        Assert.Equal((OpRst, 14u, 11u), Tuple(G.Recv()));
        G.SendRaw(VsockGuest.Header(3, 7, 11, 15, 0, OpRequest)); // to a CID that is not the host
        Assert.Equal((OpRst, 15u, 11u), Tuple(G.Recv()));
        G.SendRaw(VsockGuest.Header(4, HostCid, 11, 16, 0, OpRequest)); // not from our guest: dropped
        G.SendRaw(VsockGuest.Header(3, HostCid, 11, 17, 0, OpRst)); // RST for nothing: ignored
        G.WaitTxDone();
        Assert.Null(G.RecvNone(100));
        AssertStillWorks(103);
    }

    private static (ushort, uint, uint) Tuple(VsockPacket p) => (p.Op, p.SrcPort, p.DstPort);

    [Fact]
    public void Broken_tx_chains_are_dropped()
    {
        var h = VsockGuest.Header(3, HostCid, 21, 22, 0, OpRequest);
        // Device-writable descriptor in a tx chain.
        G.PushChain(1, (h, 44, true));
        // NEXT pointing outside the queue.
        var head = G.BuildChain(1, (h, 44, false))!.Value;
        G.WriteDesc(1, head, G.Slot(1, head), 44, Descriptor.FlagNext, 200);
        G.PublishHead(1, head);
        // Buffer outside guest memory.
        var head2 = G.BuildChain(1, (h, 44, false))!.Value;
        G.WriteDesc(1, head2, 0xffff_ffff_0000, 44, 0, 0);
        G.PublishHead(1, head2);
        // INDIRECT flag (not negotiated).
        var head3 = G.BuildChain(1, (h, 44, false))!.Value;
        G.WriteDesc(1, head3, G.Slot(1, head3), 44, Descriptor.FlagIndirect, 0);
        G.PublishHead(1, head3);
        G.Kick(1);
        G.WaitTxDone();
        Assert.Null(G.RecvNone(100));
        Assert.Equal(4, _h.Device.Metrics.InvalidPackets);
        AssertStillWorks(104);
    }

    [Fact]
    public void Unusable_rx_buffers_are_returned_empty()
    {
        using var h = new VsockHarness(rxBuffers: 0);
        // A device-readable rx buffer and a too-small one: both come back with length 0.
        h.Guest.PushChain(0, (null, 4096, false));
        h.Guest.PushChain(0, (null, 10, true));
        h.Guest.Send(1, 2, OpRw, [1]); // makes the device want to send an RST
        h.Guest.WaitTxDone();
        var a = h.Guest.Recv(repost: false);
        var b = h.Guest.Recv(repost: false);
        Assert.Equal(0, a.Payload.Length + b.Payload.Length);
        Assert.Equal(2, h.Device.Metrics.RxQueueEventFails);
        h.Guest.PostRx(4);
        h.Guest.Kick(0);
        Assert.Equal(OpRst, h.Guest.Recv().Op); // the RST waited for a real buffer
    }

    [Fact]
    public void Request_reusing_a_live_pair_resets_it()
    {
        using var listener = _h.ListenGuestPort(5200);
        using var host = _h.OpenGuestInitiated(listener, 7200, 5200);
        G.Send(7200, 5200, OpRequest);
        Assert.Equal(OpRst, G.RecvWhere(p => p.DstPort == 7200).Op);
        Assert.True(VsockHarness.WaitClosed(host));
    }

    [Fact]
    public void Response_or_RW_on_wrong_state_resets()
    {
        using var listener = _h.ListenGuestPort(5201);
        using var host = _h.OpenGuestInitiated(listener, 7201, 5201);
        G.Send(7201, 5201, OpResponse); // a guest-initiated connection never expects a RESPONSE from the guest
        Assert.Equal(OpRst, G.RecvWhere(p => p.DstPort == 7201).Op);
        Assert.True(VsockHarness.WaitClosed(host));
        AssertStillWorks(105);
    }
}

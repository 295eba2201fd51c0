using System.Text;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Vsock;
using Flint.Memory;
using Flint.Sys;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

/// <summary>Records what the device hands a backend and serves scripted packets for the guest.</summary>
internal sealed class RecordingBackend : IVsockBackend
{
    public List<VsockHeader> Packets { get; } = [];
    public List<byte[]> Payloads { get; } = [];
    public List<VsockHeader> Malformed { get; } = [];
    public Queue<byte[]> ToGuest { get; } = new();
    public IVsockBackendHost? Host;
    public int Syncs, Resets;
    public bool Disposed;

    public IReadOnlyList<EventSource> EventSources => [];
    public int ConnectionCount => 0;
    public void Attach(IVsockBackendHost host) => Host = host;
    public void Sync() => Syncs++;

    public void OnGuestPacket(in VsockHeader header, ChainReader packet)
    {
        Packets.Add(header);
        var payload = new byte[header.Op == OpRw ? header.Len : 0];
        Assert.True(packet.ReadExact(payload));
        Payloads.Add(payload);
    }

    public void OnMalformedPacket(in VsockHeader header) => Malformed.Add(header);
    public bool HasPendingRx => ToGuest.Count > 0;

    public int FillRx(ChainWriter rx)
    {
        if (!ToGuest.TryDequeue(out var p)) return -1;
        rx.Write(p);
        return p.Length;
    }

    public void OnDeviceReset() => Resets++;
    public void Dispose() => Disposed = true;
}

/// <summary>
/// Passes everything to the real muxer, but first overwrites the guest's header in guest memory with
/// <see cref="Evil"/>: a guest vCPU rewriting its buffer while the device works. Whatever the muxer does must follow
/// the header the device parsed, never the bytes now in memory.
/// </summary>
internal sealed class RewritingBackend(IVsockBackend inner) : IVsockBackend
{
    public Func<VsockHeader, VsockHeader?>? Evil;
    public VsockGuest? Guest; // where the guest's tx buffers are
    public int Rewrites;

    public IReadOnlyList<EventSource> EventSources => inner.EventSources;
    public int ConnectionCount => inner.ConnectionCount;
    public void Attach(IVsockBackendHost host) => inner.Attach(host);
    public void Sync() => inner.Sync();

    public void OnGuestPacket(in VsockHeader header, ChainReader payload)
    {
        if (Evil?.Invoke(header) is { } evil)
        {
            var sent = new byte[HeaderSize];
            header.TryWrite(sent);
            var raw = new byte[HeaderSize];
            evil.TryWrite(raw);
            Assert.Equal(1, Guest!.OverwriteTx(sent, raw));
            Rewrites++;
        }
        inner.OnGuestPacket(header, payload);
    }

    public void OnMalformedPacket(in VsockHeader header) => inner.OnMalformedPacket(header);
    public bool HasPendingRx => inner.HasPendingRx;
    public int FillRx(ChainWriter rx) => inner.FillRx(rx);
    public void OnDeviceReset() => inner.OnDeviceReset();
    public void Dispose() => inner.Dispose();
}

/// <summary>The device against the backend interface: what it parses and hands over, and that it parses once.</summary>
public sealed class VirtioVsockBackendTests : IDisposable
{
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, VsockGuest.MemoryNeeded)]);
    private readonly EventFd[] _doorbells = [new EventFd(), new EventFd(), new EventFd()];
    private readonly RecordingBackend _backend = new();
    private readonly VirtioVsock _dev;
    private readonly VsockGuest _guest;
    private readonly VirtQueue[] _queues = [new VirtQueue(QueueSize), new VirtQueue(QueueSize), new VirtQueue(QueueSize)];

    public VirtioVsockBackendTests()
    {
        _dev = new VirtioVsock(3, _backend);
        _guest = new VsockGuest(_mem, _doorbells);
        for (int i = 0; i < 3; i++) _guest.Configure(_queues[i], i);
        Assert.True(_dev.Activate(_mem, _queues, new VirtioInterrupt(new CountingInterrupt()), _dev.AvailableFeatures));
    }

    public void Dispose()
    {
        _dev.Dispose();
        foreach (var d in _doorbells) d.Dispose();
        _mem.Dispose();
    }

    [Fact]
    public void Attaches_itself_as_the_host()
    {
        Assert.Same(_dev, _backend.Host);
        Assert.Equal(3UL, _backend.Host!.GuestCid);
        Assert.Same(_dev.Metrics, _backend.Host.Metrics);
    }

    [Fact]
    public void Valid_packets_reach_the_backend_parsed()
    {
        _guest.Send(7, 8, OpRw, "payload"u8.ToArray(), bufAlloc: 1234, fwdCnt: 56);
        _guest.Send(7, 8, OpCreditRequest);
        _dev.ProcessQueue(TxQueue);
        Assert.Equal(2, _backend.Packets.Count);
        Assert.Equal(new VsockHeader(3, HostCid, 7, 8, 7, TypeStream, OpRw, 0, 1234, 56), _backend.Packets[0]);
        Assert.Equal("payload", Encoding.ASCII.GetString(_backend.Payloads[0]));
        Assert.Equal(OpCreditRequest, _backend.Packets[1].Op);
        Assert.Equal(2, _guest.ReclaimTx());
        Assert.Equal(2, _dev.Metrics.TxPacketsCount);
        Assert.True(_backend.Syncs > 0);
    }

    [Fact]
    public void Malformed_packets_go_to_the_backend_as_such_and_foreign_ones_nowhere()
    {
        _guest.SendRaw(VsockGuest.Header(3, 7, 1, 2, 0, OpRequest));            // wrong destination: malformed
        _guest.SendRaw(VsockGuest.Header(3, HostCid, 1, 2, 500, OpRw), [1, 2]); // len beyond the chain: malformed
        _guest.SendRaw(VsockGuest.Header(4, HostCid, 1, 2, 0, OpRequest));      // not our guest: dropped
        _guest.SendRaw(VsockGuest.Header(3, HostCid, 1, 2, 0, OpRequest)[..40]); // short header: dropped
        _dev.ProcessQueue(TxQueue);
        Assert.Empty(_backend.Packets);
        Assert.Equal(new (ulong, ushort)[] { (7UL, OpRequest), (HostCid, OpRw) }, _backend.Malformed.Select(h => (h.DstCid, h.Op)));
        Assert.Equal(4, _dev.Metrics.InvalidPackets);
        Assert.Equal(4, _guest.ReclaimTx()); // every chain is returned
    }

    [Fact]
    public void Backend_packets_fill_rx_buffers_and_nothing_is_consumed_without_one()
    {
        _guest.PostRx(4);
        _dev.ProcessQueue(RxQueue);
        Assert.Null(_guest.TryRecv(repost: false)); // nothing to say: the buffers stay the guest's
        var p = new byte[HeaderSize + 3];
        VsockHeader.ToGuest(3, 9, 10, OpRw, 3, 0, 100, 0).TryWrite(p);
        p[HeaderSize] = 0xab;
        _backend.ToGuest.Enqueue(p);
        _backend.ToGuest.Enqueue(p);
        _dev.ProcessQueue(RxQueue);
        var a = _guest.TryRecv(repost: false)!;
        Assert.Equal((OpRw, 9u, 10u, 3u), (a.Op, a.SrcPort, a.DstPort, a.Len));
        Assert.Equal(0xab, a.Payload[0]);
        Assert.NotNull(_guest.TryRecv(repost: false));
        Assert.Null(_guest.TryRecv(repost: false));
        Assert.Equal(2, _dev.Metrics.RxPacketsCount);
    }

    [Fact]
    public void Reset_and_dispose_reach_the_backend()
    {
        _dev.Reset();
        Assert.Equal(1, _backend.Resets);
        _dev.Dispose();
        Assert.True(_backend.Disposed);
        _dev.ProcessQueue(TxQueue); // after dispose: ignored, no throw
    }
}

/// <summary>
/// Parse once: the guest rewrites a packet's header after the device copied it and before the muxer acts on it.
/// What happens must follow the copy.
/// </summary>
public sealed class VirtioVsockParseOnceTests : IDisposable
{
    private readonly RewritingBackend _rewriter;
    private readonly VsockHarness _h;

    public VirtioVsockParseOnceTests()
    {
        RewritingBackend? w = null;
        _h = new VsockHarness(32, false, inner => w = new RewritingBackend(inner));
        _rewriter = w!;
        _rewriter.Guest = _h.Guest;
    }

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Request_rewritten_after_parsing_still_connects_where_it_was_sent()
    {
        using var listener = _h.ListenGuestPort(5400);
        using var decoy = _h.ListenGuestPort(5401);
        decoy.Blocking = false;
        // In memory the REQUEST becomes an RST from another CID to another port, with a huge len.
        _rewriter.Evil = h => h with { Op = OpRst, DstPort = 5401, SrcPort = 1, SrcCid = 4, Len = 60000 };
        var host = _h.OpenGuestInitiated(listener, 7400, 5400);
        using var _ = host;
        Assert.Equal(1, _rewriter.Rewrites);
        Assert.Throws<System.Net.Sockets.SocketException>(() => decoy.Accept());
        Assert.Equal(1, _h.Device.ConnectionCount);
        _h.AssertHealthy();
    }

    [Fact]
    public void RW_rewritten_after_parsing_delivers_exactly_what_was_counted()
    {
        using var listener = _h.ListenGuestPort(5402);
        using var host = _h.OpenGuestInitiated(listener, 7402, 5402);
        // In memory the RW's len becomes 40000 and its op SHUTDOWN(both): neither may take effect.
        _rewriter.Evil = h => h with { Len = 40000, Op = OpShutdown, Flags = ShutdownRcv | ShutdownSend };
        _h.Guest.Send(7402, 5402, OpRw, "hello"u8.ToArray());
        Assert.Equal("hello", Encoding.ASCII.GetString(VsockHarness.ReadExactly(host, 5)));
        _rewriter.Evil = null;
        // The connection is still up both ways, and only 5 bytes were received.
        host.Send("back"u8.ToArray());
        var p = _h.Guest.RecvWhere(x => x.Op == OpRw && x.DstPort == 7402);
        Assert.Equal("back", Encoding.ASCII.GetString(p.Payload));
        Assert.Equal(5, _h.Device.Metrics.TxBytesCount);
        host.ReceiveTimeout = 200;
        Assert.Throws<System.Net.Sockets.SocketException>(() => host.Receive(new byte[16])); // no more bytes, no EOF
        _h.AssertHealthy();
    }
}

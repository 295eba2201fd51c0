using Flint.Devices.Logging;
using System.Text;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Vsock;
using Flint.Memory;
using Flint.Sys;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

/// <summary>
/// A scripted host end: what the connection sends is recorded (up to <see cref="Room"/> bytes are taken, then it
/// answers EAGAIN), reads are served from <see cref="Incoming"/>, then EOF (<see cref="Eof"/>) or EAGAIN.
/// </summary>
internal sealed unsafe class FakeHostStream : IVsockHostStream
{
    public MemoryStream Sent { get; } = new();
    public Queue<byte> Incoming { get; } = new();
    public int Room = int.MaxValue;
    public bool Eof;
    public int SendError, ReadError;
    public int ShutdownWrites;
    public bool Closed;

    public int Fd => Closed ? -1 : 100;

    public nint Send(ReadOnlySpan<byte> data)
    {
        if (SendError != 0) return -SendError;
        int n = Math.Min(Room, data.Length);
        Sent.Write(data[..n]);
        Room -= n;
        return n;
    }

    public nint SendV(IoVec* iov, int count)
    {
        if (SendError != 0) return -SendError;
        nint total = 0;
        for (int i = 0; i < count; i++)
        {
            nint n = Send(new ReadOnlySpan<byte>(iov[i].Base, (int)iov[i].Len));
            total += n;
            if (n < (nint)iov[i].Len) break;
        }
        return total;
    }

    public nint ReadV(IoVec* iov, int count)
    {
        if (ReadError != 0) return -ReadError;
        if (Incoming.Count == 0) return Eof ? 0 : -Libc.EAGAIN;
        nint total = 0;
        for (int i = 0; i < count && Incoming.Count > 0; i++)
        {
            var dst = new Span<byte>(iov[i].Base, (int)iov[i].Len);
            int j = 0;
            while (j < dst.Length && Incoming.Count > 0) dst[j++] = Incoming.Dequeue();
            total += j;
        }
        return total;
    }

    public nint Recv(Span<byte> buffer, bool peek) => -Libc.EAGAIN;

    public void ShutdownWrite() => ShutdownWrites++;

    public void Close() => Closed = true;

    public string SentText => Encoding.ASCII.GetString(Sent.ToArray());
}

/// <summary>
/// The connection state machine on its own: a fake host stream, packets built in real guest memory, no sockets, no
/// event loop. Each test walks one path through the states, hostile guests included.
/// </summary>
public sealed class VsockConnectionTests : IDisposable
{
    private const ulong GuestCid = 3;
    private const uint HostPort = 5000, GuestPort = 7000;
    private const ulong TxAddr = 0x1000, RxAddr = 0x80000;
    private const int RxRoom = 4096;

    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
    private readonly VsockMetrics _metrics = new();
    private readonly DeviceLog _log = new(nameof(VirtioVsock));
    private readonly FakeHostStream _host = new();

    public void Dispose() => _mem.Dispose();

    // ---------------------------------------------------------------- helpers

    private VsockConnection GuestInitiated(uint guestBufAlloc = 65536)
    {
        var req = new VsockHeader(GuestCid, HostCid, GuestPort, HostPort, 0, TypeStream, OpRequest, 0, guestBufAlloc, 0);
        return VsockConnection.ConnectedForGuest(_host, HostPort, GuestPort, req, GuestCid, _metrics, _log);
    }

    private VsockConnection Established(uint guestBufAlloc = 65536)
    {
        var c = GuestInitiated(guestBufAlloc);
        Assert.Equal(OpResponse, Rx(c).Op);
        Assert.Equal(VsockConnState.Established, c.State);
        return c;
    }

    /// <summary>A host-initiated connection whose REQUEST went out.</summary>
    private VsockConnection RequestSent()
    {
        var c = VsockConnection.AcceptedFromHost(_host, GuestCid, _metrics, _log);
        Assert.Equal(VsockConnState.AwaitConnectLine, c.State);
        Assert.Equal(0u, c.WantedEvents & ~Libc.EPOLLIN);
        Assert.True(c.OnConnectLine(FirstEphemeralPort, GuestPort));
        Assert.Equal(VsockConnState.RequestQueued, c.State);
        Assert.True(c.HasRxWork);
        var p = Rx(c, out var effect);
        Assert.Equal((OpRequest, FirstEphemeralPort, GuestPort), (p.Op, p.SrcPort, p.DstPort));
        Assert.Equal(VsockRxEffect.StartKillTimer, effect);
        Assert.Equal(VsockConnState.RequestSent, c.State);
        Assert.True(c.AwaitsGuest);
        return c;
    }

    /// <summary>Puts a guest packet (header + payload) in guest memory and hands it to the connection as one chain.</summary>
    private VsockConnOutcome Tx(VsockConnection c, ushort op, byte[]? payload = null, uint? len = null, uint flags = 0,
        uint bufAlloc = 65536, uint fwdCnt = 0, uint? chainLen = null)
    {
        payload ??= [];
        var h = new VsockHeader(GuestCid, HostCid, GuestPort, c.LocalPort, len ?? (uint)payload.Length, TypeStream, op, flags, bufAlloc, fwdCnt);
        var raw = new byte[HeaderSize];
        h.TryWrite(raw);
        _mem.Write(TxAddr, raw);
        _mem.Write(TxAddr + HeaderSize, payload);
        uint total = chainLen ?? (uint)(HeaderSize + payload.Length);
        var payloadReader = Reader(TxAddr, total);
        payloadReader.Skip(HeaderSize);
        return c.OnGuestPacket(h, payloadReader);
    }

    private VsockPacket Rx(VsockConnection c) => Rx(c, out _);

    private VsockPacket Rx(VsockConnection c, out VsockRxEffect effect)
    {
        int len = TryRx(c, out effect);
        Assert.True(len >= HeaderSize, "the connection had nothing for the guest");
        var bytes = new byte[len];
        _mem.Read(RxAddr, bytes);
        Assert.True(VsockHeader.TryRead(bytes, out var h));
        Assert.Equal((HostCid, GuestCid, TypeStream), (h.SrcCid, h.DstCid, h.Type));
        return new VsockPacket(h.SrcCid, h.DstCid, h.SrcPort, h.DstPort, h.Len, h.Type, h.Op, h.Flags, h.BufAlloc, h.FwdCnt, bytes[HeaderSize..]);
    }

    private int TryRx(VsockConnection c, out VsockRxEffect effect, int room = RxRoom)
    {
        return c.FillRx(Writer(RxAddr, (uint)(HeaderSize + room)), out effect);
    }

    // One guest buffer as the device would see it after ChainBuffers read its chain.
    private readonly IoVec[] _txSeg = GC.AllocateArray<IoVec>(1, pinned: true);
    private readonly IoVec[] _rxSeg = GC.AllocateArray<IoVec>(1, pinned: true);

    private unsafe ChainReader Reader(ulong addr, uint len)
    {
        _txSeg[0] = new IoVec { Base = _mem.TryGetHostPointer(addr, len), Len = len };
        // SAFETY: the array is pinned and outlives the reader (a field of this test instance).
        fixed (IoVec* p = _txSeg) return new ChainReader(p, 1, len);
    }

    private unsafe ChainWriter Writer(ulong addr, uint len)
    {
        _rxSeg[0] = new IoVec { Base = _mem.TryGetHostPointer(addr, len), Len = len };
        // SAFETY: the array is pinned and outlives the writer (a field of this test instance).
        fixed (IoVec* p = _rxSeg) return new ChainWriter(p, 1, len);
    }

    /// <summary>The host writes <paramref name="n"/> bytes (0: just readiness, e.g. with EOF or an error set) and epoll reports it.</summary>
    private void HostWrites(VsockConnection c, int n, byte value = 0x5a)
    {
        for (int i = 0; i < n; i++) _host.Incoming.Enqueue(value);
        // epoll says readable; reading was asked for.
        Assert.Equal(VsockConnOutcome.Keep, c.OnHostEvents(Libc.EPOLLIN, readInterest: true));
    }

    // ---------------------------------------------------------------- handshakes

    [Fact]
    public void Host_initiated_handshake()
    {
        var c = RequestSent();
        Assert.Equal(0u, c.WantedEvents); // nothing to read from the host until the guest answers
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpResponse));
        Assert.Equal(VsockConnState.Established, c.State);
        Assert.Equal($"OK {FirstEphemeralPort}\n", _host.SentText);
        Assert.False(c.AwaitsGuest);
        Assert.Equal(Libc.EPOLLIN, c.WantedEvents);
    }

    [Fact]
    public void Guest_initiated_handshake()
    {
        var c = GuestInitiated();
        Assert.Equal(VsockConnState.ResponseQueued, c.State);
        Assert.True(c.HasRxWork);
        var p = Rx(c, out var effect);
        Assert.Equal((OpResponse, HostPort, GuestPort, ConnBufAlloc), (p.Op, p.SrcPort, p.DstPort, p.BufAlloc));
        Assert.Equal(VsockRxEffect.None, effect);
        Assert.Equal(VsockConnState.Established, c.State);
        Assert.False(c.HasRxWork);
        Assert.Equal(-1, TryRx(c, out _));
    }

    [Fact]
    public void Connect_line_only_in_its_state()
    {
        var c = Established();
        Assert.False(c.OnConnectLine(1, 2));
        Assert.Equal((HostPort, GuestPort), (c.LocalPort, c.PeerPort));
    }

    [Fact]
    public void Response_before_the_request_went_out_resets()
    {
        var c = VsockConnection.AcceptedFromHost(_host, GuestCid, _metrics, _log);
        c.OnConnectLine(FirstEphemeralPort, GuestPort);
        Assert.Equal(VsockConnOutcome.Reset, Tx(c, OpResponse)); // the guest cannot answer a REQUEST it has not seen
        Assert.Equal("", _host.SentText);
    }

    [Fact]
    public void Response_to_a_guest_initiated_connection_resets()
    {
        Assert.Equal(VsockConnOutcome.Reset, Tx(GuestInitiated(), OpResponse));
        Assert.Equal(VsockConnOutcome.Reset, Tx(Established(), OpResponse));
    }

    [Fact]
    public void Failed_OK_line_resets_and_counts()
    {
        var c = RequestSent();
        _host.SendError = 32; // EPIPE: the host client left
        Assert.Equal(VsockConnOutcome.Reset, Tx(c, OpResponse));
        Assert.Equal(1, _metrics.TxWriteFails);
    }

    // ---------------------------------------------------------------- hostile ops

    [Fact]
    public void RST_closes_in_every_live_state()
    {
        Assert.Equal(VsockConnOutcome.Close, Tx(RequestSent(), OpRst));
        Assert.Equal(VsockConnOutcome.Close, Tx(GuestInitiated(), OpRst));
        Assert.Equal(VsockConnOutcome.Close, Tx(Established(), OpRst));
        var closing = HostClosed();
        Assert.Equal(VsockConnOutcome.Close, Tx(closing, OpRst));
    }

    [Fact]
    public void Request_on_a_live_pair_resets()
    {
        Assert.Equal(VsockConnOutcome.Reset, Tx(Established(), OpRequest));
        Assert.Equal(VsockConnOutcome.Reset, Tx(RequestSent(), OpRequest));
    }

    [Theory]
    [InlineData(OpInvalid)]
    [InlineData((ushort)8)]
    [InlineData((ushort)0xffff)]
    public void Unknown_op_resets(ushort op)
    {
        // The device refuses these before a connection sees them; the state machine must not trust that.
        Assert.Equal(VsockConnOutcome.Reset, Tx(Established(), op));
    }

    [Fact]
    public void RW_before_the_handshake_resets()
    {
        Assert.Equal(VsockConnOutcome.Reset, Tx(RequestSent(), OpRw, [1, 2, 3]));
        Assert.Equal(VsockConnOutcome.Reset, Tx(GuestInitiated(), OpRw, [1, 2, 3]));
        Assert.Equal("", _host.SentText);
    }

    [Fact]
    public void RW_is_forwarded()
    {
        var c = Established();
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpRw, "hello"u8.ToArray()));
        Assert.Equal("hello", _host.SentText);
        Assert.Equal((5u, 5u), (c.RecvCnt, c.FwdCnt));
        Assert.Equal(5, _metrics.TxBytesCount);
    }

    [Fact]
    public void RW_len_beyond_the_chain_resets_even_if_the_device_missed_it()
    {
        var c = Established();
        Assert.Equal(VsockConnOutcome.Reset, Tx(c, OpRw, new byte[10], len: 1000));
        Assert.Equal("", _host.SentText);
        Assert.Equal(0u, c.RecvCnt);
        Assert.Equal(1, _metrics.InvalidPackets);
    }

    [Fact]
    public void Guest_overrunning_our_credit_resets()
    {
        var c = Established();
        _host.Room = 0; // the host reader is stalled: everything is buffered
        var chunk = new byte[MaxTxPayload];
        for (uint sent = 0; sent < ConnBufAlloc; sent += MaxTxPayload)
            Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpRw, chunk));
        Assert.Equal((int)ConnBufAlloc, c.TxBuffer.Count);
        Assert.Equal(0u, c.GuestViewOfOurCredit);
        Assert.Equal(VsockConnOutcome.Reset, Tx(c, OpRw, [1])); // one byte past what we advertised
        Assert.Equal((int)ConnBufAlloc, c.TxBuffer.Count);
    }

    [Fact]
    public void Buffered_bytes_drain_on_EPOLLOUT_and_credit_is_updated()
    {
        var c = Established();
        _host.Room = 3;
        Tx(c, OpRw, "abcdefgh"u8.ToArray());
        Assert.Equal(5, c.TxBuffer.Count);
        Assert.Equal(Libc.EPOLLIN | Libc.EPOLLOUT, c.WantedEvents);
        _host.Room = int.MaxValue;
        Assert.Equal(VsockConnOutcome.Keep, c.OnHostEvents(Libc.EPOLLOUT, readInterest: false));
        Assert.Equal("abcdefgh", _host.SentText);
        Assert.Equal(8u, c.FwdCnt);
        Assert.Equal(Libc.EPOLLIN, c.WantedEvents);
        // A credit request from the guest gets our fwd_cnt back.
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpCreditRequest));
        var p = Rx(c);
        Assert.Equal((OpCreditUpdate, 8u), (p.Op, p.FwdCnt));
    }

    [Fact]
    public void Flush_failure_resets()
    {
        var c = Established();
        _host.Room = 0;
        Tx(c, OpRw, [1, 2, 3]);
        _host.SendError = 104;
        Assert.Equal(VsockConnOutcome.Reset, c.OnHostEvents(Libc.EPOLLOUT, readInterest: false));
        Assert.Equal(1, _metrics.TxFlushFails);
    }

    // ---------------------------------------------------------------- shutdown

    [Fact]
    public void Shutdown_both_ways_resets()
    {
        Assert.Equal(VsockConnOutcome.Reset, Tx(Established(), OpShutdown, flags: ShutdownRcv | ShutdownSend));
    }

    [Fact]
    public void Shutdown_receive_stops_reading_the_host()
    {
        var c = Established();
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpShutdown, flags: ShutdownRcv));
        Assert.Equal(VsockConnState.PeerNoRecv, c.State);
        Assert.Equal(0u, c.WantedEvents);
        c.OnHostEvents(Libc.EPOLLIN, readInterest: true);
        Assert.False(c.HasDataWork);
        // The guest may still send.
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpRw, "x"u8.ToArray()));
        Assert.Equal("x", _host.SentText);
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpShutdown, flags: ShutdownRcv)); // said again: nothing new
        Assert.Equal(VsockConnOutcome.Reset, Tx(c, OpShutdown, flags: ShutdownSend)); // now both ways: closed
    }

    [Fact]
    public void Shutdown_send_half_closes_the_host_once_and_refuses_more_data()
    {
        var c = Established();
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpShutdown, flags: ShutdownSend));
        Assert.Equal(VsockConnState.PeerNoSend, c.State);
        Assert.Equal(1, _host.ShutdownWrites);
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpShutdown, flags: ShutdownSend));
        Assert.Equal(1, _host.ShutdownWrites);
        Assert.Equal(Libc.EPOLLIN, c.WantedEvents); // host data still flows to the guest
        Assert.Equal(VsockConnOutcome.Reset, Tx(c, OpRw, [1]));
    }

    [Fact]
    public void Shutdown_send_waits_for_buffered_bytes()
    {
        var c = Established();
        _host.Room = 0;
        Tx(c, OpRw, [1, 2, 3, 4]);
        Tx(c, OpShutdown, flags: ShutdownSend);
        Assert.Equal(0, _host.ShutdownWrites); // the host must get the bytes before EOF
        _host.Room = 2;
        c.OnHostEvents(Libc.EPOLLOUT, readInterest: false);
        Assert.Equal(0, _host.ShutdownWrites);
        _host.Room = 10;
        c.OnHostEvents(Libc.EPOLLOUT, readInterest: false);
        Assert.Equal(1, _host.ShutdownWrites);
        Assert.Equal(4, _host.Sent.Length);
    }

    [Fact]
    public void Shutdown_receive_after_send_resets()
    {
        var c = Established();
        Tx(c, OpShutdown, flags: ShutdownSend);
        Assert.Equal(VsockConnOutcome.Reset, Tx(c, OpShutdown, flags: ShutdownRcv));
    }

    [Fact]
    public void Shutdown_before_the_handshake_resets()
    {
        Assert.Equal(VsockConnOutcome.Reset, Tx(RequestSent(), OpShutdown, flags: ShutdownSend));
        Assert.Equal(VsockConnOutcome.Reset, Tx(GuestInitiated(), OpShutdown, flags: ShutdownRcv));
    }

    [Fact]
    public void Shutdown_without_flags_changes_nothing()
    {
        var c = Established();
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpShutdown, flags: 0));
        Assert.Equal(VsockConnState.Established, c.State);
    }

    // ---------------------------------------------------------------- host -> guest

    private VsockConnection HostClosed()
    {
        var c = Established();
        _host.Eof = true;
        HostWrites(c, 0);
        var p = Rx(c, out var effect);
        Assert.Equal((OpShutdown, ShutdownRcv | ShutdownSend), (p.Op, p.Flags));
        Assert.Equal(VsockRxEffect.StartKillTimer, effect);
        Assert.Equal(VsockConnState.LocalClosed, c.State);
        Assert.True(c.AwaitsGuest);
        return c;
    }

    [Fact]
    public void Host_data_goes_to_the_guest_within_its_credit()
    {
        var c = Established(guestBufAlloc: 100);
        HostWrites(c, 150);
        var p = Rx(c);
        Assert.Equal((OpRw, 100u), (p.Op, p.Len));
        Assert.Equal(100, p.Payload.Length);
        Assert.Equal(0u, c.PeerFreeCredit);
        // Out of credit with data left: one CREDIT_REQUEST, then silence until the guest reports space.
        Assert.Equal(OpCreditRequest, Rx(c).Op);
        Assert.Equal(-1, TryRx(c, out _));
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpCreditUpdate, bufAlloc: 100, fwdCnt: 100));
        var rest = Rx(c);
        Assert.Equal((OpRw, 50u), (rest.Op, rest.Len));
        Assert.Equal(150, _metrics.RxBytesCount);
    }

    [Fact]
    public void A_guest_claiming_more_consumed_than_sent_gets_no_credit()
    {
        var c = Established(guestBufAlloc: 100);
        HostWrites(c, 10);
        Assert.Equal(OpRw, Rx(c).Op); // 10 bytes in flight
        // fwd_cnt 1000 > rx_cnt 10: the unsigned difference wraps; it must read as "no room", never as 4 GiB of room.
        Tx(c, OpCreditUpdate, bufAlloc: 100, fwdCnt: 1000);
        Assert.Equal(0u, c.PeerFreeCredit);
        Tx(c, OpCreditUpdate, bufAlloc: uint.MaxValue, fwdCnt: 11);
        Assert.Equal(0u, c.PeerFreeCredit);
    }

    [Fact]
    public void Host_EOF_sends_shutdown_and_waits_for_the_guest()
    {
        var c = HostClosed();
        Assert.Equal(0u, c.WantedEvents);
        // The guest's data for a gone host is dropped, not an error; its RST ends it.
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpRw, [1, 2]));
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpShutdown, flags: ShutdownSend));
        Assert.Equal(VsockConnOutcome.Reset, Tx(c, OpShutdown, flags: ShutdownRcv | ShutdownSend));
    }

    [Fact]
    public void Host_read_error_sends_RST()
    {
        var c = Established();
        _host.ReadError = 104;
        HostWrites(c, 0);
        var p = Rx(c, out var effect);
        Assert.Equal(OpRst, p.Op);
        Assert.Equal(VsockRxEffect.Closed, effect);
        Assert.Equal(1, _metrics.RxReadFails);
    }

    [Fact]
    public void Header_only_rx_buffer_carries_a_credit_update()
    {
        var c = Established();
        HostWrites(c, 10);
        Assert.Equal(HeaderSize, TryRx(c, out _, room: 0));
        var b = new byte[HeaderSize];
        _mem.Read(RxAddr, b);
        VsockHeader.TryRead(b, out var h);
        Assert.Equal(OpCreditUpdate, h.Op);
    }

    [Fact]
    public void Closed_connection_is_inert()
    {
        var c = Established();
        c.Close();
        Assert.True(_host.Closed);
        Assert.Equal(VsockConnState.Dead, c.State);
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpRw, [1]));
        Assert.Equal(VsockConnOutcome.Keep, Tx(c, OpCreditRequest));
        Assert.False(c.HasRxWork);
        Assert.Equal(-1, TryRx(c, out _));
        Assert.Equal(0u, c.WantedEvents);
        Assert.Equal(0, c.TxBuffer.Count);
    }
}

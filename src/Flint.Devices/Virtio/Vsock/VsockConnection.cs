using Flint.Devices.Logging;
using Flint.Sys;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// Where a connection is in its life. The one source of truth: what the connection owes the guest (a REQUEST or
/// RESPONSE), which directions are still open, and whether it is waiting to be torn down all follow from it.
/// </summary>
internal enum VsockConnState
{
    /// <summary>Host client accepted on uds_path; reading its "CONNECT &lt;port&gt;\n" line. Not in the port table yet.</summary>
    AwaitConnectLine,
    /// <summary>Host-initiated: the guest is owed a REQUEST (waiting for an rx buffer).</summary>
    RequestQueued,
    /// <summary>Host-initiated: REQUEST delivered, waiting for the guest's RESPONSE or RST (or the kill timer).</summary>
    RequestSent,
    /// <summary>Guest-initiated: host socket connected, the guest is owed a RESPONSE.</summary>
    ResponseQueued,
    /// <summary>Data flows both ways.</summary>
    Established,
    /// <summary>The guest sent SHUTDOWN RCV: it takes no more data, so the host socket is not read.</summary>
    PeerNoRecv,
    /// <summary>The guest sent SHUTDOWN SEND: no more RW from it; the host socket's write side is shut once the tx buffer drains.</summary>
    PeerNoSend,
    /// <summary>The host side closed: SHUTDOWN sent to the guest, waiting for its RST (or the kill timer).</summary>
    LocalClosed,
    /// <summary>Gone: host stream closed, out of every table. Stale references skip it.</summary>
    Dead,
}

/// <summary>What the owner of a connection must do after it handled a guest packet or a host event.</summary>
internal enum VsockConnOutcome
{
    /// <summary>Nothing beyond refreshing its epoll interest and rx work.</summary>
    Keep,
    /// <summary>Reset: send the guest an RST for this pair and close the host side.</summary>
    Reset,
    /// <summary>Close the host side; the guest is told nothing (it reset the connection itself).</summary>
    Close,
}

/// <summary>What the owner of a connection must do after it wrote a packet for the guest.</summary>
internal enum VsockRxEffect
{
    None,
    /// <summary>The packet (REQUEST, or SHUTDOWN after host EOF) waits on the guest: start the kill timer.</summary>
    StartKillTimer,
    /// <summary>The packet was an RST (the host socket failed): close the connection, no further RST.</summary>
    Closed,
}

/// <summary>
/// One host-stream / guest-port pair and its state machine: guest packets in (<see cref="OnGuestPacket"/>), host
/// readiness in (<see cref="OnHostEvents"/>), packets for the guest out (<see cref="FillRx"/>). It never touches the
/// port tables, the event loop or timers; its owner (the muxer) acts on the outcome each call returns.
/// <para>All of it runs under the device lock on the event-loop thread. Credit counters are free-running u32 as on
/// the wire, so the arithmetic wraps like the guest's.</para>
/// </summary>
// SAFETY: iovecs are stackalloc'd per call over validated guest buffers, each within its segment's checked length.
internal sealed unsafe class VsockConnection
{
    private readonly VsockMetrics _metrics;
    private readonly DeviceLog _log;
    private readonly ulong _guestCid;

    private VsockConnection(IVsockHostStream stream, bool hostInitiated, VsockConnState state, ulong guestCid, VsockMetrics metrics,
        DeviceLog log)
    {
        _log = log;
        Stream = stream;
        HostInitiated = hostInitiated;
        State = state;
        _guestCid = guestCid;
        _metrics = metrics;
    }

    /// <summary>A host client that connected to uds_path; it must send its CONNECT line first.</summary>
    public static VsockConnection AcceptedFromHost(IVsockHostStream stream, ulong guestCid, VsockMetrics metrics, DeviceLog log) =>
        new(stream, hostInitiated: true, VsockConnState.AwaitConnectLine, guestCid, metrics, log);

    /// <summary>The guest's REQUEST, already connected to uds_path_PORT on the host: owes the guest a RESPONSE.</summary>
    public static VsockConnection ConnectedForGuest(IVsockHostStream stream, uint hostPort, uint guestPort, in VsockHeader request,
        ulong guestCid, VsockMetrics metrics, DeviceLog log) =>
        new(stream, hostInitiated: false, VsockConnState.ResponseQueued, guestCid, metrics, log)
        {
            LocalPort = hostPort,
            PeerPort = guestPort,
            PeerBufAlloc = request.BufAlloc,
            PeerFwdCnt = request.FwdCnt,
        };

    public IVsockHostStream Stream { get; }
    public VsockConnState State { get; private set; }
    /// <summary>Opened by a host client (its local port is an ephemeral one we allocated and must free).</summary>
    public bool HostInitiated { get; }

    /// <summary>Our (host) port: the ephemeral port for host-initiated, the guest's dst_port for guest-initiated.</summary>
    public uint LocalPort { get; private set; }
    /// <summary>The guest's port.</summary>
    public uint PeerPort { get; private set; }

    public ulong Key => MakeKey(LocalPort, PeerPort);

    public static ulong MakeKey(uint local, uint peer) => ((ulong)local << 32) | peer;

    // ------------------------------------------------------------ flow control (not lifecycle: any live state)

    // Guest -> host direction (our receive buffer, advertised as buf_alloc/fwd_cnt).
    /// <summary>Payload bytes received from the guest.</summary>
    public uint RecvCnt { get; private set; }
    /// <summary>Payload bytes written to the host socket.</summary>
    public uint FwdCnt { get; private set; }
    /// <summary>The fwd_cnt carried by the last header we sent the guest.</summary>
    public uint LastFwdCntSent { get; private set; }

    // Host -> guest direction (the guest's receive buffer).
    public uint PeerBufAlloc { get; private set; }
    public uint PeerFwdCnt { get; private set; }
    /// <summary>Payload bytes sent to the guest.</summary>
    public uint RxCnt { get; private set; }

    /// <summary>The host socket may have data we have not read (set on EPOLLIN, cleared on a short read).</summary>
    public bool HostReadable { get; private set; }
    /// <summary>A CREDIT_REQUEST went out because the guest had no room; not repeated until it reports credit.</summary>
    public bool CreditRequested { get; private set; }
    /// <summary>The guest should hear our fwd_cnt (it asked, or its view of our free space got low).</summary>
    public bool CreditUpdateDue { get; private set; }

    /// <summary>Guest bytes the host socket has not taken yet.</summary>
    public VsockTxBuffer TxBuffer { get; } = new((int)ConnBufAlloc);

    /// <summary>Free space in the guest's receive buffer; never trusts a peer that claims more was consumed than sent.</summary>
    public uint PeerFreeCredit
    {
        get
        {
            uint inFlight = unchecked(RxCnt - PeerFwdCnt);
            return inFlight >= PeerBufAlloc ? 0 : PeerBufAlloc - inFlight;
        }
    }

    /// <summary>Our free space as the guest last heard it.</summary>
    public uint GuestViewOfOurCredit
    {
        get
        {
            uint inFlight = unchecked(RecvCnt - LastFwdCntSent);
            return inFlight >= ConnBufAlloc ? 0 : ConnBufAlloc - inFlight;
        }
    }

    // ------------------------------------------------------------ muxer bookkeeping (not read by the state machine)

    /// <summary>epoll interest currently registered (0 = none), and the cached sources for each mask.</summary>
    public uint Registered;
    public EventSource? SrcIn, SrcOut, SrcInOut;
    /// <summary>Queued for the rx pump.</summary>
    public bool InRxList;
    /// <summary>Kill-timer deadline (Environment.TickCount64), 0 when not in the kill queue.</summary>
    public long KillDeadline;
    /// <summary>"CONNECT &lt;port&gt;\n" accumulated across reads (AwaitConnectLine only).</summary>
    public byte[]? Line;
    public int LineLen;

    // ------------------------------------------------------------ derived from State

    private bool CanReadHost => State is VsockConnState.Established or VsockConnState.PeerNoSend;
    private bool CanWriteHost => State is VsockConnState.Established or VsockConnState.PeerNoRecv or VsockConnState.PeerNoSend;

    /// <summary>Data (or EOF) to move to the guest and either credit for it or a CREDIT_REQUEST still to send.</summary>
    public bool HasDataWork => CanReadHost && HostReadable && (PeerFreeCredit > 0 || !CreditRequested);

    /// <summary>Something to put in an rx buffer for this connection.</summary>
    public bool HasRxWork =>
        State is VsockConnState.RequestQueued or VsockConnState.ResponseQueued ||
        (State != VsockConnState.Dead && State != VsockConnState.AwaitConnectLine && CreditUpdateDue) ||
        HasDataWork;

    /// <summary>Waiting on the guest with the kill timer running.</summary>
    public bool AwaitsGuest => State is VsockConnState.RequestSent or VsockConnState.LocalClosed;

    /// <summary>The epoll events this connection can act on now; 0 when it is waiting on the guest.</summary>
    public uint WantedEvents => State switch
    {
        VsockConnState.AwaitConnectLine => Libc.EPOLLIN,
        VsockConnState.Established or VsockConnState.PeerNoSend =>
            (HostReadable ? 0 : Libc.EPOLLIN) | (TxBuffer.Count > 0 ? Libc.EPOLLOUT : 0),
        VsockConnState.PeerNoRecv => TxBuffer.Count > 0 ? Libc.EPOLLOUT : 0,
        _ => 0,
    };

    // ------------------------------------------------------------ transitions

    /// <summary>AwaitConnectLine -&gt; RequestQueued once the host client named the guest port. False in any other state.</summary>
    public bool OnConnectLine(uint localPort, uint guestPort)
    {
        if (State != VsockConnState.AwaitConnectLine) return false;
        LocalPort = localPort;
        PeerPort = guestPort;
        Line = null;
        State = VsockConnState.RequestQueued;
        return true;
    }

    /// <summary>
    /// A packet the guest sent on this pair, already validated by the device (CIDs, type, op range, len within the
    /// chain). <paramref name="payload"/> reads what follows the header in the tx chain: an RW's data.
    /// </summary>
    public VsockConnOutcome OnGuestPacket(in VsockHeader h, ChainReader payload)
    {
        if (State is VsockConnState.Dead or VsockConnState.AwaitConnectLine) return VsockConnOutcome.Keep;
        switch (h.Op)
        {
            case OpRequest: return VsockConnOutcome.Reset; // the guest reused a live pair: both ends start over
            case OpRst: return VsockConnOutcome.Close;
        }

        PeerBufAlloc = h.BufAlloc;
        PeerFwdCnt = h.FwdCnt;
        if (PeerFreeCredit > 0) CreditRequested = false;

        switch (h.Op)
        {
            case OpResponse:
                if (State != VsockConnState.RequestSent) return VsockConnOutcome.Reset;
                if (!SendOk())
                {
                    Interlocked.Increment(ref _metrics.TxWriteFails);
                    _log.Error("vsock: writing the OK line to the host client failed");
                    return VsockConnOutcome.Reset;
                }
                State = VsockConnState.Established;
                return VsockConnOutcome.Keep;
            case OpShutdown:
                return OnShutdown(h.Flags);
            case OpRw:
                if (State == VsockConnState.LocalClosed) return VsockConnOutcome.Keep; // host is gone: the guest gets its RST shortly
                if (State is not (VsockConnState.Established or VsockConnState.PeerNoRecv)) return VsockConnOutcome.Reset;
                return ForwardToHost(payload, h.Len);
            case OpCreditUpdate:
                return VsockConnOutcome.Keep;
            case OpCreditRequest:
                CreditUpdateDue = true;
                return VsockConnOutcome.Keep;
            default:
                return VsockConnOutcome.Reset; // the device filters unknown ops; a defect must not pass one through
        }
    }

    private VsockConnOutcome OnShutdown(uint flags)
    {
        bool rcv = (flags & ShutdownRcv) != 0, send = (flags & ShutdownSend) != 0;
        // Both directions shut is the guest's close: Linux then waits for our RST.
        if (rcv && send) return VsockConnOutcome.Reset;
        if (!rcv && !send) return VsockConnOutcome.Keep;
        switch (State)
        {
            case VsockConnState.LocalClosed:
                return VsockConnOutcome.Keep; // already closing from our side; its RST follows
            case VsockConnState.Established:
                if (rcv) State = VsockConnState.PeerNoRecv;
                else
                {
                    State = VsockConnState.PeerNoSend;
                    if (TxBuffer.Count == 0) Stream.ShutdownWrite();
                }
                return VsockConnOutcome.Keep;
            case VsockConnState.PeerNoRecv:
                return rcv ? VsockConnOutcome.Keep : VsockConnOutcome.Reset; // now both are shut
            case VsockConnState.PeerNoSend:
                return send ? VsockConnOutcome.Keep : VsockConnOutcome.Reset;
            default:
                return VsockConnOutcome.Reset; // SHUTDOWN before the handshake finished
        }
    }

    /// <summary>Writes an RW payload to the host socket, buffering what it will not take.</summary>
    private VsockConnOutcome ForwardToHost(ChainReader payload, uint len)
    {
        if (len == 0) return VsockConnOutcome.Keep;
        // The guest may only send what we advertised: everything received and not yet forwarded sits in the buffer.
        if ((ulong)TxBuffer.Count + len > ConnBufAlloc) return VsockConnOutcome.Reset;
        int segments = payload.SegmentsLeft;
        IoVec* iov = stackalloc IoVec[segments];
        int cnt = payload.NextPieces(len, iov, segments);
        ulong covered = 0;
        for (int i = 0; i < cnt; i++) covered += iov[i].Len;
        if (covered != len)
        {
            // The device checked len against the chain, so this is a defect: do not deliver other than the guest counted.
            Interlocked.Increment(ref _metrics.InvalidPackets);
            return VsockConnOutcome.Reset;
        }
        RecvCnt = unchecked(RecvCnt + len);
        Interlocked.Add(ref _metrics.TxBytesCount, len);
        uint written = 0;
        if (TxBuffer.Count == 0)
        {
            nint r = Stream.SendV(iov, cnt);
            if (r < 0)
            {
                Interlocked.Increment(ref _metrics.TxWriteFails);
                _log.Error("vsock: writing guest data to the host socket failed");
                return VsockConnOutcome.Reset;
            }
            written = (uint)r;
        }
        // What the socket did not take goes to the buffer (the credit check above guarantees it fits).
        uint skip = written;
        for (int i = 0; i < cnt; i++)
        {
            uint l = (uint)iov[i].Len;
            if (skip >= l) { skip -= l; continue; }
            // SAFETY: iov[i] came from ChainReader.NextPieces: validated guest RAM of that length.
            TxBuffer.TryAppend(new ReadOnlySpan<byte>((byte*)iov[i].Base + skip, (int)(l - skip)));
            skip = 0;
        }
        FwdCnt = unchecked(FwdCnt + written);
        MaybeCreditUpdate();
        return VsockConnOutcome.Keep;
    }

    private void MaybeCreditUpdate()
    {
        if (FwdCnt != LastFwdCntSent && GuestViewOfOurCredit < CreditUpdateThreshold) CreditUpdateDue = true;
    }

    private bool SendOk()
    {
        Span<byte> line = stackalloc byte[24];
        if (!System.Text.Unicode.Utf8.TryWrite(line, $"OK {LocalPort}\n", out int n)) return false;
        return Stream.Send(line[..n]) == n;
    }

    /// <summary>
    /// The host socket is ready (<paramref name="events"/> from epoll). Drains the tx buffer on EPOLLOUT, and notes
    /// readable data on EPOLLIN when reading was asked for (<paramref name="readInterest"/>).
    /// </summary>
    public VsockConnOutcome OnHostEvents(uint events, bool readInterest)
    {
        if ((events & (Libc.EPOLLOUT | Libc.EPOLLERR | Libc.EPOLLHUP)) != 0 && CanWriteHost && TxBuffer.Count > 0)
        {
            long r = TxBuffer.FlushTo(Stream);
            if (r < 0)
            {
                Interlocked.Increment(ref _metrics.TxFlushFails);
                _log.Error("vsock: flushing buffered guest data to the host socket failed");
                return VsockConnOutcome.Reset;
            }
            FwdCnt = unchecked(FwdCnt + (uint)r);
            // The guest shut its send side while bytes were still buffered: now they are out, shut the host's.
            if (State == VsockConnState.PeerNoSend && TxBuffer.Count == 0 && r > 0) Stream.ShutdownWrite();
            MaybeCreditUpdate();
        }
        if ((events & (Libc.EPOLLIN | Libc.EPOLLERR | Libc.EPOLLHUP)) != 0 && CanReadHost && readInterest) HostReadable = true;
        return VsockConnOutcome.Keep;
    }

    /// <summary>
    /// Writes this connection's next packet for the guest into <paramref name="rx"/> (a device-writable chain of at
    /// least <see cref="VsockConstants.HeaderSize"/> bytes, at its start). Returns its length, or -1 when there is
    /// nothing to say.
    /// </summary>
    public int FillRx(ChainWriter rx, out VsockRxEffect effect)
    {
        effect = VsockRxEffect.None;
        switch (State)
        {
            case VsockConnState.RequestQueued:
                State = VsockConnState.RequestSent;
                effect = VsockRxEffect.StartKillTimer;
                return WriteControl(rx, OpRequest, 0);
            case VsockConnState.ResponseQueued:
                State = VsockConnState.Established;
                return WriteControl(rx, OpResponse, 0);
            case VsockConnState.Dead or VsockConnState.AwaitConnectLine:
                return -1;
        }
        if (HasDataWork)
        {
            uint credit = PeerFreeCredit;
            if (credit == 0)
            {
                CreditRequested = true;
                return WriteControl(rx, OpCreditRequest, 0);
            }
            int max = (int)Math.Min(Math.Min(credit, (uint)MaxRxPayload), rx.Available - HeaderSize);
            if (max == 0) return WriteControl(rx, OpCreditUpdate, 0); // a header-only buffer: spend it on a credit update so the loop moves on
            var header = rx; // the header goes in front once the payload's length is known (or a control packet instead)
            rx.Skip(HeaderSize);
            int segments = rx.SegmentsLeft;
            IoVec* iov = stackalloc IoVec[segments];
            int cnt = rx.NextPieces((uint)max, iov, segments);
            nint r = Stream.ReadV(iov, cnt);
            rx = header;
            if (r > 0)
            {
                HostReadable = r == max; // a short read drained the socket; epoll says when there is more
                RxCnt = unchecked(RxCnt + (uint)r);
                Interlocked.Add(ref _metrics.RxBytesCount, r);
                WriteHeader(rx, OpRw, (uint)r, 0);
                return HeaderSize + (int)r;
            }
            if (r == 0)
            {
                // Host closed: tell the guest, then wait for its RST (or the kill timer).
                HostReadable = false;
                State = VsockConnState.LocalClosed;
                effect = VsockRxEffect.StartKillTimer;
                return WriteControl(rx, OpShutdown, ShutdownRcv | ShutdownSend);
            }
            if (r != -Libc.EAGAIN)
            {
                Interlocked.Increment(ref _metrics.RxReadFails);
                _log.Error("vsock: reading the host socket failed");
                effect = VsockRxEffect.Closed;
                return WriteControl(rx, OpRst, 0);
            }
            HostReadable = false;
        }
        return CreditUpdateDue ? WriteControl(rx, OpCreditUpdate, 0) : -1;
    }

    private int WriteControl(ChainWriter rx, ushort op, uint flags)
    {
        WriteHeader(rx, op, 0, flags);
        return HeaderSize;
    }

    /// <summary>Writes a header at <paramref name="rx"/>'s position (the start of the rx chain).</summary>
    private void WriteHeader(ChainWriter rx, ushort op, uint len, uint flags)
    {
        Span<byte> h = stackalloc byte[HeaderSize];
        VsockHeader.ToGuest(_guestCid, LocalPort, PeerPort, op, len, flags, ConnBufAlloc, FwdCnt).TryWrite(h);
        rx.Write(h);
        LastFwdCntSent = FwdCnt;
        CreditUpdateDue = false;
    }

    /// <summary>Closes the host stream and drops buffered bytes: the connection is Dead from here on.</summary>
    public void Close()
    {
        Stream.Close();
        TxBuffer.Release();
        Line = null;
        State = VsockConnState.Dead;
    }
}

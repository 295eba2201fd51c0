using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

internal enum VsockConnState
{
    /// <summary>Host client accepted on uds_path; reading its "CONNECT &lt;port&gt;\n" line.</summary>
    AwaitConnectLine,
    /// <summary>Host-initiated: REQUEST queued or sent to the guest, waiting for RESPONSE or RST.</summary>
    RequestSent,
    /// <summary>Guest-initiated: host socket connected, RESPONSE queued for the guest.</summary>
    Responding,
    Established,
    /// <summary>The host side closed: SHUTDOWN sent to the guest, waiting for its RST (or the kill timer).</summary>
    LocalClosed,
    /// <summary>Gone: fd closed, out of every table. Stale references skip it.</summary>
    Dead,
}

/// <summary>
/// One host-socket / guest-port pair. All fields are touched only under the device lock on the event-loop
/// thread. Credit counters are free-running u32 as on the wire, so the arithmetic wraps like the guest's.
/// </summary>
internal sealed class VsockConnection
{
    public VsockConnection(int fd) => Fd = fd;

    public int Fd;
    public VsockConnState State;

    /// <summary>Our (host) port: the ephemeral port for host-initiated, the guest's dst_port for guest-initiated.</summary>
    public uint LocalPort;
    /// <summary>The guest's port.</summary>
    public uint PeerPort;
    public bool HostInitiated;

    // Guest -> host direction (our receive buffer, advertised as buf_alloc/fwd_cnt).
    /// <summary>Payload bytes received from the guest.</summary>
    public uint RecvCnt;
    /// <summary>Payload bytes written to the host socket.</summary>
    public uint FwdCnt;
    /// <summary>The fwd_cnt carried by the last header we sent the guest.</summary>
    public uint LastFwdCntSent;

    // Host -> guest direction (the guest's receive buffer).
    public uint PeerBufAlloc;
    public uint PeerFwdCnt;
    /// <summary>Payload bytes sent to the guest.</summary>
    public uint RxCnt;

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

    // Pending control packets for the guest.
    public bool PendingRequest;
    public bool PendingResponse;
    public bool PendingCreditUpdate;
    /// <summary>A CREDIT_REQUEST went out because the guest had no room; not repeated until it reports credit.</summary>
    public bool CreditRequested;

    /// <summary>The host socket may have data we have not read (set on EPOLLIN, cleared on a short read).</summary>
    public bool HostReadable;
    /// <summary>The guest said it will receive no more (SHUTDOWN RCV): stop reading the host.</summary>
    public bool PeerShutRcv;
    /// <summary>The guest said it will send no more (SHUTDOWN SEND): half-close the host once drained.</summary>
    public bool PeerShutSend;
    public bool HostWriteShut;

    public bool InRxList;
    public bool InKillQueue;
    public long KillDeadline;

    // Guest -> host bytes the socket has not taken yet: a ring, allocated on first need, never above buf_alloc.
    public byte[]? Pending;
    public int PendingHead;
    public int PendingCount;

    // "CONNECT <port>\n" accumulated across reads.
    public byte[]? Line;
    public int LineLen;

    // epoll interest currently registered (0 = not registered), and the cached sources for each mask.
    public uint Registered;
    public Flint.Devices.EventSource? SrcIn, SrcOut, SrcInOut;

    public ulong Key => MakeKey(LocalPort, PeerPort);

    public static ulong MakeKey(uint local, uint peer) => ((ulong)local << 32) | peer;

    public bool HasRxWork =>
        State != VsockConnState.Dead &&
        (PendingRequest || PendingResponse || PendingCreditUpdate || HasDataWork);

    /// <summary>Data (or EOF) to move to the guest and either credit for it or a CREDIT_REQUEST still to send.</summary>
    public bool HasDataWork =>
        State == VsockConnState.Established && HostReadable && !PeerShutRcv && (PeerFreeCredit > 0 || !CreditRequested);
}

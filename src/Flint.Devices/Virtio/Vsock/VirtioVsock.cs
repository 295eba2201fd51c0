using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Flint.Memory;
using Flint.Sys;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// virtio-vsock (spec 5.10) with Firecracker's hybrid host side: guest AF_VSOCK stream sockets map onto host
/// AF_UNIX sockets.
/// <list type="bullet">
/// <item>Host-initiated: a host process connects to <c>uds_path</c> and writes <c>CONNECT &lt;port&gt;\n</c>; we send
/// the guest a REQUEST from an ephemeral host port (&gt;= 2^30); on the guest's RESPONSE we write
/// <c>OK &lt;host port&gt;\n</c> and relay bytes; an RST closes the host socket.</item>
/// <item>Guest-initiated: a REQUEST to host port P connects to <c>uds_path_P</c>; RESPONSE on success, RST otherwise.</item>
/// </list>
/// Data moves directly between guest buffers and sockets (readv/sendmsg on host pointers); only bytes a host socket
/// refuses are copied, into a per-connection ring no larger than the buf_alloc we advertise. Credit is tracked both
/// ways: the guest is never sent more than its advertised free space, and a guest that overruns ours is reset.
/// A host fd stays registered with the event loop only while we can act on it (no rx buffers or no guest credit:
/// EPOLLIN is dropped until that changes), so a stalled guest never turns into a busy loop.
/// <para>Threading: <see cref="ProcessQueue"/> and every fd handler run on the event-loop thread; activation, reset
/// and config come from vCPU threads. One device lock covers all of it. Reset defers closing sockets to the event-loop
/// thread (through an eventfd) because only that thread may touch the registrar.</para>
/// </summary>
public sealed unsafe class VirtioVsock : VirtioDevice, IEventSources, IDisposable
{
    private static readonly ushort[] s_queueSizes = [QueueSize, QueueSize, QueueSize];

    private readonly Lock _lock = new();
    private readonly IEventRegistrar _registrar;
    private readonly int _listenFd;
    private readonly EventFd _kick;
    private readonly TimerFd _timer;
    private readonly Descriptor[] _chain = new Descriptor[QueueSize];
    private readonly Dictionary<ulong, VsockConnection> _conns = new();
    private readonly HashSet<VsockConnection> _awaiting = new();
    private readonly HashSet<uint> _usedEphemeral = new();
    private readonly Queue<VsockConnection> _rxList = new();
    private readonly List<VsockConnection> _killQueue = new();
    private readonly ulong[] _rstRing = new ulong[RstQueueCapacity];
    private int _rstHead, _rstCount;
    private uint _nextEphemeral = FirstEphemeralPort;

    // Captured on activation, cleared on reset, both under _lock: handlers never see half-reset queues.
    private GuestMemory? _mem;
    private VirtQueue? _rxq, _txq;
    private VirtioInterrupt? _irq;

    private bool _sweepNeeded;
    private bool _disposed;

    /// <param name="guestCid">The guest's CID (&gt;= 3), reported in config space and required as src_cid of guest packets.</param>
    /// <param name="udsPath">Host Unix socket to listen on; <c>udsPath_PORT</c> is dialled for guest-initiated connections.</param>
    /// <param name="registrar">The event loop, for per-connection fds (used on the event-loop thread only).</param>
    public VirtioVsock(ulong guestCid, string udsPath, IEventRegistrar registrar)
    {
        ArgumentNullException.ThrowIfNull(udsPath);
        ArgumentNullException.ThrowIfNull(registrar);
        if (guestCid < 3 || guestCid > uint.MaxValue) throw new ArgumentOutOfRangeException(nameof(guestCid), "guest_cid must be in [3, 2^32)");
        GuestCid = guestCid;
        UdsPath = udsPath;
        _registrar = registrar;
        _listenFd = VsockNative.Listen(udsPath);
        try
        {
            _kick = new EventFd();
            _timer = new TimerFd();
        }
        catch
        {
            _kick?.Dispose();
            Libc.close(_listenFd);
            VsockNative.Unlink(udsPath);
            throw;
        }
        EventSources =
        [
            new EventSource(_listenFd, OnListenerReady, Libc.EPOLLIN),
            new EventSource(_kick.Fd, _ => OnKick(), Libc.EPOLLIN),
            new EventSource(_timer.Fd, _ => OnTimer(), Libc.EPOLLIN),
        ];
    }

    public ulong GuestCid { get; }
    public string UdsPath { get; }
    public VsockMetrics Metrics { get; } = new();

    /// <summary>How long a REQUEST waits for the guest's answer, and a host-closed connection for the guest's RST.</summary>
    public TimeSpan ConnectionTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The listening socket, the reset doorbell and the kill timer: register each on the event loop once.</summary>
    public IReadOnlyList<EventSource> EventSources { get; }

    /// <summary>Live connections (handshaking host clients included).</summary>
    public int ConnectionCount { get { lock (_lock) return _conns.Count + _awaiting.Count; } }

    public override uint DeviceType => VirtioDeviceType.Vsock;
    public override ulong AvailableFeatures => VirtioFeatures.Version1;
    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    public override void ReadConfig(ulong offset, Span<byte> data)
    {
        Span<byte> cfg = stackalloc byte[ConfigSize];
        BinaryPrimitives.WriteUInt64LittleEndian(cfg, GuestCid);
        ReadConfigBytes(cfg, offset, data);
    }

    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data) => Interlocked.Increment(ref Metrics.CfgFails);

    protected override void OnActivateFailed() => Interlocked.Increment(ref Metrics.ActivateFails);

    protected override void OnActivated()
    {
        lock (_lock)
        {
            _mem = Memory;
            _rxq = Queues[RxQueue];
            _txq = Queues[TxQueue];
            _irq = Interrupt;
        }
    }

    protected override void OnReset()
    {
        lock (_lock)
        {
            _mem = null;
            _rxq = _txq = null;
            _irq = null;
            if (_disposed) return;
            _sweepNeeded = true;
        }
        try { _kick.Write(1); } catch (SysException) { }
    }

    // ---------------------------------------------------------------- queue entry points

    public override void ProcessQueue(int index)
    {
        lock (_lock)
        {
            if (_disposed) return;
            try
            {
                SweepIfNeeded();
                switch (index)
                {
                    case RxQueue:
                        Interlocked.Increment(ref Metrics.RxQueueEventCount);
                        if (_rxq == null) { Interlocked.Increment(ref Metrics.RxQueueEventFails); return; }
                        Finish(PumpRx(), false);
                        break;
                    case TxQueue:
                        Interlocked.Increment(ref Metrics.TxQueueEventCount);
                        if (_txq == null) { Interlocked.Increment(ref Metrics.TxQueueEventFails); return; }
                        bool tx = ProcessTx();
                        Finish(PumpRx(), tx);
                        break;
                    case EventQueue:
                        // Event buffers are kept for a TRANSPORT_RESET notification; nothing to do on a kick.
                        break;
                    default:
                        Interlocked.Increment(ref Metrics.EvQueueEventFails);
                        break;
                }
            }
            catch (Exception)
            {
                // A defect here must cost a packet, not the VMM.
                Interlocked.Increment(ref index == TxQueue ? ref Metrics.TxQueueEventFails : ref Metrics.RxQueueEventFails);
            }
        }
    }

    /// <summary>One interrupt for everything this entry point put in the used rings.</summary>
    private void Finish(bool rxUsed, bool txUsed)
    {
        var irq = _irq;
        if (irq == null) return;
        if ((rxUsed && _rxq!.NeedsNotification()) | (txUsed && _txq!.NeedsNotification())) irq.SignalUsedQueue();
    }

    // ---------------------------------------------------------------- tx: guest -> host

    private bool ProcessTx()
    {
        var q = _txq!;
        bool used = false;
        while (q.TryPop(out var chain))
        {
            int n = chain.CollectInto(_chain);
            HandleTxPacket(n);
            q.AddUsed(chain.HeadIndex, 0);
            used = true;
        }
        return used;
    }

    private void HandleTxPacket(int n)
    {
        var mem = _mem!;
        if (n <= 0) { Invalid(); return; }
        var d = new ReadOnlySpan<Descriptor>(_chain, 0, n);
        ulong total = 0;
        foreach (ref readonly var x in d)
        {
            if (x.IsWriteOnly) { Invalid(); return; }
            total += x.Len;
        }
        if (total < HeaderSize) { Invalid(); return; }
        Span<byte> h = stackalloc byte[HeaderSize];
        Gather(mem, d, 0, h);
        ulong srcCid = BinaryPrimitives.ReadUInt64LittleEndian(h[OffSrcCid..]);
        ulong dstCid = BinaryPrimitives.ReadUInt64LittleEndian(h[OffDstCid..]);
        uint srcPort = BinaryPrimitives.ReadUInt32LittleEndian(h[OffSrcPort..]);
        uint dstPort = BinaryPrimitives.ReadUInt32LittleEndian(h[OffDstPort..]);
        uint len = BinaryPrimitives.ReadUInt32LittleEndian(h[OffLen..]);
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(h[OffType..]);
        ushort op = BinaryPrimitives.ReadUInt16LittleEndian(h[OffOp..]);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(h[OffFlags..]);
        uint bufAlloc = BinaryPrimitives.ReadUInt32LittleEndian(h[OffBufAlloc..]);
        uint fwdCnt = BinaryPrimitives.ReadUInt32LittleEndian(h[OffFwdCnt..]);
        Interlocked.Increment(ref Metrics.TxPacketsCount);

        // A packet not from our guest cannot be answered sensibly: drop it.
        if (srcCid != GuestCid) { Invalid(); return; }
        _conns.TryGetValue(VsockConnection.MakeKey(dstPort, srcPort), out var conn);
        bool badLen = op == OpRw && (len > total - HeaderSize || len > MaxTxPayload);
        if (dstCid != HostCid || type != TypeStream || badLen || op == OpInvalid || op > OpCreditRequest)
        {
            Invalid();
            if (op == OpRst) { if (conn != null) CloseConn(conn); return; }
            if (conn != null) KillWithRst(conn); else QueueRst(dstPort, srcPort);
            return;
        }

        if (op == OpRequest)
        {
            if (conn != null) KillWithRst(conn); // the guest reused a live pair: both ends start over
            else GuestConnect(srcPort, dstPort, bufAlloc, fwdCnt);
            return;
        }
        if (conn == null)
        {
            if (op != OpRst) QueueRst(dstPort, srcPort);
            return;
        }
        if (op == OpRst)
        {
            CloseConn(conn);
            return;
        }

        conn.PeerBufAlloc = bufAlloc;
        conn.PeerFwdCnt = fwdCnt;
        if (conn.PeerFreeCredit > 0) conn.CreditRequested = false;

        switch (op)
        {
            case OpResponse:
                if (conn.State != VsockConnState.RequestSent || conn.PendingRequest) { KillWithRst(conn); return; }
                if (!SendOk(conn)) { Interlocked.Increment(ref Metrics.TxWriteFails); KillWithRst(conn); return; }
                conn.State = VsockConnState.Established;
                break;
            case OpShutdown:
                if ((flags & (ShutdownRcv | ShutdownSend)) == (ShutdownRcv | ShutdownSend)) { KillWithRst(conn); return; }
                if ((flags & ShutdownRcv) != 0) conn.PeerShutRcv = true;
                if ((flags & ShutdownSend) != 0) conn.PeerShutSend = true;
                MaybeShutHostWrite(conn);
                break;
            case OpRw:
                if (conn.State == VsockConnState.LocalClosed) break; // host is gone: the guest gets its RST shortly
                if (conn.State != VsockConnState.Established || conn.PeerShutSend) { KillWithRst(conn); return; }
                if (!ForwardToHost(conn, mem, d, len)) return;
                break;
            case OpCreditUpdate:
                break;
            case OpCreditRequest:
                conn.PendingCreditUpdate = true;
                break;
        }
        if (conn.State == VsockConnState.Dead) return;
        UpdateInterest(conn);
        if (conn.HasRxWork) EnqueueRx(conn);
    }

    private void Invalid() => Interlocked.Increment(ref Metrics.InvalidPackets);

    /// <summary>Writes an RW payload to the host socket, buffering what it will not take. False when the connection died.</summary>
    private bool ForwardToHost(VsockConnection conn, GuestMemory mem, ReadOnlySpan<Descriptor> d, uint len)
    {
        if (len == 0) return true;
        conn.RecvCnt = unchecked(conn.RecvCnt + len);
        Interlocked.Add(ref Metrics.TxBytesCount, len);
        if ((ulong)conn.PendingCount + len > ConnBufAlloc)
        {
            // The guest ignored the credit we gave it.
            KillWithRst(conn);
            return false;
        }
        uint written = 0;
        if (conn.PendingCount == 0)
        {
            IoVec* iov = stackalloc IoVec[d.Length];
            int cnt = BuildIov(mem, d, HeaderSize, len, iov);
            nint r = VsockNative.SendV(conn.Fd, iov, cnt);
            if (r < 0)
            {
                Interlocked.Increment(ref Metrics.TxWriteFails);
                KillWithRst(conn);
                return false;
            }
            written = (uint)r;
        }
        if (written < len) AppendPending(conn, mem, d, HeaderSize + written, len - written);
        conn.FwdCnt = unchecked(conn.FwdCnt + written);
        MaybeCreditUpdate(conn);
        return true;
    }

    private void MaybeCreditUpdate(VsockConnection conn)
    {
        if (conn.FwdCnt != conn.LastFwdCntSent && conn.GuestViewOfOurCredit < CreditUpdateThreshold)
            conn.PendingCreditUpdate = true;
    }

    private void AppendPending(VsockConnection conn, GuestMemory mem, ReadOnlySpan<Descriptor> d, ulong offset, uint len)
    {
        var ring = conn.Pending ??= new byte[ConnBufAlloc];
        foreach (ref readonly var x in d)
        {
            if (len == 0) break;
            if (offset >= x.Len) { offset -= x.Len; continue; }
            uint take = (uint)Math.Min(x.Len - offset, len);
            byte* p = mem.TryGetHostPointer(x.Addr + offset, take);
            if (p == null) return;
            var src = new ReadOnlySpan<byte>(p, (int)take);
            int tail = (conn.PendingHead + conn.PendingCount) % ring.Length;
            int first = Math.Min(src.Length, ring.Length - tail);
            src[..first].CopyTo(ring.AsSpan(tail));
            src[first..].CopyTo(ring);
            conn.PendingCount += src.Length;
            len -= take;
            offset = 0;
        }
    }

    /// <summary>Drains buffered guest bytes into the host socket (EPOLLOUT).</summary>
    private void FlushPending(VsockConnection conn)
    {
        var ring = conn.Pending;
        if (ring == null) return;
        while (conn.PendingCount > 0)
        {
            int chunk = Math.Min(conn.PendingCount, ring.Length - conn.PendingHead);
            nint r;
            fixed (byte* p = &ring[conn.PendingHead]) r = VsockNative.Send(conn.Fd, p, (nuint)chunk);
            if (r < 0)
            {
                Interlocked.Increment(ref Metrics.TxFlushFails);
                KillWithRst(conn);
                return;
            }
            if (r == 0) break;
            conn.PendingHead = (conn.PendingHead + (int)r) % ring.Length;
            conn.PendingCount -= (int)r;
            conn.FwdCnt = unchecked(conn.FwdCnt + (uint)r);
        }
        if (conn.PendingCount == 0) conn.PendingHead = 0;
        MaybeShutHostWrite(conn);
        MaybeCreditUpdate(conn);
    }

    private void MaybeShutHostWrite(VsockConnection conn)
    {
        if (conn.PeerShutSend && !conn.HostWriteShut && conn.PendingCount == 0 && conn.Fd >= 0)
        {
            VsockNative.shutdown(conn.Fd, VsockNative.SHUT_WR);
            conn.HostWriteShut = true;
        }
    }

    private bool SendOk(VsockConnection conn)
    {
        Span<byte> line = stackalloc byte[24];
        if (!System.Text.Unicode.Utf8.TryWrite(line, $"OK {conn.LocalPort}\n", out int n)) return false;
        fixed (byte* p = line) return VsockNative.Send(conn.Fd, p, (nuint)n) == n;
    }

    private void GuestConnect(uint guestPort, uint hostPort, uint bufAlloc, uint fwdCnt)
    {
        if (_conns.Count + _awaiting.Count >= MaxConnections)
        {
            QueueRst(hostPort, guestPort);
            return;
        }
        int fd = VsockNative.Connect(UdsPath + "_" + hostPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (fd < 0)
        {
            QueueRst(hostPort, guestPort);
            return;
        }
        var conn = NewConnection(fd);
        conn.LocalPort = hostPort;
        conn.PeerPort = guestPort;
        conn.State = VsockConnState.Responding;
        conn.PendingResponse = true;
        conn.PeerBufAlloc = bufAlloc;
        conn.PeerFwdCnt = fwdCnt;
        _conns.Add(conn.Key, conn);
        Interlocked.Increment(ref Metrics.ConnsAdded);
        EnqueueRx(conn);
    }

    // ---------------------------------------------------------------- rx: host -> guest

    private void EnqueueRx(VsockConnection conn)
    {
        if (conn.InRxList || conn.State == VsockConnState.Dead) return;
        conn.InRxList = true;
        _rxList.Enqueue(conn);
    }

    private void QueueRst(uint localPort, uint peerPort)
    {
        if (_rstCount == _rstRing.Length)
        {
            Interlocked.Increment(ref Metrics.KillqResync);
            return;
        }
        _rstRing[(_rstHead + _rstCount) % _rstRing.Length] = VsockConnection.MakeKey(localPort, peerPort);
        _rstCount++;
    }

    /// <summary>
    /// Fills rx buffers while there is something to say: standalone RSTs first, then one packet per connection in
    /// turn. Stops when the guest has no buffers left; what is pending goes out on the next rx kick.
    /// </summary>
    private bool PumpRx()
    {
        var q = _rxq;
        var mem = _mem;
        if (q == null || mem == null) return false;
        bool used = false;
        Span<byte> h = stackalloc byte[HeaderSize];
        while (_rstCount > 0 || _rxList.Count > 0)
        {
            VsockConnection? conn = null;
            if (_rstCount == 0)
            {
                conn = _rxList.Peek();
                if (!conn.HasRxWork)
                {
                    _rxList.Dequeue();
                    conn.InRxList = false;
                    if (conn.State != VsockConnState.Dead) UpdateInterest(conn);
                    continue;
                }
            }
            if (!q.TryPop(out var chain)) break;
            int n = chain.CollectInto(_chain);
            long cap = RxCapacity(n);
            if (cap < HeaderSize)
            {
                // Unusable buffer: hand it back empty rather than hold it forever.
                Interlocked.Increment(ref Metrics.RxQueueEventFails);
                q.AddUsed(chain.HeadIndex, 0);
                used = true;
                continue;
            }
            var d = new ReadOnlySpan<Descriptor>(_chain, 0, n);
            int len;
            if (conn == null)
            {
                ulong key = _rstRing[_rstHead];
                _rstHead = (_rstHead + 1) % _rstRing.Length;
                _rstCount--;
                WriteHeader(h, (uint)(key >> 32), (uint)key, 0, OpRst, 0, 0, 0);
                Scatter(mem, d, 0, h);
                len = HeaderSize;
            }
            else
            {
                len = BuildConnPacket(conn, mem, d, cap, h);
                _rxList.Dequeue();
                conn.InRxList = false;
                if (conn.State != VsockConnState.Dead)
                {
                    UpdateInterest(conn);
                    if (len >= 0 && conn.HasRxWork) EnqueueRx(conn);
                }
                if (len < 0)
                {
                    q.NextAvail--; // nothing to say after all: the buffer stays the guest's
                    continue;
                }
            }
            q.AddUsed(chain.HeadIndex, (uint)len);
            Interlocked.Increment(ref Metrics.RxPacketsCount);
            used = true;
        }
        return used;
    }

    /// <summary>Total writable bytes of an rx chain, or -1 when it is broken or has a device-readable part.</summary>
    private long RxCapacity(int n)
    {
        if (n <= 0) return -1;
        long cap = 0;
        for (int i = 0; i < n; i++)
        {
            if (!_chain[i].IsWriteOnly) return -1;
            cap += _chain[i].Len;
        }
        return cap;
    }

    /// <summary>The next packet for <paramref name="conn"/> written into the chain; its length, or -1 when there is none.</summary>
    private int BuildConnPacket(VsockConnection conn, GuestMemory mem, ReadOnlySpan<Descriptor> d, long cap, Span<byte> h)
    {
        if (conn.PendingRequest)
        {
            conn.PendingRequest = false;
            ConnHeader(h, conn, OpRequest, 0, 0);
            Scatter(mem, d, 0, h);
            ScheduleKill(conn);
            return HeaderSize;
        }
        if (conn.PendingResponse)
        {
            conn.PendingResponse = false;
            conn.State = VsockConnState.Established;
            ConnHeader(h, conn, OpResponse, 0, 0);
            Scatter(mem, d, 0, h);
            return HeaderSize;
        }
        if (conn.HasDataWork)
        {
            uint credit = conn.PeerFreeCredit;
            if (credit == 0)
            {
                conn.CreditRequested = true;
                ConnHeader(h, conn, OpCreditRequest, 0, 0);
                Scatter(mem, d, 0, h);
                return HeaderSize;
            }
            int max = (int)Math.Min(Math.Min(credit, (uint)MaxRxPayload), cap - HeaderSize);
            if (max > 0)
            {
                IoVec* iov = stackalloc IoVec[d.Length];
                int cnt = BuildIov(mem, d, HeaderSize, (uint)max, iov);
                nint r = VsockNative.ReadV(conn.Fd, iov, cnt);
                if (r > 0)
                {
                    conn.HostReadable = r == max; // a short read drained the socket; epoll says when there is more
                    conn.RxCnt = unchecked(conn.RxCnt + (uint)r);
                    Interlocked.Add(ref Metrics.RxBytesCount, r);
                    ConnHeader(h, conn, OpRw, (uint)r, 0);
                    Scatter(mem, d, 0, h);
                    return HeaderSize + (int)r;
                }
                if (r == 0)
                {
                    // Host closed: tell the guest, then wait for its RST (or the kill timer).
                    conn.HostReadable = false;
                    conn.State = VsockConnState.LocalClosed;
                    ConnHeader(h, conn, OpShutdown, 0, ShutdownRcv | ShutdownSend);
                    Scatter(mem, d, 0, h);
                    ScheduleKill(conn);
                    return HeaderSize;
                }
                if (r != -Libc.EAGAIN)
                {
                    Interlocked.Increment(ref Metrics.RxReadFails);
                    ConnHeader(h, conn, OpRst, 0, 0);
                    Scatter(mem, d, 0, h);
                    Interlocked.Increment(ref Metrics.ConnsKilled);
                    CloseConn(conn);
                    return HeaderSize;
                }
                conn.HostReadable = false;
            }
            else
            {
                // A header-only buffer cannot carry data; spend it on a credit update so the loop moves on.
                ConnHeader(h, conn, OpCreditUpdate, 0, 0);
                Scatter(mem, d, 0, h);
                return HeaderSize;
            }
        }
        if (conn.PendingCreditUpdate)
        {
            ConnHeader(h, conn, OpCreditUpdate, 0, 0);
            Scatter(mem, d, 0, h);
            return HeaderSize;
        }
        return -1;
    }

    private void ConnHeader(Span<byte> h, VsockConnection conn, ushort op, uint len, uint flags)
    {
        WriteHeader(h, conn.LocalPort, conn.PeerPort, len, op, flags, ConnBufAlloc, conn.FwdCnt);
        conn.LastFwdCntSent = conn.FwdCnt;
        conn.PendingCreditUpdate = false;
    }

    private void WriteHeader(Span<byte> h, uint srcPort, uint dstPort, uint len, ushort op, uint flags, uint bufAlloc, uint fwdCnt)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(h[OffSrcCid..], HostCid);
        BinaryPrimitives.WriteUInt64LittleEndian(h[OffDstCid..], GuestCid);
        BinaryPrimitives.WriteUInt32LittleEndian(h[OffSrcPort..], srcPort);
        BinaryPrimitives.WriteUInt32LittleEndian(h[OffDstPort..], dstPort);
        BinaryPrimitives.WriteUInt32LittleEndian(h[OffLen..], len);
        BinaryPrimitives.WriteUInt16LittleEndian(h[OffType..], TypeStream);
        BinaryPrimitives.WriteUInt16LittleEndian(h[OffOp..], op);
        BinaryPrimitives.WriteUInt32LittleEndian(h[OffFlags..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h[OffBufAlloc..], bufAlloc);
        BinaryPrimitives.WriteUInt32LittleEndian(h[OffFwdCnt..], fwdCnt);
    }

    // ---------------------------------------------------------------- chain byte-stream helpers

    private static void Gather(GuestMemory mem, ReadOnlySpan<Descriptor> d, ulong offset, Span<byte> dst)
    {
        foreach (ref readonly var x in d)
        {
            if (dst.IsEmpty) return;
            if (offset >= x.Len) { offset -= x.Len; continue; }
            int take = (int)Math.Min(x.Len - offset, (ulong)dst.Length);
            byte* p = mem.TryGetHostPointer(x.Addr + offset, (ulong)take);
            if (p == null) { dst.Clear(); return; }
            new ReadOnlySpan<byte>(p, take).CopyTo(dst);
            dst = dst[take..];
            offset = 0;
        }
    }

    private static void Scatter(GuestMemory mem, ReadOnlySpan<Descriptor> d, ulong offset, ReadOnlySpan<byte> src)
    {
        foreach (ref readonly var x in d)
        {
            if (src.IsEmpty) return;
            if (offset >= x.Len) { offset -= x.Len; continue; }
            int take = (int)Math.Min(x.Len - offset, (ulong)src.Length);
            byte* p = mem.TryGetHostPointer(x.Addr + offset, (ulong)take);
            if (p == null) return;
            src[..take].CopyTo(new Span<byte>(p, take));
            src = src[take..];
            offset = 0;
        }
    }

    /// <summary>iovecs for [offset, offset+len) of the chain; returns how many were filled.</summary>
    private static int BuildIov(GuestMemory mem, ReadOnlySpan<Descriptor> d, ulong offset, uint len, IoVec* iov)
    {
        int n = 0;
        foreach (ref readonly var x in d)
        {
            if (len == 0) break;
            if (offset >= x.Len) { offset -= x.Len; continue; }
            uint take = (uint)Math.Min(x.Len - offset, len);
            byte* p = mem.TryGetHostPointer(x.Addr + offset, take);
            if (p == null) break;
            iov[n].Base = p;
            iov[n].Len = take;
            n++;
            len -= take;
            offset = 0;
        }
        return n;
    }

    // ---------------------------------------------------------------- host side

    private VsockConnection NewConnection(int fd)
    {
        var conn = new VsockConnection(fd);
        Action<uint> handler = ev => OnConnReady(conn, ev);
        conn.SrcIn = new EventSource(fd, handler, Libc.EPOLLIN);
        conn.SrcOut = new EventSource(fd, handler, Libc.EPOLLOUT);
        conn.SrcInOut = new EventSource(fd, handler, Libc.EPOLLIN | Libc.EPOLLOUT);
        return conn;
    }

    /// <summary>Registers exactly the interest the connection can act on now; nothing when it is waiting on the guest.</summary>
    private void UpdateInterest(VsockConnection conn)
    {
        uint want = 0;
        switch (conn.State)
        {
            case VsockConnState.AwaitConnectLine:
                want = Libc.EPOLLIN;
                break;
            case VsockConnState.Established:
                if (!conn.HostReadable && !conn.PeerShutRcv) want |= Libc.EPOLLIN;
                if (conn.PendingCount > 0) want |= Libc.EPOLLOUT;
                break;
        }
        if (want == conn.Registered || conn.Fd < 0) return;
        if (conn.Registered != 0)
        {
            _registrar.Remove(conn.Fd);
            conn.Registered = 0;
        }
        if (want != 0)
        {
            var src = want == Libc.EPOLLIN ? conn.SrcIn : want == Libc.EPOLLOUT ? conn.SrcOut : conn.SrcInOut;
            _registrar.Add(src!);
            conn.Registered = want;
        }
    }

    private void OnListenerReady(uint events)
    {
        lock (_lock)
        {
            if (_disposed) return;
            try
            {
                SweepIfNeeded();
                while (true)
                {
                    int fd = VsockNative.Accept(_listenFd);
                    if (fd < 0)
                    {
                        int e = Libc.Errno;
                        if (e == Libc.EINTR) continue;
                        if (e != Libc.EAGAIN) Interlocked.Increment(ref Metrics.MuxerEventFails);
                        break;
                    }
                    if (_conns.Count + _awaiting.Count >= MaxConnections)
                    {
                        Libc.close(fd);
                        Interlocked.Increment(ref Metrics.MuxerEventFails);
                        continue;
                    }
                    var conn = NewConnection(fd);
                    conn.State = VsockConnState.AwaitConnectLine;
                    conn.HostInitiated = true;
                    _awaiting.Add(conn);
                    UpdateInterest(conn);
                }
            }
            catch (Exception)
            {
                Interlocked.Increment(ref Metrics.MuxerEventFails);
            }
        }
    }

    private void OnConnReady(VsockConnection conn, uint events)
    {
        lock (_lock)
        {
            if (_disposed) return;
            bool rxUsed = false;
            try
            {
                SweepIfNeeded();
                if (conn.State == VsockConnState.Dead) return;
                if (conn.State == VsockConnState.AwaitConnectLine)
                {
                    ReadConnectLine(conn);
                }
                else if (conn.State == VsockConnState.Established)
                {
                    if ((events & (Libc.EPOLLOUT | Libc.EPOLLERR | Libc.EPOLLHUP)) != 0 && conn.PendingCount > 0) FlushPending(conn);
                    if (conn.State == VsockConnState.Established && (events & (Libc.EPOLLIN | Libc.EPOLLERR | Libc.EPOLLHUP)) != 0
                        && (conn.Registered & Libc.EPOLLIN) != 0)
                    {
                        conn.HostReadable = true;
                    }
                    if (conn.HasRxWork) EnqueueRx(conn);
                }
                rxUsed = PumpRx();
                if (conn.State != VsockConnState.Dead) UpdateInterest(conn);
                // ERR/HUP with nothing left to act on: stop listening rather than spin.
                if (conn.State != VsockConnState.Dead && (events & Libc.EPOLLERR) != 0 && conn.Registered != 0 && !conn.HostReadable)
                    KillWithRst(conn);
                Finish(rxUsed || PumpRx(), false);
            }
            catch (Exception)
            {
                Interlocked.Increment(ref Metrics.ConnEventFails);
            }
        }
    }

    /// <summary>Reads "CONNECT &lt;port&gt;\n" without consuming anything past the newline (data may follow it at once).</summary>
    private void ReadConnectLine(VsockConnection conn)
    {
        var line = conn.Line ??= new byte[MaxConnectLine];
        int room = MaxConnectLine - conn.LineLen;
        Span<byte> peek = stackalloc byte[MaxConnectLine];
        nint n;
        fixed (byte* p = peek) n = VsockNative.Recv(conn.Fd, p, (nuint)room, VsockNative.MSG_PEEK);
        if (n == -Libc.EAGAIN) return;
        if (n <= 0) { CloseConn(conn); return; }
        int nl = peek[..(int)n].IndexOf((byte)'\n');
        int take = nl >= 0 ? nl + 1 : (int)n;
        nint got;
        fixed (byte* p = &line[conn.LineLen]) got = VsockNative.Recv(conn.Fd, p, (nuint)take, 0);
        if (got != take) { CloseConn(conn); return; }
        conn.LineLen += take;
        if (nl < 0)
        {
            if (conn.LineLen >= MaxConnectLine) CloseConn(conn);
            return;
        }
        if (!TryParseConnect(line.AsSpan(0, conn.LineLen - 1), out uint port))
        {
            CloseConn(conn);
            return;
        }
        uint local = AllocateEphemeralPort();
        if (local == 0) { CloseConn(conn); return; }
        _awaiting.Remove(conn);
        conn.LocalPort = local;
        conn.PeerPort = port;
        conn.State = VsockConnState.RequestSent;
        conn.PendingRequest = true;
        _usedEphemeral.Add(local);
        _conns.Add(conn.Key, conn);
        Interlocked.Increment(ref Metrics.ConnsAdded);
        UpdateInterest(conn); // nothing to read until the guest answers
        EnqueueRx(conn);
    }

    internal static bool TryParseConnect(ReadOnlySpan<byte> line, out uint port)
    {
        port = 0;
        if (line.Length > 0 && line[^1] == (byte)'\r') line = line[..^1];
        ReadOnlySpan<byte> prefix = "CONNECT "u8;
        if (!line.StartsWith(prefix)) return false;
        var digits = line[prefix.Length..];
        if (digits.IsEmpty || digits.Length > 10) return false;
        ulong v = 0;
        foreach (byte b in digits)
        {
            if (b < (byte)'0' || b > (byte)'9') return false;
            v = v * 10 + (uint)(b - '0');
        }
        if (v > uint.MaxValue) return false;
        port = (uint)v;
        return true;
    }

    private uint AllocateEphemeralPort()
    {
        for (int i = 0; i <= MaxConnections; i++)
        {
            uint p = _nextEphemeral;
            _nextEphemeral = p == uint.MaxValue ? FirstEphemeralPort : p + 1;
            if (!_usedEphemeral.Contains(p)) return p;
        }
        return 0;
    }

    // ---------------------------------------------------------------- teardown

    /// <summary>Resets the guest side of the connection and closes the host side.</summary>
    private void KillWithRst(VsockConnection conn)
    {
        if (conn.State == VsockConnState.Dead) return;
        if (conn.State != VsockConnState.AwaitConnectLine) QueueRst(conn.LocalPort, conn.PeerPort);
        Interlocked.Increment(ref Metrics.ConnsKilled);
        CloseConn(conn);
    }

    /// <summary>Closes the host socket and forgets the connection; nothing is sent to the guest.</summary>
    private void CloseConn(VsockConnection conn)
    {
        if (conn.State == VsockConnState.Dead) return;
        if (conn.Registered != 0)
        {
            try { _registrar.Remove(conn.Fd); } catch (Exception) { }
            conn.Registered = 0;
        }
        if (conn.Fd >= 0) Libc.close(conn.Fd);
        conn.Fd = -1;
        if (conn.State == VsockConnState.AwaitConnectLine) _awaiting.Remove(conn);
        else
        {
            if (_conns.TryGetValue(conn.Key, out var c) && c == conn) _conns.Remove(conn.Key);
            if (conn.HostInitiated) _usedEphemeral.Remove(conn.LocalPort);
        }
        conn.State = VsockConnState.Dead;
        conn.Pending = null;
        Interlocked.Increment(ref Metrics.ConnsRemoved);
    }

    private void ScheduleKill(VsockConnection conn)
    {
        conn.KillDeadline = Environment.TickCount64 + (long)ConnectionTimeout.TotalMilliseconds;
        if (!conn.InKillQueue)
        {
            conn.InKillQueue = true;
            _killQueue.Add(conn);
        }
        ArmTimer();
    }

    private void ArmTimer()
    {
        long earliest = long.MaxValue;
        foreach (var c in _killQueue) earliest = Math.Min(earliest, c.KillDeadline);
        if (earliest == long.MaxValue) { _timer.Arm(TimeSpan.Zero); return; }
        long ms = Math.Max(1, earliest - Environment.TickCount64);
        _timer.Arm(TimeSpan.FromMilliseconds(ms));
    }

    private void OnTimer()
    {
        lock (_lock)
        {
            if (_disposed) return;
            try
            {
                _timer.Read();
                SweepIfNeeded();
                long now = Environment.TickCount64;
                for (int i = _killQueue.Count - 1; i >= 0; i--)
                {
                    var c = _killQueue[i];
                    bool waiting = c.State is VsockConnState.RequestSent or VsockConnState.LocalClosed;
                    if (waiting && c.KillDeadline > now) continue;
                    _killQueue.RemoveAt(i);
                    c.InKillQueue = false;
                    if (waiting) KillWithRst(c);
                }
                if (_killQueue.Count > 0) ArmTimer();
                Finish(PumpRx(), false);
            }
            catch (Exception)
            {
                Interlocked.Increment(ref Metrics.MuxerEventFails);
            }
        }
    }

    private void OnKick()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _kick.Read();
            try { SweepIfNeeded(); }
            catch (Exception) { Interlocked.Increment(ref Metrics.MuxerEventFails); }
        }
    }

    /// <summary>After a device reset: every connection is gone for the guest, so close the host ends too.</summary>
    private void SweepIfNeeded()
    {
        if (!_sweepNeeded) return;
        _sweepNeeded = false;
        CloseAll(useRegistrar: true);
        try { _timer.Arm(TimeSpan.Zero); } catch (SysException) { }
    }

    private void CloseAll(bool useRegistrar)
    {
        var all = new List<VsockConnection>(_conns.Values);
        all.AddRange(_awaiting);
        foreach (var c in all)
        {
            if (!useRegistrar) c.Registered = 0; // the loop is gone or going: closing the fd drops it from epoll
            CloseConn(c);
        }
        _conns.Clear();
        _awaiting.Clear();
        _usedEphemeral.Clear();
        _rxList.Clear();
        foreach (var c in _killQueue) c.InKillQueue = false;
        _killQueue.Clear();
        _rstHead = _rstCount = 0;
    }

    /// <summary>
    /// Closes every socket, the listener and its file. Call once the event loop no longer dispatches this device's
    /// fds (or from the event-loop thread): the registrar is not called, closing an fd removes it from epoll.
    /// </summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            CloseAll(useRegistrar: false);
            Libc.close(_listenFd);
            VsockNative.Unlink(UdsPath);
            _kick.Dispose();
            _timer.Dispose();
        }
    }
}

using Flint.Sys;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// Firecracker's hybrid vsock backend: guest AF_VSOCK stream connections map onto host AF_UNIX sockets.
/// <list type="bullet">
/// <item>Host-initiated: a host process connects to <c>uds_path</c> and writes <c>CONNECT &lt;port&gt;\n</c>; we send
/// the guest a REQUEST from an ephemeral host port (&gt;= 2^30); on the guest's RESPONSE we write
/// <c>OK &lt;host port&gt;\n</c> and relay bytes; an RST closes the host socket.</item>
/// <item>Guest-initiated: a REQUEST to host port P connects to <c>uds_path_P</c>; RESPONSE on success, RST otherwise.</item>
/// </list>
/// The muxer owns the port table, the listener, the event-loop registrations and the queues of work for the guest
/// (standalone RSTs, connections with something to say, connections on the kill timer); each connection's state
/// machine decides what a packet or host event means for it. A host fd stays registered only while its connection
/// can act on it (no rx buffers or no guest credit: EPOLLIN is dropped until that changes), so a stalled guest never
/// turns into a busy loop.
/// <para>A device reset arrives on a vCPU thread; only the event-loop thread may touch the registrar, so closing the
/// sockets is deferred to it through an eventfd.</para>
/// </summary>
internal sealed class VsockMuxer : IVsockBackend
{
    private readonly IEventRegistrar _registrar;
    private readonly int _listenFd;
    private readonly EventFd _kick;
    private readonly VsockKillQueue _kills;
    private readonly Dictionary<ulong, VsockConnection> _conns = new();
    private readonly HashSet<VsockConnection> _awaiting = new();
    private readonly HashSet<uint> _usedEphemeral = new();
    private readonly Queue<VsockConnection> _rxList = new();
    private readonly VsockRstQueue _rsts = new(RstQueueCapacity);
    private readonly Action<VsockConnection> _expire;
    private uint _nextEphemeral = FirstEphemeralPort;

    /// <summary>The next host-side port to try for a host-initiated connection (Firecracker's local_port_last, plus one).</summary>
    internal uint NextEphemeralPort
    {
        get => _nextEphemeral;
        set => _nextEphemeral = value;
    }
    private IVsockBackendHost _host = null!;
    private bool _sweepNeeded;
    private bool _disposed;

    /// <param name="udsPath">Host Unix socket to listen on; <c>udsPath_PORT</c> is dialled for guest-initiated connections.</param>
    /// <param name="registrar">The event loop, for per-connection fds (used on the event-loop thread only).</param>
    public VsockMuxer(string udsPath, IEventRegistrar registrar)
        : this(udsPath, UnixSockets.Listen(udsPath), registrar)
    {
    }

    /// <param name="listener">A socket bound when the device was configured (PUT /vsock); the muxer owns it from now on.</param>
    /// <param name="registrar">The event loop, for per-connection fds (used on the event-loop thread only).</param>
    public VsockMuxer(VsockListener listener, IEventRegistrar registrar)
        : this(listener.Path, listener.Release(), registrar)
    {
    }

    private VsockMuxer(string udsPath, int listenFd, IEventRegistrar registrar)
    {
        UdsPath = udsPath;
        _registrar = registrar;
        _expire = KillWithRst;
        _listenFd = listenFd;
        try
        {
            _kick = new EventFd();
            _kills = new VsockKillQueue();
        }
        catch
        {
            _kick?.Dispose();
            Libc.close(_listenFd);
            UnixSockets.Unlink(udsPath);
            throw;
        }
        EventSources =
        [
            new EventSource(_listenFd, OnListenerReady, Libc.EPOLLIN),
            new EventSource(_kick.Fd, _ => OnKick(), Libc.EPOLLIN),
            new EventSource(_kills.Fd, _ => OnTimer(), Libc.EPOLLIN),
        ];
    }

    public string UdsPath { get; }

    /// <summary>The listening socket, the reset doorbell and the kill timer.</summary>
    public IReadOnlyList<EventSource> EventSources { get; }

    /// <summary>How long a REQUEST waits for the guest's answer, and a host-closed connection for the guest's RST.</summary>
    public TimeSpan ConnectionTimeout
    {
        get => _kills.Timeout;
        set => _kills.Timeout = value;
    }

    public int ConnectionCount => _conns.Count + _awaiting.Count;

    public bool HasPendingRx => _rsts.Count > 0 || _rxList.Count > 0;

    private VsockMetrics Metrics => _host.Metrics;

    public void Attach(IVsockBackendHost host) => _host = host;

    public void Sync() => SweepIfNeeded();

    // ---------------------------------------------------------------- guest -> host

    public void OnGuestPacket(in VsockHeader h, ChainReader payload)
    {
        _conns.TryGetValue(h.ConnectionKey, out var conn);
        if (conn == null)
        {
            if (h.Op == OpRequest) GuestConnect(h);
            else if (h.Op != OpRst) QueueRst(h.DstPort, h.SrcPort); // nothing to reset for an RST
            return;
        }
        Apply(conn, conn.OnGuestPacket(h, payload));
    }

    public void OnMalformedPacket(in VsockHeader h)
    {
        _conns.TryGetValue(h.ConnectionKey, out var conn);
        if (h.Op == OpRst)
        {
            if (conn != null) CloseConn(conn);
            return;
        }
        if (conn != null) KillWithRst(conn);
        else QueueRst(h.DstPort, h.SrcPort);
    }

    private void Apply(VsockConnection conn, VsockConnOutcome outcome)
    {
        switch (outcome)
        {
            case VsockConnOutcome.Reset: KillWithRst(conn); return;
            case VsockConnOutcome.Close: CloseConn(conn); return;
        }
        if (conn.State == VsockConnState.Dead) return;
        UpdateInterest(conn);
        if (conn.HasRxWork) EnqueueRx(conn);
    }

    private void GuestConnect(in VsockHeader request)
    {
        if (ConnectionCount >= MaxConnections)
        {
            QueueRst(request.DstPort, request.SrcPort);
            return;
        }
        int fd = UnixSockets.Connect(UdsPath + "_" + request.DstPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (fd < 0)
        {
            QueueRst(request.DstPort, request.SrcPort);
            return;
        }
        var conn = VsockConnection.ConnectedForGuest(new UnixHostStream(fd), request.DstPort, request.SrcPort, request, _host.GuestCid, Metrics, _host.Log);
        AddEventSources(conn);
        _conns.Add(conn.Key, conn);
        Interlocked.Increment(ref Metrics.ConnsAdded);
        EnqueueRx(conn);
    }

    // ---------------------------------------------------------------- host -> guest

    private void EnqueueRx(VsockConnection conn)
    {
        if (conn.InRxList || conn.State == VsockConnState.Dead) return;
        conn.InRxList = true;
        _rxList.Enqueue(conn);
    }

    private void QueueRst(uint localPort, uint peerPort)
    {
        if (!_rsts.TryEnqueue(localPort, peerPort)) Interlocked.Increment(ref Metrics.KillqResync);
    }

    /// <summary>Standalone RSTs first, then one packet per connection in turn.</summary>
    public int FillRx(ChainWriter rx)
    {
        while (true)
        {
            if (_rsts.TryDequeue(out uint local, out uint peer))
            {
                Span<byte> h = stackalloc byte[HeaderSize];
                VsockHeader.ToGuest(_host.GuestCid, local, peer, OpRst, 0, 0, 0, 0).TryWrite(h);
                rx.Write(h);
                return HeaderSize;
            }
            if (_rxList.Count == 0) return -1;
            var conn = _rxList.Dequeue();
            conn.InRxList = false;
            if (!conn.HasRxWork)
            {
                if (conn.State != VsockConnState.Dead) UpdateInterest(conn);
                continue;
            }
            int len = conn.FillRx(rx, out var effect);
            switch (effect)
            {
                case VsockRxEffect.StartKillTimer:
                    _kills.Schedule(conn);
                    break;
                case VsockRxEffect.Closed:
                    Interlocked.Increment(ref Metrics.ConnsKilled);
                    CloseConn(conn);
                    break;
            }
            if (conn.State != VsockConnState.Dead)
            {
                UpdateInterest(conn);
                if (len >= 0 && conn.HasRxWork) EnqueueRx(conn);
            }
            if (len >= 0) return len;
        }
    }

    // ---------------------------------------------------------------- host side

    private void AddEventSources(VsockConnection conn)
    {
        int fd = conn.Stream.Fd;
        Action<uint> handler = ev => OnConnReady(conn, ev);
        conn.SrcIn = new EventSource(fd, handler, Libc.EPOLLIN);
        conn.SrcOut = new EventSource(fd, handler, Libc.EPOLLOUT);
        conn.SrcInOut = new EventSource(fd, handler, Libc.EPOLLIN | Libc.EPOLLOUT);
    }

    /// <summary>Registers exactly the interest the connection can act on now; nothing when it is waiting on the guest.</summary>
    private void UpdateInterest(VsockConnection conn)
    {
        uint want = conn.WantedEvents;
        int fd = conn.Stream.Fd;
        if (want == conn.Registered || fd < 0) return;
        if (conn.Registered != 0)
        {
            _registrar.Remove(fd);
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
        lock (_host.SyncRoot)
        {
            if (_disposed) return;
            try
            {
                SweepIfNeeded();
                while (true)
                {
                    int fd = UnixSockets.Accept(_listenFd);
                    if (fd < 0)
                    {
                        int e = Libc.Errno;
                        if (e == Libc.EINTR) continue;
                        if (e != Libc.EAGAIN) Fail(ref Metrics.MuxerEventFails, "vsock: accept on uds_path failed");
                        break;
                    }
                    if (ConnectionCount >= MaxConnections)
                    {
                        Libc.close(fd);
                        Fail(ref Metrics.MuxerEventFails, "vsock: host connection refused, connection limit reached");
                        continue;
                    }
                    var conn = VsockConnection.AcceptedFromHost(new UnixHostStream(fd), _host.GuestCid, Metrics, _host.Log);
                    AddEventSources(conn);
                    _awaiting.Add(conn);
                    UpdateInterest(conn);
                }
            }
            catch (Exception)
            {
                Fail(ref Metrics.MuxerEventFails, "vsock: listener handler failed");
            }
        }
    }

    private void OnConnReady(VsockConnection conn, uint events)
    {
        lock (_host.SyncRoot)
        {
            if (_disposed) return;
            try
            {
                SweepIfNeeded();
                if (conn.State == VsockConnState.Dead) return;
                if (conn.State == VsockConnState.AwaitConnectLine)
                {
                    ReadConnectLine(conn);
                }
                else
                {
                    var outcome = conn.OnHostEvents(events, (conn.Registered & Libc.EPOLLIN) != 0);
                    if (outcome == VsockConnOutcome.Reset) KillWithRst(conn);
                    else if (conn.HasRxWork) EnqueueRx(conn);
                }
                _host.RxReady();
                if (conn.State == VsockConnState.Dead) return;
                UpdateInterest(conn);
                // ERR with nothing left to act on: stop listening rather than spin.
                if ((events & Libc.EPOLLERR) != 0 && conn.Registered != 0 && !conn.HostReadable)
                {
                    KillWithRst(conn);
                    _host.RxReady();
                }
            }
            catch (Exception)
            {
                Fail(ref Metrics.ConnEventFails, "vsock: connection handler failed");
            }
        }
    }

    private void ReadConnectLine(VsockConnection conn)
    {
        switch (VsockConnectLine.Read(conn, out uint port))
        {
            case VsockConnectLineStatus.Incomplete:
                return;
            case VsockConnectLineStatus.Failed:
                CloseConn(conn);
                return;
        }
        uint local = AllocateEphemeralPort(port);
        if (local == 0)
        {
            CloseConn(conn);
            return;
        }
        _awaiting.Remove(conn);
        conn.OnConnectLine(local, port);
        _usedEphemeral.Add(local);
        _conns.Add(conn.Key, conn);
        Interlocked.Increment(ref Metrics.ConnsAdded);
        UpdateInterest(conn); // nothing to read until the guest answers
        EnqueueRx(conn);
    }

    /// <summary>
    /// A free ephemeral port for a host-initiated connection to <paramref name="guestPort"/>; 0 when none is free.
    /// Skips ports in use by a guest-initiated connection on the same pair too: the guest may connect to any host
    /// port, ephemeral range included.
    /// </summary>
    private uint AllocateEphemeralPort(uint guestPort)
    {
        for (int i = 0; i <= MaxConnections; i++)
        {
            uint p = _nextEphemeral;
            _nextEphemeral = p == uint.MaxValue ? FirstEphemeralPort : p + 1;
            if (!_usedEphemeral.Contains(p) && !_conns.ContainsKey(VsockConnection.MakeKey(p, guestPort))) return p;
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
            try { _registrar.Remove(conn.Stream.Fd); } catch (Exception) { }
            conn.Registered = 0;
        }
        if (conn.State == VsockConnState.AwaitConnectLine) _awaiting.Remove(conn);
        else
        {
            if (_conns.TryGetValue(conn.Key, out var c) && c == conn) _conns.Remove(conn.Key);
            if (conn.HostInitiated) _usedEphemeral.Remove(conn.LocalPort);
        }
        conn.Close();
        Interlocked.Increment(ref Metrics.ConnsRemoved);
    }

    private void OnTimer()
    {
        lock (_host.SyncRoot)
        {
            if (_disposed) return;
            try
            {
                _kills.OnTimer(_expire);
                SweepIfNeeded();
                _host.RxReady();
            }
            catch (Exception)
            {
                Fail(ref Metrics.MuxerEventFails, "vsock: kill timer handler failed");
            }
        }
    }

    private void OnKick()
    {
        lock (_host.SyncRoot)
        {
            if (_disposed) return;
            try
            {
                _kick.Read();
                SweepIfNeeded();
            }
            catch (Exception)
            {
                Fail(ref Metrics.MuxerEventFails, "vsock: reset handler failed");
            }
        }
    }

    public void OnDeviceReset()
    {
        if (_disposed) return;
        _sweepNeeded = true;
        try { _kick.Write(1); } catch (SysException) { }
    }

    /// <summary>After a device reset: every connection is gone for the guest, so close the host ends too.</summary>
    private void SweepIfNeeded()
    {
        if (!_sweepNeeded) return;
        _sweepNeeded = false;
        CloseAll(useRegistrar: true);
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
        foreach (var c in _rxList) c.InRxList = false;
        _rxList.Clear();
        _kills.Clear();
        _rsts.Clear();
    }

    private void Fail(ref long counter, string message)
    {
        Interlocked.Increment(ref counter);
        _host.Log.Error(message);
    }

    /// <summary>
    /// Closes every socket, the listener and its file. Call with the device lock held, once the event loop no longer
    /// dispatches these fds (or from the event-loop thread): the registrar is not called, closing an fd removes it from epoll.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        CloseAll(useRegistrar: false);
        Libc.close(_listenFd);
        UnixSockets.Unlink(UdsPath);
        _kick.Dispose();
        _kills.Dispose();
    }
}

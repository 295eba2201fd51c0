using System.Buffers.Binary;
using Flint.Memory;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// virtio-vsock (spec 5.10): the queues, config space and interrupts. Each guest packet is read out of guest memory
/// once (descriptors through <see cref="ChainBuffers"/>, the 44-byte header copied here), checked, and only the
/// parsed copy is used; the host side (by default Firecracker's Unix-socket <see cref="VsockMuxer"/>) is an
/// <see cref="IVsockBackend"/> that gets the parsed header and fills rx buffers.
/// <para>Threading: <see cref="ProcessQueue"/> and every backend fd handler run on the event-loop thread;
/// activation, reset and config come from vCPU threads. One device lock covers all of it.</para>
/// </summary>
public sealed partial class VirtioVsock : VirtioDevice, IEventSources, IDisposable, IVsockBackendHost
{
    private static readonly ushort[] s_queueSizes = [QueueSize, QueueSize, QueueSize];

    private readonly Lock _lock = new();
    private readonly IVsockBackend _backend;
    private readonly VsockMuxer? _muxer;
    // One per queue, made here: reading a chain allocates nothing. Used under _lock only.
    private readonly ChainBuffers _txBuffers = new(QueueSize);
    private readonly ChainBuffers _rxBuffers = new(QueueSize);

    // Captured on activation, cleared on reset, both under _lock: handlers never see half-reset queues.
    private GuestMemory? _mem;
    private VirtQueue? _rxq, _txq;
    private VirtioInterrupt? _irq;

    private bool _disposed;

    /// <param name="guestCid">The guest's CID (&gt;= 3), reported in config space and required as src_cid of guest packets.</param>
    /// <param name="udsPath">Host Unix socket to listen on; <c>udsPath_PORT</c> is dialled for guest-initiated connections.</param>
    /// <param name="registrar">The event loop, for per-connection fds (used on the event-loop thread only).</param>
    public VirtioVsock(ulong guestCid, string udsPath, IEventRegistrar registrar)
        : this(guestCid, CreateMuxer(guestCid, udsPath, registrar))
    {
    }

    /// <param name="guestCid">The guest's CID (&gt;= 3).</param>
    /// <param name="listener">The host socket bound at PUT /vsock; the device owns it from now on.</param>
    /// <param name="registrar">The event loop, for per-connection fds (used on the event-loop thread only).</param>
    public VirtioVsock(ulong guestCid, VsockListener listener, IEventRegistrar registrar)
        : this(guestCid, CreateMuxer(guestCid, listener, registrar))
    {
    }

    private static VsockMuxer CreateMuxer(ulong guestCid, VsockListener listener, IEventRegistrar registrar)
    {
        ArgumentNullException.ThrowIfNull(listener);
        ArgumentNullException.ThrowIfNull(registrar);
        CheckCid(guestCid); // before the muxer takes the socket: the caller still owns it on a bad CID
        return new VsockMuxer(listener, registrar);
    }

    /// <summary>A device over any backend (tests drive the device against fakes through this).</summary>
    internal VirtioVsock(ulong guestCid, IVsockBackend backend)
    {
        CheckCid(guestCid);
        GuestCid = guestCid;
        _backend = backend;
        _muxer = backend as VsockMuxer;
        backend.Attach(this);
    }

    private static void CheckCid(ulong guestCid)
    {
        if (guestCid < 3 || guestCid > uint.MaxValue) throw new ArgumentOutOfRangeException(nameof(guestCid), "guest_cid must be in [3, 2^32)");
    }

    private static VsockMuxer CreateMuxer(ulong guestCid, string udsPath, IEventRegistrar registrar)
    {
        ArgumentNullException.ThrowIfNull(udsPath);
        ArgumentNullException.ThrowIfNull(registrar);
        CheckCid(guestCid); // before the socket exists: nothing to clean up on a bad CID
        return new VsockMuxer(udsPath, registrar);
    }

    public ulong GuestCid { get; }
    public string UdsPath => _muxer?.UdsPath ?? "";
    public VsockMetrics Metrics { get; } = new();

    Lock IVsockBackendHost.SyncRoot => _lock;

    /// <summary>How long a REQUEST waits for the guest's answer, and a host-closed connection for the guest's RST.</summary>
    public TimeSpan ConnectionTimeout
    {
        get => _muxer?.ConnectionTimeout ?? TimeSpan.Zero;
        set { if (_muxer != null) _muxer.ConnectionTimeout = value; }
    }

    /// <summary>The backend's fds (listening socket, reset doorbell, kill timer): register each on the event loop once.</summary>
    public IReadOnlyList<EventSource> EventSources => _backend.EventSources;

    /// <summary>Live connections (handshaking host clients included).</summary>
    public int ConnectionCount { get { lock (_lock) return _backend.ConnectionCount; } }

    public override uint DeviceType => VirtioDeviceType.Vsock;
    public override ulong AvailableFeatures => VirtioFeatures.Version1;
    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    public override void ReadConfig(ulong offset, Span<byte> data)
    {
        Span<byte> cfg = stackalloc byte[ConfigSize];
        BinaryPrimitives.WriteUInt64LittleEndian(cfg, GuestCid);
        ReadConfigBytes(cfg, offset, data);
    }

    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data)
    {
        Interlocked.Increment(ref Metrics.CfgFails);
        Log.Error("vsock: the guest wrote the read-only config space");
    }

    protected override void OnActivateFailed()
    {
        Interlocked.Increment(ref Metrics.ActivateFails);
        Log.Error("vsock: activation failed (queues not ready or misplaced)");
    }

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
            _pendingEventAck = false;
            if (_disposed) return;
            _backend.OnDeviceReset();
        }
    }

    // ---------------------------------------------------------------- queue entry points

    public override void ProcessQueue(int index)
    {
        lock (_lock)
        {
            if (_disposed) return;
            try
            {
                _backend.Sync();
                switch (index)
                {
                    case RxQueue:
                        Interlocked.Increment(ref Metrics.RxQueueEventCount);
                        if (_rxq == null) { Fail(ref Metrics.RxQueueEventFails, "vsock: rx kick before activation"); return; }
                        Finish(PumpRx(), false);
                        break;
                    case TxQueue:
                        Interlocked.Increment(ref Metrics.TxQueueEventCount);
                        if (_txq == null) { Fail(ref Metrics.TxQueueEventFails, "vsock: tx kick before activation"); return; }
                        bool tx = ProcessTx();
                        Finish(PumpRx(), tx);
                        break;
                    case EventQueue:
                        // The guest refilled its event buffers: the only event we post is TRANSPORT_RESET, so this
                        // acknowledges it. Open the rx gate and deliver what waited behind it (Firecracker's evq handler).
                        _pendingEventAck = false;
                        Finish(PumpRx(), false);
                        break;
                    default:
                        Fail(ref Metrics.EvQueueEventFails, "vsock: kick on an unknown queue");
                        break;
                }
            }
            catch (Exception)
            {
                // A defect here must cost a packet, not the VMM.
                if (index == TxQueue) Fail(ref Metrics.TxQueueEventFails, "vsock: tx queue handler failed");
                else Fail(ref Metrics.RxQueueEventFails, "vsock: rx queue handler failed");
            }
        }
    }

    void IVsockBackendHost.RxReady() => Finish(PumpRx(), false);

    /// <summary>One interrupt for everything this entry point put in the used rings.</summary>
    private void Finish(bool rxUsed, bool txUsed)
    {
        var irq = _irq;
        if (irq == null) return;
        // Both rings' suppression state is consumed (no short-circuit); one interrupt on a shared line, each queue's
        // own vector over MSI-X.
        bool rx = rxUsed && _rxq!.NeedsNotification();
        bool tx = txUsed && _txq!.NeedsNotification();
        if (rx && tx) irq.SignalUsedQueues(RxQueue, TxQueue);
        else if (rx) irq.SignalUsedQueue(RxQueue);
        else if (tx) irq.SignalUsedQueue(TxQueue);
    }

    private void Fail(ref long counter, string message)
    {
        Interlocked.Increment(ref counter);
        Log.Error(message);
    }

    private void Invalid() => Interlocked.Increment(ref Metrics.InvalidPackets);

    // ---------------------------------------------------------------- tx: guest -> host

    private bool ProcessTx()
    {
        var q = _txq!;
        bool used = false;
        while (q.TryPop(out var chain))
        {
            HandleTxPacket(ref chain);
            q.AddUsed(chain.HeadIndex, 0);
            used = true;
        }
        return used;
    }

    /// <summary>
    /// One guest packet: its descriptors are read once into <see cref="_txBuffers"/>, the header is copied once into a
    /// stack buffer and parsed; validation and the backend see only those copies (the payload as a reader past it).
    /// </summary>
    private void HandleTxPacket(ref DescriptorChain chain)
    {
        // A tx packet is device-readable only (spec 5.10.6.2) and starts with a whole header.
        if (!_txBuffers.Load(ref chain, _mem!) || _txBuffers.WritableCount != 0 || _txBuffers.ReadableBytes < HeaderSize)
        {
            Invalid();
            return;
        }
        var packet = _txBuffers.Reader();
        Span<byte> raw = stackalloc byte[HeaderSize];
        if (!packet.ReadExact(raw) || !VsockHeader.TryRead(raw, out var h)) { Invalid(); return; }
        Interlocked.Increment(ref Metrics.TxPacketsCount);

        switch (h.Validate(GuestCid, packet.Remaining))
        {
            case VsockHeaderVerdict.Valid:
                _backend.OnGuestPacket(h, packet);
                break;
            case VsockHeaderVerdict.Drop:
                Invalid(); // not from our guest: there is nobody to answer
                break;
            default:
                Invalid();
                _backend.OnMalformedPacket(h);
                break;
        }
    }

    // ---------------------------------------------------------------- rx: host -> guest

    /// <summary>
    /// Fills rx buffers while the backend has something to say. Stops when the guest has no buffers left; what is
    /// pending goes out on the next rx kick.
    /// </summary>
    private bool PumpRx()
    {
        var q = _rxq;
        var mem = _mem;
        if (q == null || mem == null || _pendingEventAck) return false;
        bool used = false;
        while (_backend.HasPendingRx)
        {
            if (!q.TryPop(out var chain)) break;
            // An rx buffer is device-writable only and holds at least a header.
            if (!_rxBuffers.Load(ref chain, mem) || _rxBuffers.ReadableCount != 0 || _rxBuffers.WritableBytes < HeaderSize)
            {
                // Unusable buffer: hand it back empty rather than hold it forever.
                Fail(ref Metrics.RxQueueEventFails, "vsock: unusable rx buffer (broken, device-readable or shorter than a header)");
                q.AddUsed(chain.HeadIndex, 0);
                used = true;
                continue;
            }
            int len = _backend.FillRx(_rxBuffers.Writer());
            if (len < 0)
            {
                q.UndoPop(); // nothing to say after all: the buffer stays the guest's
                break;
            }
            q.AddUsed(chain.HeadIndex, (uint)len);
            Interlocked.Increment(ref Metrics.RxPacketsCount);
            used = true;
        }
        return used;
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
            _backend.Dispose();
        }
    }
}

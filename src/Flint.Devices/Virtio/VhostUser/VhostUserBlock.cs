using System.Diagnostics;
using Flint.Sys;

namespace Flint.Devices.Virtio.VhostUser;

/// <summary>
/// A virtio block device whose queue another process serves over vhost-user (Firecracker's VhostUserBlock): Flint
/// keeps the virtio-mmio face (features, config space, status), and on activation hands the backend guest memory (the
/// memfd), the ring addresses, the doorbell eventfd (a KVM ioeventfd, so guest kicks reach the backend without a VM
/// exit) and the interrupt eventfd (a KVM irqfd). Flint never touches a request.
/// <para>Over virtio-pci (<see cref="RelayInterruptsThroughVmm"/>) the backend's call fd is instead an eventfd of the
/// device's own that the event loop polls and forwards to the queue's MSI-X vector through the transport, so masking
/// and pending bits hold exactly as for Flint's own devices.</para>
/// <para>Created connected: the constructor does Firecracker's VhostUserBlock::new (SET_OWNER, feature and protocol
/// feature negotiation with CONFIG, GET_CONFIG for the 60-byte config space). Every failure is a
/// <see cref="VhostUserException"/> with Firecracker's wording.</para>
/// </summary>
public sealed class VhostUserBlock : VirtioDevice, IEventSources, IDisposable
{
    public const ushort QueueSize = 256;
    public const uint ConfigSpaceSize = 60;

    /// <summary>virtio-blk feature bits Firecracker offers for vhost-user (VIRTIO_BLK_F_RO 5, VIRTIO_BLK_F_FLUSH 9).</summary>
    public const ulong FeatureReadOnly = 1UL << 5, FeatureFlush = 1UL << 9;

    private static readonly ushort[] s_queueSizes = [QueueSize];

    private readonly VhostUserFrontend _frontend;
    private readonly ulong _availableFeatures;
    private readonly Lock _configLock = new();
    private byte[] _config;
    private EventFd[] _doorbells = [];
    private EventFd[] _calls = [];
    private EventSource[] _callSources = [];

    /// <param name="frontend">A connected frontend; the device owns it from here on (also when this throws).</param>
    public VhostUserBlock(VhostUserFrontend frontend, string driveId, bool writeback)
    {
        _frontend = frontend;
        DriveId = driveId;
        long start = Stopwatch.GetTimestamp();
        try
        {
            ulong requested = VirtioFeatures.Version1 | VirtioFeatures.RingEventIdx | VhostUserRequest.ProtocolFeaturesBit | FeatureReadOnly;
            if (writeback) requested |= FeatureFlush;
            frontend.SetOwner();
            var (acked, ackedProtocol) = frontend.NegotiateFeatures(requested, VhostUserRequest.ProtocolFeatureConfig);
            AckedProtocolFeatures = ackedProtocol;
            _config = (ackedProtocol & VhostUserRequest.ProtocolFeatureConfig) != 0
                ? frontend.GetConfig(0, ConfigSpaceSize)
                : [];
            _availableFeatures = acked;
            ReadOnly = (acked & FeatureReadOnly) != 0;
        }
        catch
        {
            frontend.Dispose();
            throw;
        }
        Interlocked.Exchange(ref Metrics.InitTimeUs, ElapsedUs(start));
    }

    public string DriveId { get; }
    public string SocketPath => _frontend.SocketPath;
    public bool ReadOnly { get; }
    public ulong AckedProtocolFeatures { get; }
    public VhostUserMetrics Metrics { get; } = new();

    public override uint DeviceType => VirtioDeviceType.Block;

    /// <summary>What both Flint and the backend support (Firecracker offers the guest exactly this, bit 30 included).</summary>
    public override ulong AvailableFeatures => _availableFeatures;

    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    public override bool ServedByExternalBackend => true;

    /// <summary>
    /// The transport's doorbell eventfds (one per queue, registered as KVM ioeventfds): given to the backend as its
    /// kick fds at activation. Set once by the builder after the transport exists.
    /// </summary>
    public void UseDoorbells(EventFd[] doorbells) => _doorbells = doorbells;

    /// <summary>
    /// Over virtio-pci: gives the backend one call eventfd per queue that the event loop polls (<see cref="EventSources"/>)
    /// and turns into the queue's interrupt through the transport (<see cref="VirtioInterrupt.SignalUsedQueue"/>), instead
    /// of the interrupt line's irqfd. Why not the vector's irqfd, as Firecracker hands over: a masked vector's KVM route is
    /// down, so a completion signalled then would be lost rather than held in the PBA (Linux masks an entry while it
    /// reprograms it), and the ISR bit would never be set. The cost is one event-loop wake-up per completion batch.
    /// Called once by the builder before the device is plugged.
    /// </summary>
    public void RelayInterruptsThroughVmm()
    {
        if (_calls.Length != 0) return;
        var calls = new EventFd[s_queueSizes.Length];
        var sources = new EventSource[calls.Length];
        try
        {
            for (int q = 0; q < calls.Length; q++)
            {
                calls[q] = new EventFd();
                int queue = q;
                sources[q] = new EventSource(calls[q].Fd, _ => RelayCall(queue));
            }
        }
        catch
        {
            foreach (var c in calls) c?.Dispose();
            throw;
        }
        _calls = calls;
        _callSources = sources;
    }

    /// <summary>Whether the backend's completions reach the guest through the event loop (virtio-pci).</summary>
    public bool RelaysInterrupts => _calls.Length != 0;

    /// <summary>The call eventfds the event loop polls when interrupts are relayed; none otherwise.</summary>
    public IReadOnlyList<EventSource> EventSources => _callSources;

    /// <summary>
    /// The backend signalled queue <paramref name="queue"/>'s call fd (event-loop thread): drain the counter, then
    /// raise the queue's interrupt. The transport picks the vector the driver chose now, or holds it pending while
    /// masked. A signal that arrives before activation or after a reset is dropped (no driver to tell).
    /// </summary>
    private void RelayCall(int queue)
    {
        if (_calls[queue].Read() == 0) return;
        var interrupt = Interrupt;
        if (interrupt != null && IsActivated) interrupt.SignalUsedQueue(queue);
    }

    /// <summary>The config space as the backend last reported it (Firecracker keeps the backend's bytes as they are).</summary>
    public byte[] ConfigSpace { get { lock (_configLock) return _config; } }

    public override void ReadConfig(ulong offset, Span<byte> data)
    {
        lock (_configLock) ReadConfigBytes(_config, offset, data);
    }

    /// <summary>Firecracker ignores config writes for vhost-user block (there is nothing writable it forwards).</summary>
    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data) { }

    /// <summary>The backend serves the queue; the doorbell never reaches Flint's event loop.</summary>
    public override void ProcessQueue(int index) { }

    /// <summary>A restored doorbell would be the backend's to serve; vhost-user devices are not snapshotted anyway.</summary>
    public override bool ReplaysKickAfterRestore(int queue) => false;

    /// <summary>
    /// PATCH /drives/{id} without fields (Firecracker's config_update): reads the config space again (after the backend
    /// resized its disk, say) and tells an attached driver so. Throws <see cref="VhostUserException"/> when the backend
    /// fails to answer; the old config then stays.
    /// </summary>
    public void RefreshConfig()
    {
        long start = Stopwatch.GetTimestamp();
        var config = _frontend.GetConfig(0, ConfigSpaceSize);
        lock (_configLock) _config = config;
        NotifyConfigChanged();
        Interlocked.Exchange(ref Metrics.ConfigChangeTimeUs, ElapsedUs(start));
    }

    /// <summary>
    /// Firecracker's activate + setup_backend: SET_FEATURES (the driver's features, plus protocol features when they
    /// were negotiated: the spec wants the bit kept), SET_MEM_TABLE with the memfd of each region, then for the queue
    /// SET_VRING_NUM, ADDR, BASE, CALL, KICK and ENABLE. Runs on the vCPU thread that wrote DRIVER_OK: each message is one
    /// non-blocking send, and a backend that is gone or not reading fails activation (logged, counted) instead of
    /// stalling the vCPU.
    /// </summary>
    protected override bool StartBackend()
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            var memory = Memory!;
            // The call fd per queue: the relay's own eventfds over virtio-pci, the line's irqfd over virtio-mmio.
            int lineCall = -1;
            if (_calls.Length == 0)
            {
                if (Interrupt!.Line is not EventFdInterrupt irq)
                    throw new VhostUserException("Set vring call failed: the interrupt is not an eventfd");
                lineCall = irq.EventFd.Fd;
            }
            else if (_calls.Length < Queues.Length)
                throw new VhostUserException("Set vring call failed: the queue has no call eventfd");
            if (_doorbells.Length < Queues.Length)
                throw new VhostUserException("Set vring kick failed: the queue has no doorbell eventfd");
            var regions = new VhostUserFrontend.MemoryRegion[memory.Regions.Count];
            for (int i = 0; i < regions.Length; i++)
            {
                var r = memory.Regions[i];
                // Firecracker's VhostUserNoMemoryRegion text: guest RAM is private, so no backend could map it.
                if (r.SharedFd < 0) throw new VhostUserException("Failed to read vhost eventfd: No memory region found");
                // SAFETY: only the host address's value is taken (for the backend's mapping table); nothing is dereferenced.
                unsafe { regions[i] = new(r.GuestBase, r.Size, (ulong)r.Host, r.SharedFdOffset, r.SharedFd); }
            }
            ulong features = AckedFeatures | (_availableFeatures & VhostUserRequest.ProtocolFeaturesBit);
            _frontend.SetFeatures(features);
            _frontend.SetMemTable(regions);
            for (int q = 0; q < Queues.Length; q++) _frontend.SetVringNum((uint)q, Queues[q].Size);
            for (int q = 0; q < Queues.Length; q++)
            {
                var queue = Queues[q];
                ulong desc, used, avail;
                // SAFETY: only the addresses are taken; the queue was validated against guest memory on activation
                // (VirtQueue.Activate), so each range lies inside one region's mapping.
                unsafe
                {
                    desc = (ulong)memory.GetHostPointer(queue.DescTable, VirtQueue.DescTableBytes(queue.Size));
                    used = (ulong)memory.GetHostPointer(queue.UsedRing, VirtQueue.UsedRingBytes(queue.Size));
                    avail = (ulong)memory.GetHostPointer(queue.AvailRing, VirtQueue.AvailRingBytes(queue.Size));
                }
                _frontend.SetVringAddr((uint)q, desc, used, avail);
                _frontend.SetVringBase((uint)q, queue.NextAvail);
                _frontend.SetVringCall((uint)q, lineCall >= 0 ? lineCall : _calls[q].Fd);
                _frontend.SetVringKick((uint)q, _doorbells[q].Fd);
                _frontend.SetVringEnable((uint)q, true);
            }
        }
        catch (VhostUserException e)
        {
            Interlocked.Increment(ref Metrics.ActivateFails);
            Log.Error("vhost-user block activation failed", $"drive {DriveId}: {e.Message}");
            return false;
        }
        Interlocked.Exchange(ref Metrics.ActivateTimeUs, ElapsedUs(start));
        return true;
    }

    private static long ElapsedUs(long start) => (long)Stopwatch.GetElapsedTime(start).TotalMicroseconds;

    public void Dispose()
    {
        _frontend.Dispose();
        foreach (var c in _calls) c.Dispose();
    }
}

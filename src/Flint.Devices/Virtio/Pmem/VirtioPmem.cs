using System.Buffers.Binary;
using Flint.Devices.RateLimiting;
using Flint.Memory;

namespace Flint.Devices.Virtio.Pmem;

/// <summary>
/// virtio-pmem (spec 5.19, device id 27), as Firecracker's pmem/device.rs: the guest reaches the backing file directly
/// through a guest-physical window (a KVM memory slot the builder adds; this class never touches it), and the device
/// only tells the driver where that window is (config space: start, size) and answers flush requests on its one queue
/// with msync(MS_SYNC) of the file.
/// <para>
/// Flush requests are two descriptors: a device-readable 4-byte request type (0 = FLUSH) and a device-writable 4-byte
/// status (0 success, -1 failure). Every request of one notification shares one msync (Firecracker coalesces them:
/// the pages written before any of them are on the file once it returns) and, with a rate limiter, one charge of 1 op
/// plus the whole file's size (docs/pmem.md: msync covers the whole mapping). A throttled notification leaves the
/// requests on the queue; the limiter's timer resumes it.
/// </para>
/// The kick, throttle and limiter-timer handling (and its device lock) is <see cref="RateLimitedQueueDevice"/>'s.
/// </summary>
public sealed class VirtioPmem : RateLimitedQueueDevice
{
    public const ushort QueueSize = 256;
    /// <summary>VIRTIO_PMEM_REQ_TYPE_FLUSH.</summary>
    public const uint RequestFlush = 0;
    public const int StatusOk = 0;
    public const int StatusFailure = -1;
    /// <summary>Size of the config space: le64 start, le64 size.</summary>
    public const int ConfigSize = 16;

    private static readonly ushort[] s_queueSizes = [QueueSize];

    private readonly IPmemBacking _backing;
    private readonly byte[] _config = new byte[ConfigSize];

    /// <param name="id">The API id (logs and metrics).</param>
    /// <param name="windowStart">Guest-physical start of the window (2 MiB aligned).</param>
    /// <param name="windowSize">Window size: the file size rounded up to 2 MiB.</param>
    /// <param name="limiter">Optional; the device owns it from here on (sets its <see cref="RateLimiter.OnUnblocked"/>, disposes it).</param>
    public VirtioPmem(string id, IPmemBacking backing, ulong windowStart, ulong windowSize, RateLimiter? limiter = null)
        : this(id, backing, windowStart, windowSize, limiter, new PmemMetrics()) { }

    private VirtioPmem(string id, IPmemBacking backing, ulong windowStart, ulong windowSize, RateLimiter? limiter,
        PmemMetrics metrics) : base(limiter, metrics)
    {
        Metrics = metrics;
        Id = id;
        _backing = backing;
        WindowStart = windowStart;
        WindowSize = windowSize;
        BinaryPrimitives.WriteUInt64LittleEndian(_config, windowStart);
        BinaryPrimitives.WriteUInt64LittleEndian(_config.AsSpan(8), windowSize);
    }

    public string Id { get; }
    public ulong WindowStart { get; }
    public ulong WindowSize { get; }
    public PmemMetrics Metrics { get; }

    /// <summary>msync calls made (one per served notification): what the rate limiter's ops bucket counts.</summary>
    public long FlushCount => Interlocked.Read(ref _flushes);
    private long _flushes;

    public override uint DeviceType => VirtioDeviceType.Pmem;
    public override ulong AvailableFeatures => VirtioFeatures.Version1;
    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    public override void ReadConfig(ulong offset, Span<byte> data) => ReadConfigBytes(_config, offset, data);

    /// <summary>The config space is read-only: a write is counted and logged, never applied (Firecracker's write_config).</summary>
    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data)
    {
        Interlocked.Increment(ref Metrics.CfgFails);
        Log.Warn("guest driver attempted to write device config, offset", (long)offset);
    }

    protected override void OnActivateFailed() => Interlocked.Increment(ref Metrics.ActivateFails);

    protected override void ServeQueue(VirtQueue q, GuestMemory mem, VirtioInterrupt irq)
    {
        if (q.PendingCount == 0) return;
        // One charge per notification, as the msync below is one per notification.
        if (RateLimiter is { } rl && !rl.ConsumeRequest(_backing.FileLength))
        {
            Interlocked.Increment(ref Metrics.RateLimiterThrottledEvents);
            return;
        }
        int cached = int.MinValue; // no msync yet in this notification
        int served = 0;
        // Bounded: a guest publishing while we pop cannot keep the event loop here; its kick brings us back.
        while (served < QueueSize && q.TryPop(out var chain))
        {
            served++;
            uint len;
            try { len = Serve(ref chain, mem, ref cached); }
            catch (Exception e)
            {
                // A defect here must cost one request, not the VMM.
                Log.Error("request failed", e.GetType().Name);
                len = 0;
            }
            if (len == 0) Interlocked.Increment(ref Metrics.EventFails);
            q.AddUsedUnpublished(chain.HeadIndex, len);
        }
        if (served == 0) return;
        q.PublishUsed();
        if (q.NeedsNotification()) irq.SignalUsedQueue(0);
    }

    /// <summary>One flush request: every field is read once and checked before use. Returns the used length (4 when
    /// the status was written, 0 for a malformed request, which Firecracker answers with no status).</summary>
    private uint Serve(ref DescriptorChain chain, GuestMemory mem, ref int cached)
    {
        if (!chain.TryNext(out var head)) { Log.Error("Descriptor chain too short"); return 0; }
        if (head.IsWriteOnly) { Log.Error("Unexpected write-only descriptor"); return 0; }
        if (head.Len != 4) { Log.Error("Head descriptor has invalid length instead of 4", head.Len); return 0; }
        uint type = mem.Read<uint>(head.Addr);
        if (type != RequestFlush) { Log.Error("UnknownRequestType", type); return 0; }
        if (!chain.TryNext(out var status)) { Log.Error("Descriptor chain too short"); return 0; }
        if (!status.IsWriteOnly) { Log.Error("Unexpected read-only descriptor"); return 0; }
        if (status.Len != 4) { Log.Error("Status descriptor has invalid length instead of 4", status.Len); return 0; }
        if (cached == int.MinValue)
        {
            Interlocked.Increment(ref _flushes);
            int errno = _backing.Flush();
            if (errno != 0) Log.Error("Unable to msync the file, errno", errno);
            cached = errno == 0 ? StatusOk : StatusFailure;
        }
        mem.Write(status.Addr, cached);
        return 4;
    }
}

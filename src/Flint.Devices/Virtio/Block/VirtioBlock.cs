using System.Runtime.CompilerServices;
using Flint.Devices.Metrics;
using Flint.Devices.RateLimiting;
using Flint.Memory;
using Flint.Sys;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// virtio-blk over a host file (spec 5.2): one request queue, IN/OUT/FLUSH/GET_ID.
/// A request is a header (device-readable, 16 bytes), data, and a status byte (the last device-writable byte).
/// Each chain is read once into <see cref="ChainBuffers"/> and parsed into a <see cref="BlockRequest"/>; that one copy
/// is judged, charged and executed. Data moves between the file and guest memory through host pointers, no copy.
/// Anything malformed fails only its own request; nothing the guest writes can make this throw or spin.
/// </summary>
public sealed unsafe class VirtioBlock : VirtioDevice, IEventSources, IDisposable
{
    public const ushort QueueSize = 256;

    private static readonly ushort[] s_queueSizes = [QueueSize];

    // The request being served, read once from its chain: a chain never has more descriptors than the queue size.
    private readonly ChainBuffers _buffers = new(QueueSize);
    private readonly Lock _fileLock = new();
    private readonly string? _serial;
    private BackingFile _file;
    private long _rateLimiterThrottledEvents;
    private long _rateLimiterEventCount;
    // Written when one event served a whole queue's worth of requests and more were pending: the event loop comes
    // back to the rest after its other fds (the API among them), so a guest that keeps the avail ring full, or whose
    // own DMA targets rewrite its avail idx, cannot hold the VMM thread in one handler.
    private readonly EventFd _resume = new();
    private readonly EventSource[] _sources;

    /// <param name="path">Disk image or block device.</param>
    /// <param name="readOnly">Open O_RDONLY, offer VIRTIO_BLK_F_RO and fail writes.</param>
    /// <param name="serial">GET_ID answer (first 20 ASCII bytes); null derives it from the file's dev/inode.</param>
    /// <param name="rateLimiter">
    /// Optional; the device owns it from here on (sets its OnUnblocked, disposes it). Pass one (buckets may be null)
    /// when PATCH /drives may add limits later: PATCH updates it in place.
    /// </param>
    /// <param name="writeback">
    /// Firecracker's cache_type: Writeback (true) offers VIRTIO_BLK_F_FLUSH and fdatasyncs the file on a guest flush;
    /// Unsafe (false, the default) does not offer it, so the guest sends no flushes and writes stay in the host's
    /// page cache. A flush from a guest that was not offered the feature is acknowledged without syncing.
    /// </param>
    public VirtioBlock(string path, bool readOnly = false, string? serial = null, RateLimiter? rateLimiter = null, bool writeback = false)
    {
        IsReadOnly = readOnly;
        IsWriteback = writeback;
        _serial = serial;
        _file = BackingFile.Open(path, readOnly, serial);
        RateLimiter = rateLimiter;
        if (rateLimiter != null) rateLimiter.OnUnblocked = OnRateLimiterUnblocked;
        var resume = new EventSource(_resume.Fd, OnResume);
        _sources = rateLimiter != null ? [.. rateLimiter.EventSources, resume] : [resume];
    }

    /// <summary>Charges 1 op per request plus the data bytes of reads and writes; null: unlimited.</summary>
    public RateLimiter? RateLimiter { get; }

    /// <summary>The rate limiter's refill timer (with a limiter) and the resume eventfd of a batch cut short.</summary>
    public IReadOnlyList<EventSource> EventSources => _sources;

    /// <summary>Events that stopped after one queue's worth of requests (the queue's size) with more pending.</summary>
    public long BatchesCutShort => Interlocked.Read(ref _batchesCutShort);
    private long _batchesCutShort;

    /// <summary>Firecracker's block rate_limiter_throttled_events: requests left on the queue by the limiter.</summary>
    public long RateLimiterThrottledEvents => Interlocked.Read(ref _rateLimiterThrottledEvents);

    /// <summary>Firecracker's block rate_limiter_event_count: limiter timer events handled.</summary>
    public long RateLimiterEventCount => Interlocked.Read(ref _rateLimiterEventCount);

    public BlockMetrics Metrics { get; } = new();
    public bool IsReadOnly { get; }
    /// <summary>cache_type Writeback: FLUSH offered and honoured with fdatasync.</summary>
    public bool IsWriteback { get; }
    public string Path => Volatile.Read(ref _file).Path;
    public ulong CapacitySectors => Volatile.Read(ref _file).CapacitySectors;

    public override uint DeviceType => VirtioDeviceType.Block;

    /// <summary>
    /// FLUSH (Writeback only) so the guest's fsync reaches the host disk; SEG_MAX so Linux puts many segments in one
    /// request (without it the driver falls back to one segment per request).
    /// </summary>
    public override ulong AvailableFeatures =>
        VirtioFeatures.Version1 | VirtioFeatures.RingEventIdx | (IsWriteback ? 1UL << FeatureFlush : 0) | (1UL << FeatureSegMax) | (IsReadOnly ? 1UL << FeatureReadOnly : 0);

    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    /// <summary>Largest read: its used length (data plus the status byte) must fit the used ring's u32.</summary>
    public const ulong MaxReadBytes = uint.MaxValue - 1;

    /// <summary>Max data segments in a request: the queue size less the header and status descriptors.</summary>
    public static uint SegMax => QueueSize - 2;

    public override void ReadConfig(ulong offset, Span<byte> data)
    {
        Span<byte> cfg = stackalloc byte[ConfigSize];
        cfg.Clear();
        Unsafe.WriteUnaligned(ref cfg[ConfigCapacity], CapacitySectors);
        Unsafe.WriteUnaligned(ref cfg[ConfigSegMax], SegMax);
        ReadConfigBytes(cfg, offset, data);
    }

    /// <summary>Nothing in our config space is writable (no CONFIG_WCE): count and ignore.</summary>
    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data) => Interlocked.Increment(ref Metrics.CfgFails);

    protected override void OnActivateFailed() => Interlocked.Increment(ref Metrics.ActivateFails);

    // The limiter's timer resumes the queue outside the transport lock: once Reset has passed this barrier no
    // such run is inside the queue, and later ones see the device inactive.
    protected override void OnReset() { lock (_fileLock) { } }

    /// <summary>
    /// Swaps in a new backing file (PATCH /drives): the new size shows up in config space and the guest is told
    /// through a config-change interrupt. Throws <see cref="Flint.Sys.SysException"/> (drive unchanged) when the
    /// file cannot be opened.
    /// </summary>
    public void UpdateBackingFile(string path)
    {
        var next = BackingFile.Open(path, IsReadOnly, _serial);
        BackingFile old;
        lock (_fileLock)
        {
            old = _file;
            Volatile.Write(ref _file, next);
        }
        old.Dispose();
        Interlocked.Increment(ref Metrics.UpdateCount);
        NotifyConfigChanged();
    }

    /// <summary>
    /// Serves every available request, then raises one interrupt for the batch if anything completed and the
    /// driver has not suppressed interrupts.
    /// </summary>
    public override void ProcessQueue(int index)
    {
        Interlocked.Increment(ref Metrics.QueueEventCount);
        var irq = Interrupt;
        if (index != 0 || !IsActivated || irq == null)
        {
            Interlocked.Increment(ref Metrics.EventFails);
            Log.Error("notification for an inactive device or unknown queue", index);
            return;
        }
        // Throttled: the limiter's timer resumes the queue.
        if (RateLimiter is { IsBlocked: true }) return;
        ProcessAvailable();
    }

    private void OnResume(uint events)
    {
        _resume.Read();
        if (RateLimiter is { IsBlocked: true }) return;
        ProcessAvailable();
    }

    private void OnRateLimiterUnblocked()
    {
        Interlocked.Increment(ref _rateLimiterEventCount);
        ProcessAvailable();
    }

    private void ProcessAvailable()
    {
        VirtQueue q;
        VirtioInterrupt irq;
        bool used = false, throttled = false, notify = false;
        lock (_fileLock)
        {
            if (!IsActivated || Interrupt is not { } i || Queues.Length == 0 || Memory is not { } mem) return;
            irq = i;
            q = Queues[0];
            var rl = RateLimiter;
            int served = 0;
            while (true)
            {
                if (served == q.Size)
                {
                    if (q.PendingCount > 0)
                    {
                        Interlocked.Increment(ref _batchesCutShort);
                        _resume.Write();
                    }
                    break;
                }
                if (!q.TryPop(out var chain)) break;
                served++;
                // Firecracker's remaining_reqs_count: at each pop, the requests still waiting behind this one.
                Interlocked.Add(ref Metrics.RemainingReqsCount, q.PendingCount);
                // The one read of this request from guest memory: everything below uses this copy.
                bool loaded = _buffers.Load(ref chain, mem);
                var request = loaded ? BlockRequest.Parse(_buffers) : default;
                // A request too malformed to run is not charged: it fails without I/O.
                if (rl != null && request.HasStatus && !rl.ConsumeRequest(request.ChargedBytes))
                {
                    // Leave the request on the queue; the limiter's timer brings us back to it (re-read then).
                    q.UndoPop();
                    Interlocked.Increment(ref _rateLimiterThrottledEvents);
                    throttled = true;
                    break;
                }
                uint len = Execute(request);
                q.AddUsed(chain.HeadIndex, len);
                used = true;
            }
            // Under the lock: with EVENT_IDX the decision updates the queue's notification state.
            notify = used && q.NeedsNotification();
        }
        if (!used)
        {
            if (!throttled) Interlocked.Increment(ref Metrics.NoAvailBuffer);
            return;
        }
        if (notify) irq.SignalUsedQueue();
    }

    /// <summary>Runs one parsed request; returns the used length (bytes written to guest buffers, status included).</summary>
    private uint Execute(in BlockRequest request)
    {
        // No trustworthy status byte: complete with length 0 and write nothing.
        if (!request.HasStatus)
        {
            Interlocked.Increment(ref Metrics.InvalidReqsCount);
            Log.Error("malformed request chain (no status byte)");
            return 0;
        }
        uint written = 0;
        byte s;
        try
        {
            s = Handle(request, out written);
        }
        catch (Exception e)
        {
            // A defect here must cost one request, not the VMM.
            Interlocked.Increment(ref Metrics.ExecuteFails);
            Log.Error("request failed", e.GetType().Name);
            s = StatusIoErr;
        }
        // SAFETY: Status points at the chain's last device-writable byte, checked when the request was parsed.
        *request.Status = s;
        return written + 1;
    }

    private byte Handle(in BlockRequest request, out uint written)
    {
        written = 0;
        if (!request.IsWellFormed) return Invalid(StatusIoErr);
        return request.Type switch
        {
            RequestIn => Read(request, out written),
            RequestOut => Write(request),
            RequestFlush => Flush(),
            RequestGetId => GetId(request, out written),
            _ => Invalid(StatusUnsupported),
        };
    }

    private byte Invalid(byte status)
    {
        Interlocked.Increment(ref Metrics.InvalidReqsCount);
        return status;
    }

    /// <summary>Whole sectors inside the disk.</summary>
    private static bool CheckData(ulong total, ulong sector, ulong capacity) =>
        total % SectorSize == 0 && sector <= capacity && (total >> SectorShift) <= capacity - sector;

    /// <summary>A read request, timed into read_agg (Firecracker times the file engine's read the same way).</summary>
    private byte Read(in BlockRequest request, out uint written)
    {
        long start = LatencyAggregate.Start();
        try { return ReadData(request, out written); }
        finally { Metrics.ReadAgg.RecordSince(start); }
    }

    /// <summary>A write request, timed into write_agg.</summary>
    private byte Write(in BlockRequest request)
    {
        long start = LatencyAggregate.Start();
        try { return WriteData(request); }
        finally { Metrics.WriteAgg.RecordSince(start); }
    }

    private byte ReadData(in BlockRequest request, out uint written)
    {
        written = 0;
        var file = _file;
        ulong total = request.DataLength;
        if (!CheckData(total, request.Sector, file.CapacitySectors)) return Invalid(StatusIoErr);
        // The used length (data + status byte) is a u32: a read it cannot express is refused, not wrapped.
        if (total > MaxReadBytes) return Invalid(StatusIoErr);
        long offset = (long)(request.Sector << SectorShift);
        var writer = _buffers.Writer();
        while (writer.Written < total && writer.NextPiece(total - writer.Written, out byte* p, out uint len))
        {
            if (!file.ReadAt(p, len, offset))
            {
                Interlocked.Increment(ref Metrics.ExecuteFails);
                Log.Error("read from the backing file failed at offset", offset);
                written = (uint)(writer.Written - len);
                return StatusIoErr;
            }
            offset += len;
        }
        written = (uint)writer.Written;
        Interlocked.Increment(ref Metrics.ReadCount);
        Interlocked.Add(ref Metrics.ReadBytes, (long)total);
        return StatusOk;
    }

    private byte WriteData(in BlockRequest request)
    {
        if (IsReadOnly) return Invalid(StatusIoErr);
        var file = _file;
        ulong total = request.DataLength;
        if (!CheckData(total, request.Sector, file.CapacitySectors)) return Invalid(StatusIoErr);
        long offset = (long)(request.Sector << SectorShift);
        var reader = _buffers.Reader();
        reader.Skip(HeaderSize);
        while (reader.NextPiece(ulong.MaxValue, out byte* p, out uint len))
        {
            if (!file.WriteAt(p, len, offset))
            {
                Interlocked.Increment(ref Metrics.ExecuteFails);
                Log.Error("write to the backing file failed at offset", offset);
                return StatusIoErr;
            }
            offset += len;
        }
        Interlocked.Increment(ref Metrics.WriteCount);
        Interlocked.Add(ref Metrics.WriteBytes, (long)total);
        return StatusOk;
    }

    private byte Flush()
    {
        if (!IsWriteback) return StatusOk; // cache_type Unsafe: nothing is promised beyond the host page cache
        if (!_file.Flush())
        {
            Interlocked.Increment(ref Metrics.ExecuteFails);
            Log.Error("fdatasync of the backing file failed");
            return StatusIoErr;
        }
        Interlocked.Increment(ref Metrics.FlushCount);
        return StatusOk;
    }

    /// <summary>Copies up to 20 serial bytes into the device-writable data buffers.</summary>
    private byte GetId(in BlockRequest request, out uint written)
    {
        ReadOnlySpan<byte> id = _file.Serial;
        int n = (int)Math.Min(request.DataLength, (ulong)id.Length);
        var writer = _buffers.Writer();
        written = (uint)writer.Write(id[..n]);
        return StatusOk;
    }

    public void Dispose()
    {
        _file.Dispose();
        RateLimiter?.Dispose();
        _resume.Dispose();
    }
}
